//! `check-auth`, offline: Envoy Gateway's translator accepts the auth layer
//! (k8s/auth) on the cluster overlay, and the xDS it makes of it does what
//! docs/auth.md says: JWT, then roles on the gRPC path, then the per-user
//! rate limit, all after the transcoder so REST calls meet them too.

use std::path::Path;

use serde_json::Value;

use super::{
    Result, SERVICES, ensure, fresh_dir, grpc_service,
    kustomize::{self, Kustomization},
    translate::{Output, Translation, strings_under},
};

/// The filters whose order matters after the REST extension's Lua (which
/// must see REST before the transcoder: envoy-ext/src/rest_extension.rs), in
/// the order they must run: REST is transcoded to gRPC first, so auth and
/// limits see one kind of request.
const FILTER_ORDER: [&str; 4] = [
    "envoy.filters.http.grpc_json_transcoder",
    "envoy.filters.http.jwt_authn",
    "envoy.filters.http.rbac",
    // The global tier's filter, which counts the per-user limit.
    "envoy.filters.http.ratelimit",
];

/// Stands for the REST extension's filter in [`check_filter_order`] (its
/// full name depends on the provider: `envoy_ext::rest_extension`).
const REST_LUA: &str = "<rest extension lua>";

/// The cluster overlay as `egctl x translate` can take it offline (Service
/// ClusterIPs, default listener names); shared with the envoy-ext tests.
pub const TRANSLATE_OVERLAY: &str = "envoy-ext/tests/translate";

/// The claim header the per-user limit keys on (k8s/auth: claimToHeaders).
const USER_HEADER: &str = "x-user-id";

/// The RBAC path regexes for a service: (read rule, write rule).
pub fn role_regexes(service: &str) -> [String; 2] {
    let path = grpc_service(service).replace('.', "\\.");
    [
        format!("^/{path}/(Get|List)[A-Za-z]*$"),
        format!("^/{path}/(Create|Update|Delete)[A-Za-z]*$"),
    ]
}

/// What the auth layer must look like in the translation.
pub fn check(t: &Translation) -> Result<()> {
    t.require_accepted("securityPolicies", SERVICES.len())?;
    for kind in ["grpcRoutes", "backendTrafficPolicies", "envoyPatchPolicies"] {
        t.require_accepted(kind, 1)?;
    }
    check_filter_order(&t.http_filters(8080)?)?;
    let jwt = t
        .http_filter_configs(8080)?
        .into_iter()
        .find(|f| f["name"] == "envoy.filters.http.jwt_authn")
        .cloned()
        .unwrap_or_default();
    check_user_header(&jwt)?;
    for svc in SERVICES.iter().copied() {
        let routes = t.routes_of(svc)?;
        ensure(!routes.is_empty(), || {
            format!("no route for GRPCRoute {svc}")
        })?;
        for route in routes {
            check_route(svc, route)?;
        }
    }
    Ok(())
}

/// The REST extension's filter and those of [`FILTER_ORDER`] are all there,
/// in that order.
pub fn check_filter_order(filters: &[String]) -> Result<()> {
    let order: Vec<&str> = std::iter::once(REST_LUA).chain(FILTER_ORDER).collect();
    let named: Vec<&str> = filters
        .iter()
        .map(|f| {
            if envoy_ext::rest_extension::is_lua_filter(f, super::NAMESPACE) {
                REST_LUA
            } else {
                f.as_str()
            }
        })
        .collect();
    let positions: Vec<Option<usize>> = order
        .iter()
        .map(|want| named.iter().position(|f| f == want))
        .collect();
    ensure(
        positions.iter().all(Option::is_some) && positions.is_sorted(),
        || format!("HTTP filters on :8080 must run {order:?} in that order: {filters:?}"),
    )
}

/// The JWT filter copies the user (claim `sub`) into the header the
/// per-user limit keys on; without it every caller shares one bucket.
pub fn check_user_header(jwt_filter: &Value) -> Result<()> {
    let headers = strings_under(jwt_filter, "headerName");
    ensure(headers.contains(&USER_HEADER), || {
        format!(
            "the JWT filter does not set {USER_HEADER} from the token (claimToHeaders: {headers:?})"
        )
    })
}

/// One route of service `svc`: JWT on, the read and write rules on the
/// gRPC path, the per-user limit.
pub fn check_route(svc: &str, route: &Value) -> Result<()> {
    let name = route["name"].as_str().unwrap_or("?");
    let per_filter = &route["typedPerFilterConfig"];
    let regexes = strings_under(&per_filter["envoy.filters.http.rbac"], "regex");
    for want in role_regexes(svc) {
        ensure(regexes.contains(&want.as_str()), || {
            format!("{name}: no RBAC rule on the gRPC path {want:?} (has {regexes:?})")
        })?;
    }
    ensure(
        per_filter["envoy.filters.http.jwt_authn"].is_object(),
        || format!("{name}: JWT authentication is not on"),
    )?;
    // The descriptors the route sends to the rate-limit service.
    let headers = strings_under(&per_filter["envoy.filters.http.ratelimit"], "headerName");
    ensure(headers.contains(&USER_HEADER), || {
        format!(
            "{name}: no per-user ({USER_HEADER}) global rate-limit descriptor (has {headers:?})"
        )
    })
}

/// The translate check's input (the cluster overlay as egctl can take it,
/// envoy-ext/tests/translate) plus Keycloak and the auth layer.
pub fn run(root: &Path) -> Result<()> {
    let dir = root.join(".local/check-auth");
    fresh_dir(&dir)?;
    Kustomization {
        resources: vec![
            root.join("envoy-ext/tests/translate"),
            root.join("k8s/keycloak"),
        ],
        components: vec![root.join("k8s/auth")],
        ..Default::default()
    }
    .write(&dir)?;
    // The local stack's auth overlay must build too.
    kustomize::build(&root.join("k8s/overlays/local-auth"))?;
    let t = Translation::of_kustomization(&dir, &dir, Output::StatusAndXds)?;
    check(&t)?;
    println!(
        "check-auth: SecurityPolicies accepted; transcoder -> jwt_authn -> rbac -> ratelimit; \
         RBAC on the gRPC paths; per-user global descriptor present"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::translate::tests::fixture;
    use serde_json::json;

    const GOOD_FILTERS: [&str; 8] = [
        "rest-body-limit",
        "envoy.filters.http.lua/envoyextensionpolicy/envoy-poc/rest/lua/0",
        "envoy.filters.http.grpc_json_transcoder",
        "envoy.filters.http.jwt_authn",
        "envoy.filters.http.rbac",
        "envoy.filters.http.local_ratelimit",
        "envoy.filters.http.ratelimit",
        "envoy.filters.http.router",
    ];

    fn route(regexes: &[String], header: &str, jwt: bool) -> Value {
        let matchers: Vec<Value> = regexes
            .iter()
            .map(|r| json!({"predicate": {"singlePredicate": {"valueMatch": {"safeRegex": {"regex": r}}}}}))
            .collect();
        let mut per_filter = json!({
            "envoy.filters.http.rbac": {"rbac": {"matcher": {"matcherList": {"matchers": matchers}}}},
            "envoy.filters.http.ratelimit": {"rateLimits": [{"actions": [{"requestHeaders": {"headerName": header}}]}]}
        });
        if jwt {
            per_filter["envoy.filters.http.jwt_authn"] = json!({"requirementName": "keycloak"});
        }
        json!({"name": "grpcroute/envoy-poc/customer-service/rule/0/match/0/*", "typedPerFilterConfig": per_filter})
    }

    fn names(filters: &[&str]) -> Vec<String> {
        filters.iter().map(|f| (*f).to_owned()).collect()
    }

    #[test]
    fn regexes_match_the_securitypolicies() {
        assert_eq!(
            role_regexes("customer-service"),
            [
                r"^/customer\.v1\.CustomerService/(Get|List)[A-Za-z]*$",
                r"^/customer\.v1\.CustomerService/(Create|Update|Delete)[A-Za-z]*$"
            ]
        );
        let policies =
            crate::k8s::read(&crate::k8s::root().join("k8s/auth/securitypolicies.yaml")).unwrap();
        for svc in SERVICES.iter().copied() {
            for regex in role_regexes(svc) {
                assert!(policies.contains(&format!("'{regex}'")), "{regex}");
            }
        }
    }

    #[test]
    fn the_inputs_exist() {
        let root = crate::k8s::root();
        for dir in [
            TRANSLATE_OVERLAY,
            "k8s/keycloak",
            "k8s/auth",
            "k8s/overlays/local-auth",
        ] {
            assert!(root.join(dir).join("kustomization.yaml").is_file(), "{dir}");
        }
    }

    #[test]
    fn a_complete_route_passes() {
        let both = role_regexes("customer-service");
        check_route("customer-service", &route(&both, USER_HEADER, true)).unwrap();
    }

    #[test]
    fn a_route_missing_a_piece_fails() {
        let both = role_regexes("customer-service");
        let read_only = &both[..1];
        let err =
            check_route("customer-service", &route(read_only, USER_HEADER, true)).unwrap_err();
        assert!(err.to_string().contains("Create|Update|Delete"), "{err}");
        let err =
            check_route("customer-service", &route(&both, "x-forwarded-for", true)).unwrap_err();
        assert!(err.to_string().contains("per-user"), "{err}");
        let err = check_route("customer-service", &route(&both, USER_HEADER, false)).unwrap_err();
        assert!(err.to_string().contains("JWT"), "{err}");
        // The product rules do not satisfy the customer route.
        let err = check_route(
            "customer-service",
            &route(&role_regexes("product-service"), USER_HEADER, true),
        );
        assert!(err.is_err());
    }

    #[test]
    fn the_jwt_filter_must_set_the_user_header() {
        let jwt = |header: &str| {
            json!({"name": "envoy.filters.http.jwt_authn", "typedConfig": {"providers": {"keycloak_1": {
                "claimToHeaders": [{"claimName": "sub", "headerName": header}]}}}})
        };
        check_user_header(&jwt(USER_HEADER)).unwrap();
        assert!(check_user_header(&jwt("x-user")).is_err());
        assert!(check_user_header(&Value::Null).is_err(), "no JWT filter");
    }

    #[test]
    fn filter_order() {
        check_filter_order(&names(&GOOD_FILTERS)).unwrap();
        let mut swapped = GOOD_FILTERS;
        swapped.swap(3, 4); // rbac before jwt_authn
        assert!(check_filter_order(&names(&swapped)).is_err());
        assert!(
            check_filter_order(&names(&GOOD_FILTERS[..6])).is_err(),
            "no global ratelimit"
        );
        let mut limit_first = GOOD_FILTERS;
        limit_first.swap(2, 6); // the limit before the transcoder
        assert!(check_filter_order(&names(&limit_first)).is_err());
        let mut lua_late = GOOD_FILTERS;
        lua_late.swap(1, 2); // the REST extension after the transcoder
        assert!(check_filter_order(&names(&lua_late)).is_err());
    }

    #[test]
    fn the_whole_check_wants_both_services_and_their_policies() {
        // The fixture has one SecurityPolicy: fewer than the services.
        let t = fixture(&GOOD_FILTERS, json!({}));
        let err = check(&t).unwrap_err().to_string();
        assert!(err.contains("securityPolicies"), "{err}");
    }
}
