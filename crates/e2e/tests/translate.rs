//! Envoy Gateway's own translator, offline: `egctl x translate` turns the
//! cluster overlay (through `envoy-ext/tests/translate/`, see its
//! kustomization) into the xDS that Envoy would receive, and we check what
//! this project relies on. Needs `kubectl` and `egctl` on PATH (`just tools`;
//! `just test-offline` runs it): it lives in crates/e2e with every other test
//! that needs a tool or a stack, which a plain `cargo test` on a fresh clone
//! has neither of.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{path::Path, process::Command, sync::OnceLock};

use envoy_ext::services::ServiceTable;
use serde_json::Value;

fn table() -> ServiceTable {
    ServiceTable::committed().unwrap()
}

/// Envoy Gateway's route and cluster name prefix for a GRPCRoute.
fn route_prefix(table: &ServiceTable, route: &str) -> String {
    format!("grpcroute/{}/{route}/", table.gateway.namespace)
}

fn run(program: &str, args: &[&str], stdin_file: Option<&Path>) -> String {
    let mut command = Command::new(program);
    command.args(args);
    if let Some(file) = stdin_file {
        command.stdin(std::fs::File::open(file).unwrap());
    }
    let output = command.output().unwrap_or_else(|err| {
        panic!("cannot run {program}: {err} (run `just tools`, then `just test`)")
    });
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The translation, computed once for all tests.
fn translation() -> &'static Value {
    static TRANSLATION: OnceLock<Value> = OnceLock::new();
    TRANSLATION.get_or_init(|| {
        let overlay = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../envoy-ext/tests/translate");
        let rendered = run("kubectl", &["kustomize", overlay.to_str().unwrap()], None);
        let input =
            std::env::temp_dir().join(format!("envoy-ext-translate-{}.yaml", std::process::id()));
        std::fs::write(&input, rendered).unwrap();
        let json = run(
            "egctl",
            &[
                "x",
                "translate",
                "-f",
                input.to_str().unwrap(),
                "--to",
                "gateway-api,xds",
                "-o",
                "json",
            ],
            None,
        );
        std::fs::remove_file(&input).ok();
        serde_json::from_str(&json).unwrap()
    })
}

/// The xDS config dump of the given type (e.g. `ListenersConfigDump`).
fn config_dump(kind: &str) -> &'static Value {
    let table = table();
    let gateway = format!("{}/{}", table.gateway.namespace, table.gateway.name);
    translation()["xds"][gateway.as_str()]["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["@type"].as_str().unwrap().ends_with(kind))
        .unwrap_or_else(|| panic!("no {kind}"))
}

/// The HTTP connection manager of the gateway's listener.
fn gateway_hcm() -> &'static Value {
    config_dump("ListenersConfigDump")["dynamicListeners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["activeState"]["listener"])
        .filter(|l| l["address"]["socketAddress"]["portValue"] == table().gateway.port)
        .flat_map(|l| l["defaultFilterChain"]["filters"].as_array().unwrap())
        .find(|f| f["name"] == "envoy.filters.network.http_connection_manager")
        .map(|f| &f["typedConfig"])
        .expect("an HTTP connection manager on the gateway port")
}

fn routes() -> Vec<&'static Value> {
    config_dump("RoutesConfigDump")["dynamicRouteConfigs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|rc| rc["routeConfig"]["virtualHosts"].as_array().unwrap())
        .flat_map(|vh| vh["routes"].as_array().unwrap())
        .collect()
}

#[test]
fn every_object_and_policy_is_accepted() {
    let t = translation();
    for kind in ["grpcRoutes", "backendTrafficPolicies", "envoyPatchPolicies"] {
        let objects = t[kind].as_array().unwrap_or_else(|| panic!("no {kind}"));
        assert!(!objects.is_empty(), "no {kind}");
        for object in objects {
            let name = object["metadata"]["name"].as_str().unwrap();
            let conditions: Vec<&Value> = object["status"]["parents"]
                .as_array()
                .or(object["status"]["ancestors"].as_array())
                .unwrap_or_else(|| panic!("{kind} {name}: no status"))
                .iter()
                .flat_map(|s| s["conditions"].as_array().unwrap())
                .collect();
            let accepted = conditions.iter().find(|c| c["type"] == "Accepted");
            assert!(
                accepted.is_some_and(|c| c["status"] == "True"),
                "{kind} {name} not accepted: {conditions:?}"
            );
            for condition in &conditions {
                // Merged/ResolvedRefs/... must not report a failure either.
                assert_eq!(condition["status"], "True", "{kind} {name}: {condition}");
            }
        }
    }
}

#[test]
fn transcoder_leads_the_http_filters_with_the_api_services() {
    let hcm = gateway_hcm();
    let filters = hcm["httpFilters"].as_array().unwrap();
    let names: Vec<&str> = filters
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    // Only the REST filters may run before the transcoder, each skipped for
    // gRPC calls; every other filter Envoy Gateway adds (rate limit, and
    // later auth) runs after it, so transcoded calls meet them on the
    // GRPCRoute like native gRPC calls.
    let namespace = &e2e::service_table().gateway.namespace;
    assert!(
        names.len() > 4
            && names[0] == "rest-grpc-headers"
            && names[1] == "rest-body-limit"
            && envoy_ext::rest_extension::is_lua_filter(names[2], namespace)
            && names[3] == "envoy.filters.http.grpc_json_transcoder",
        "{names:?}"
    );
    for filter in &filters[..3] {
        let config = &filter["typedConfig"];
        assert!(
            config["@type"]
                .as_str()
                .is_some_and(|t| t.ends_with(".ExtensionWithMatcher"))
                && serde_json::to_string(&config["xdsMatcher"])
                    .unwrap()
                    .contains(r#""prefix":"application/grpc""#),
            "{filter}"
        );
        assert_ne!(filter["disabled"], true, "{filter}");
    }
    // Envoy Gateway's Lua (disabled but for the GRPCRoutes' routes, which a
    // REST path matches only once transcoded) is replaced by a wrapper of
    // its name and config, enabled for the whole listener, that runs it only
    // for the methods the extension has work for.
    let lua = &filters[2]["typedConfig"];
    assert!(
        lua["extensionConfig"]["typedConfig"]["defaultSourceCode"]["inlineString"]
            .as_str()
            .is_some_and(|code| code.contains("envoy_on_request") && code.contains("BODIES")),
        "{lua}"
    );
    let methods = envoy_ext::rest_extension::lua_methods(api::DESCRIPTOR_SET).unwrap();
    assert!(
        serde_json::to_string(&lua["xdsMatcher"])
            .unwrap()
            .contains(&format!("^({})$", methods.join("|"))),
        "{lua}"
    );
    assert_eq!(
        names.iter().filter(|n| n.contains(".lua")).count(),
        1,
        "{names:?}"
    );
    // gRPC's own headers leave REST responses.
    let strip = &filters[0]["typedConfig"]["extensionConfig"]["typedConfig"];
    assert_eq!(
        strip["mutations"]["responseMutations"][0]["removeOnMatch"]["keyMatcher"]["prefix"],
        "grpc-",
        "{strip}"
    );
    // Every response, REST or gRPC, carries the request id.
    assert_eq!(hcm["alwaysSetRequestIdInResponse"], true, "{hcm}");
    let config = &filters[3]["typedConfig"];
    assert_eq!(
        config["services"],
        serde_json::json!([
            api::customer::v1::SERVICE_NAME,
            api::product::v1::SERVICE_NAME
        ])
    );
    assert_eq!(config["convertGrpcStatus"], true);
    assert!(
        names.contains(&"envoy.filters.http.local_ratelimit"),
        "{names:?}"
    );

    // The guard is a buffer with the REST limit that gRPC calls skip.
    let guard = &filters[1]["typedConfig"];
    assert_eq!(
        guard["extensionConfig"]["typedConfig"]["maxRequestBytes"],
        envoy_ext::REST_BODY_LIMIT_BYTES
    );
    let skip = &guard["xdsMatcher"]["matcherList"]["matchers"][0];
    assert_eq!(
        skip["predicate"]["singlePredicate"]["valueMatch"]["prefix"],
        "application/grpc"
    );
}

#[test]
fn rest_callers_get_json_local_replies() {
    let mappers = gateway_hcm()["localReplyConfig"]["mappers"]
        .as_array()
        .expect("localReplyConfig");
    assert!(mappers.len() >= 10, "{mappers:?}");
    // The first leaves the REST extension's BadRequest answers as they are;
    // every other one gives a JSON body.
    let (first, rest) = mappers.split_first().expect("mappers");
    let matcher = &first["filter"]["metadataFilter"]["matcher"];
    assert_eq!(
        matcher["filter"],
        envoy_ext::rest_extension::METADATA_NAMESPACE
    );
    assert_eq!(
        matcher["path"][0]["key"],
        envoy_ext::rest_extension::BAD_BODY_KEY
    );
    assert!(first.get("bodyFormatOverride").is_none(), "{first}");
    assert!(
        rest.iter()
            .all(|m| m["bodyFormatOverride"]["jsonFormat"].is_object())
    );
}

#[test]
fn every_service_has_routes_clusters_and_its_own_limit_from_the_table() {
    let clusters: Vec<&str> = config_dump("ClustersConfigDump")["dynamicActiveClusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cluster"]["name"].as_str().unwrap())
        .collect();
    let table = table();
    let expected: Vec<(String, u32)> = table
        .services
        .iter()
        // The translated overlay is the cluster's: with the global tier the
        // local bucket is the burst guard (the global count is the rate-limit
        // service's, see the_global_tier_follows_the_transcoder_...).
        .map(|s| {
            (
                route_prefix(&table, &s.name),
                s.burst_guard_per_minute(&table.gateway),
            )
        })
        .chain([(
            route_prefix(&table, "grpc-reflection"),
            table.gateway.default_limit_per_minute,
        )])
        .collect();
    for (route, per_minute) in &expected {
        let route = route.as_str();
        assert!(
            clusters.iter().any(|c| c.starts_with(route)),
            "no cluster for {route}: {clusters:?}"
        );
        let matching: Vec<&Value> = routes()
            .into_iter()
            .filter(|r| r["name"].as_str().unwrap().starts_with(route))
            .collect();
        assert!(!matching.is_empty(), "no route {route}");
        for r in matching {
            let limit = &r["typedPerFilterConfig"]["envoy.filters.http.local_ratelimit"];
            assert_eq!(
                limit["rateLimitedAsResourceExhausted"], true,
                "{route}: {limit}"
            );
            let buckets: Vec<&Value> = limit["descriptors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| &d["tokenBucket"])
                .collect();
            assert_eq!(buckets.len(), 1, "{route}: {buckets:?}");
            assert_eq!(buckets[0]["maxTokens"], *per_minute, "{route}");
            assert_eq!(buckets[0]["fillInterval"], "60s", "{route}");
        }
    }
}

#[test]
fn service_routes_retry_only_unprocessed_requests_and_clusters_health_check() {
    let clusters = config_dump("ClustersConfigDump")["dynamicActiveClusters"]
        .as_array()
        .unwrap();
    let table = table();
    for row in &table.services {
        let route = route_prefix(&table, &row.name);
        let route = route.as_str();
        let service = row.grpc_path_prefix();
        for r in routes()
            .into_iter()
            .filter(|r| r["name"].as_str().unwrap().starts_with(route))
        {
            let retry = &r["route"]["retryPolicy"];
            // Never "reset" or "5xx": those may repeat a request a service
            // already applied (a create twice). Nor "unavailable": a
            // service says it when the database every instance shares is
            // down, so a retry only multiplies the caller's wait.
            assert_eq!(
                retry["retryOn"], "connect-failure,refused-stream,reset-before-request",
                "{route}: {retry}"
            );
            assert_eq!(
                retry["retryHostPredicate"][0]["name"],
                "envoy.retry_host_predicates.previous_hosts",
                "{route}: retries go to another instance"
            );
        }
        let cluster = clusters
            .iter()
            .map(|c| &c["cluster"])
            .find(|c| c["name"].as_str().unwrap().starts_with(route))
            .unwrap_or_else(|| panic!("no cluster {route}"));
        let checks = cluster["healthChecks"].as_array().unwrap();
        assert_eq!(checks.len(), 1, "{route}: {checks:?}");
        assert_eq!(
            checks[0]["grpcHealthCheck"]["serviceName"], service,
            "{route}: readiness is the service's own health status"
        );
        // Without it Envoy sends the cluster's name, whose slashes the
        // services refuse (k8s/gateway/health-checks.yaml).
        let authority = checks[0]["grpcHealthCheck"]["authority"]
            .as_str()
            .unwrap_or_default();
        assert!(
            !authority.is_empty() && !authority.contains('/'),
            "{route}: health-check :authority {authority:?}"
        );
        assert_eq!(
            cluster["outlierDetection"]["maxEjectionPercent"], 50,
            "{route}"
        );
        let lb = cluster["loadBalancingPolicy"].to_string();
        assert!(
            lb.contains("round_robin"),
            "{route}: round robin, so a retry finds the other instance: {lb}"
        );
        assert!(
            lb.contains("round_robin")
                || cluster["lbPolicy"].is_null() && !lb.contains("least_request"),
            "{route}: round robin, so a retry finds the other instance: {lb}"
        );
    }
}

/// The cluster overlay's global tier (k8s/global-limits): Envoy Gateway's
/// rate-limit filter runs after the transcoder (so REST and gRPC share its
/// counters), refuses gRPC calls with RESOURCE_EXHAUSTED, asks the
/// rate-limit service through `ratelimit_cluster`, and every service route
/// sends it a descriptor per client address.
#[test]
fn the_global_tier_follows_the_transcoder_and_counts_per_client() {
    let filters = gateway_hcm()["httpFilters"].as_array().unwrap();
    let position = |name: &str| {
        filters
            .iter()
            .position(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no {name} filter"))
    };
    assert!(
        position("envoy.filters.http.grpc_json_transcoder")
            < position("envoy.filters.http.ratelimit")
    );
    let global = &filters[position("envoy.filters.http.ratelimit")]["typedConfig"];
    assert_eq!(global["rateLimitedAsResourceExhausted"], true, "{global}");
    assert_eq!(
        global["rateLimitService"]["grpcService"]["envoyGrpc"]["clusterName"],
        "ratelimit_cluster"
    );
    // (The cluster itself is emitted only next to Envoy Gateway's `envoy`
    // client-certificate Secret, which certgen creates on an install and
    // egctl does not have: the local-cluster suite covers it.)
    let table = table();
    for service in &table.services {
        let prefix = route_prefix(&table, &service.name);
        let with_global: Vec<&Value> = routes()
            .into_iter()
            .filter(|r| r["name"].as_str().is_some_and(|n| n.starts_with(&prefix)))
            .map(|r| &r["typedPerFilterConfig"]["envoy.filters.http.ratelimit"])
            .filter(|config| !config.is_null())
            .collect();
        assert!(
            !with_global.is_empty(),
            "{}: no global rate_limits",
            service.name
        );
        for config in with_global {
            let actions = config["rateLimits"].to_string();
            assert!(
                actions.contains("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"),
                "{}: not per client: {actions}",
                service.name
            );
        }
    }
}
