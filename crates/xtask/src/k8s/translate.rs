//! Envoy Gateway's own translator, offline: `egctl x translate` turns
//! Gateway API objects into their status (accepted? refs resolved?) and,
//! given Service addresses, the xDS Envoy would receive. One harness for
//! every check that reads it (`test-k8s`, `check-auth`).

use std::path::Path;

use serde_json::Value;

use super::{Error, Result, cmd::cmd, kustomize, write};

/// What to translate to. xDS needs a ClusterIP on every backend Service
/// (egctl is not a cluster and assigns none); the status does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Status,
    StatusAndXds,
}

pub struct Translation {
    json: Value,
}

/// One condition of an object's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub kind: String,
    pub name: String,
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
}

impl Condition {
    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}={} ({}) {}",
            self.kind, self.name, self.type_, self.status, self.reason, self.message
        )
    }
}

impl Translation {
    /// Translates the objects in `input` (a YAML file).
    pub fn of_file(input: &Path, output: Output) -> Result<Self> {
        let to = match output {
            Output::Status => "gateway-api",
            Output::StatusAndXds => "gateway-api,xds",
        };
        let json = cmd("egctl")
            .args(["x", "translate", "--from", "gateway-api", "--to", to])
            .args(["--type", "all", "--output", "json", "--file"])
            .arg(input)
            .read()?;
        Self::parse(&json)
    }

    /// Builds the kustomization `dir` into `work/input.yaml` and translates it.
    pub fn of_kustomization(dir: &Path, work: &Path, output: Output) -> Result<Self> {
        let input = work.join("input.yaml");
        write(&input, kustomize::build(dir)?)?;
        Self::of_file(&input, output)
    }

    pub fn parse(json: &str) -> Result<Self> {
        let json: Value = serde_json::from_str(json)
            .map_err(|err| Error::parse("egctl x translate output", err))?;
        Ok(Self { json })
    }

    pub fn json(&self) -> &Value {
        &self.json
    }

    /// Every status condition of the objects of `kind` (the output's key,
    /// e.g. `grpcRoutes`, `securityPolicies`), under their route parents or
    /// policy ancestors. Empty when there is no such object.
    pub fn conditions(&self, kind: &str) -> Vec<Condition> {
        let objects = self.json[kind]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut out = Vec::new();
        for object in objects {
            let name = object["metadata"]["name"].as_str().unwrap_or("?");
            let status = &object["status"];
            let holders = status["parents"]
                .as_array()
                .or(status["ancestors"].as_array())
                .map(Vec::as_slice)
                .unwrap_or_default();
            for condition in holders
                .iter()
                .flat_map(|h| h["conditions"].as_array().into_iter().flatten())
            {
                let field = |key: &str| condition[key].as_str().unwrap_or_default().to_owned();
                out.push(Condition {
                    kind: kind.to_owned(),
                    name: name.to_owned(),
                    type_: field("type"),
                    status: field("status"),
                    reason: field("reason"),
                    message: field("message"),
                });
            }
        }
        out
    }

    /// Fails unless there are at least `min` objects of `kind`, each with
    /// an `Accepted` condition, and every condition is True (ResolvedRefs,
    /// Merged ... must not report a failure either). Returns the conditions.
    pub fn require_accepted(&self, kind: &str, min: usize) -> Result<Vec<Condition>> {
        let count = self.json[kind].as_array().map_or(0, Vec::len);
        if count < min {
            return Err(Error::Check(format!(
                "{count} {kind} in the translation, want at least {min}"
            )));
        }
        let conditions = self.conditions(kind);
        let bad: Vec<String> = conditions
            .iter()
            .filter(|c| !c.is_true())
            .map(|c| c.to_string())
            .collect();
        if !bad.is_empty() {
            return Err(Error::Check(format!(
                "not accepted/resolved:\n  {}",
                bad.join("\n  ")
            )));
        }
        for object in self.json[kind].as_array().into_iter().flatten() {
            let name = object["metadata"]["name"].as_str().unwrap_or("?");
            if !conditions
                .iter()
                .any(|c| c.name == name && c.type_ == "Accepted")
            {
                return Err(Error::Check(format!(
                    "{kind} {name}: no Accepted condition"
                )));
            }
        }
        Ok(conditions)
    }

    /// The xDS config dump whose type ends with `type_suffix` (e.g.
    /// `ListenersConfigDump`) of the one Gateway envoy-poc/eg.
    pub fn config_dump(&self, type_suffix: &str) -> Result<&Value> {
        self.json["xds"]["envoy-poc/eg"]["configs"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| {
                c["@type"]
                    .as_str()
                    .is_some_and(|t| t.ends_with(type_suffix))
            })
            .ok_or_else(|| {
                Error::Check(format!(
                    "no {type_suffix} in the translation (translated with xDS?)"
                ))
            })
    }

    /// The HTTP filters, in order, of the listener on `port`.
    pub fn http_filter_configs(&self, port: u64) -> Result<Vec<&Value>> {
        let listeners = self.config_dump("ListenersConfigDump")?["dynamicListeners"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let hcm = listeners
            .iter()
            .map(|l| &l["activeState"]["listener"])
            .filter(|l| l["address"]["socketAddress"]["portValue"] == port)
            .flat_map(|l| {
                l["defaultFilterChain"]["filters"]
                    .as_array()
                    .into_iter()
                    .flatten()
            })
            .find(|f| f["name"] == "envoy.filters.network.http_connection_manager")
            .ok_or_else(|| Error::Check(format!("no HTTP connection manager on :{port}")))?;
        Ok(hcm["typedConfig"]["httpFilters"]
            .as_array()
            .into_iter()
            .flatten()
            .collect())
    }

    /// The HTTP filter names, in order, of the listener on `port`.
    pub fn http_filters(&self, port: u64) -> Result<Vec<String>> {
        Ok(self
            .http_filter_configs(port)?
            .into_iter()
            .filter_map(|f| f["name"].as_str().map(str::to_owned))
            .collect())
    }

    /// Every route of every route configuration.
    pub fn routes(&self) -> Result<Vec<&Value>> {
        Ok(self.config_dump("RoutesConfigDump")?["dynamicRouteConfigs"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|rc| {
                rc["routeConfig"]["virtualHosts"]
                    .as_array()
                    .into_iter()
                    .flatten()
            })
            .flat_map(|vh| vh["routes"].as_array().into_iter().flatten())
            .collect())
    }

    /// The routes Envoy Gateway made of GRPCRoute `name` in envoy-poc.
    pub fn routes_of(&self, grpc_route: &str) -> Result<Vec<&Value>> {
        let prefix = format!("grpcroute/{}/{grpc_route}/", super::NAMESPACE);
        Ok(self
            .routes()?
            .into_iter()
            .filter(|r| r["name"].as_str().is_some_and(|n| n.starts_with(&prefix)))
            .collect())
    }
}

/// Every string value under `key` anywhere inside `value`.
pub fn strings_under<'a>(value: &'a Value, key: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    collect(value, key, &mut out);
    out
}

fn collect<'a>(value: &'a Value, key: &str, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match v.as_str() {
                    Some(s) if k == key => out.push(s),
                    _ => collect(v, key, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, key, out)),
        _ => {}
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    fn route(name: &str, resolved: (&str, &str)) -> Value {
        json!({
            "metadata": {"name": name},
            "status": {"parents": [{"conditions": [
                {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "ok"},
                {"type": "ResolvedRefs", "status": resolved.0, "reason": resolved.1, "message": ""}
            ]}]}
        })
    }

    /// A translation shaped like egctl's: routes and policies with status,
    /// one listener on 8080 with the given filters, one route with the
    /// given per-filter config.
    pub(crate) fn fixture(filters: &[&str], per_filter: Value) -> Translation {
        let filters: Vec<Value> = filters.iter().map(|f| json!({"name": f})).collect();
        Translation {
            json: json!({
                "grpcRoutes": [route("customer-service", ("True", "ResolvedRefs"))],
                "securityPolicies": [
                    {"metadata": {"name": "customer-service"}, "status": {"ancestors": [{"conditions": [
                        {"type": "Accepted", "status": "True", "reason": "Accepted", "message": ""}]}]}}
                ],
                "xds": {"envoy-poc/eg": {"configs": [
                    {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump", "dynamicListeners": [
                        {"activeState": {"listener": {"address": {"socketAddress": {"portValue": 19001}},
                            "defaultFilterChain": {"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                "typedConfig": {"httpFilters": [{"name": "envoy.filters.http.health_check"}]}}]}}}},
                        {"activeState": {"listener": {"address": {"socketAddress": {"portValue": 8080}},
                            "defaultFilterChain": {"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                "typedConfig": {"httpFilters": filters}}]}}}}
                    ]},
                    {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump", "dynamicRouteConfigs": [
                        {"routeConfig": {"virtualHosts": [{"routes": [
                            {"name": "grpcroute/envoy-poc/customer-service/rule/0/match/0/*", "typedPerFilterConfig": per_filter},
                            {"name": "grpcroute/envoy-poc/grpc-reflection/rule/0/match/0/*"}
                        ]}]}}
                    ]}
                ]}}
            }),
        }
    }

    #[test]
    fn conditions_come_from_parents_and_ancestors() {
        let t = fixture(&[], json!({}));
        let routes = t.conditions("grpcRoutes");
        assert_eq!(routes.len(), 2);
        assert_eq!(
            routes[1].to_string(),
            "grpcRoutes customer-service: ResolvedRefs=True (ResolvedRefs) "
        );
        assert_eq!(t.conditions("securityPolicies").len(), 1);
        assert!(t.conditions("backendTrafficPolicies").is_empty());
        assert_eq!(t.require_accepted("grpcRoutes", 1).unwrap().len(), 2);
        assert!(
            t.require_accepted("securityPolicies", 2).is_err(),
            "too few"
        );
        assert!(t.require_accepted("envoyPatchPolicies", 1).is_err(), "none");
    }

    #[test]
    fn a_false_condition_fails_with_its_reason() {
        let t = Translation {
            json: json!({"grpcRoutes": [route("a", ("True", "ResolvedRefs")), route("b", ("False", "PortNotFound"))]}),
        };
        let err = t.require_accepted("grpcRoutes", 1).unwrap_err().to_string();
        assert!(
            err.contains("grpcRoutes b: ResolvedRefs=False (PortNotFound)"),
            "{err}"
        );
        assert!(!err.contains("grpcRoutes a"), "{err}");
        let no_accepted = Translation {
            json: json!({"grpcRoutes": [{"metadata": {"name": "c"}, "status": {"parents": []}}]}),
        };
        assert!(no_accepted.require_accepted("grpcRoutes", 1).is_err());
    }

    #[test]
    fn filters_are_the_8080_listeners_in_order() {
        let t = fixture(&["a", "b"], json!({}));
        assert_eq!(t.http_filters(8080).unwrap(), ["a", "b"]);
        assert_eq!(
            t.http_filters(19001).unwrap(),
            ["envoy.filters.http.health_check"]
        );
        assert!(t.http_filters(9).is_err());
        let status_only = Translation {
            json: json!({"grpcRoutes": []}),
        };
        assert!(status_only.http_filters(8080).is_err());
    }

    #[test]
    fn routes_by_grpc_route_and_strings_by_key() {
        let t = fixture(
            &[],
            json!({"x": {"regex": "^a$", "deeper": [{"regex": "^b$"}]}}),
        );
        assert_eq!(t.routes().unwrap().len(), 2);
        let customer = t.routes_of("customer-service").unwrap();
        assert_eq!(customer.len(), 1);
        assert!(
            t.routes_of("customer").unwrap().is_empty(),
            "a name, not a prefix"
        );
        let mut regexes = strings_under(customer[0], "regex");
        regexes.sort();
        assert_eq!(regexes, ["^a$", "^b$"]);
    }

    #[test]
    fn parse_rejects_what_is_not_json() {
        assert!(Translation::parse("Error: the GatewayClass resource is required").is_err());
    }
}
