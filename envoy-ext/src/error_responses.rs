//! The `error-responses` policy: how the gateway answers errors it makes
//! itself, so callers see the same shapes as for the services' own errors.

use crate::{
    HCM_JSON_PATH, LISTENER_NAME, ROUTE_CONFIG_NAME, policy_header,
    rest_extension::{BAD_BODY_KEY, METADATA_NAMESPACE},
};

/// HTTP statuses the gateway answers by itself, and the gRPC code a REST
/// caller finds in the JSON body, as the transcoder would have printed it
/// for the same failure coming from a service.
const GATEWAY_ERRORS: &[(u16, i32, &str)] = &[
    (
        400,
        3,
        "INVALID_ARGUMENT: malformed JSON, unknown query parameter",
    ),
    (401, 16, "UNAUTHENTICATED"),
    (403, 7, "PERMISSION_DENIED"),
    (404, 5, "NOT_FOUND: no method for this path"),
    (405, 12, "UNIMPLEMENTED: method not mapped"),
    (413, 8, "RESOURCE_EXHAUSTED: body over the buffer limit"),
    (415, 3, "INVALID_ARGUMENT: unsupported content type"),
    (429, 8, "RESOURCE_EXHAUSTED: rate limited"),
    (502, 14, "UNAVAILABLE"),
    (503, 14, "UNAVAILABLE: service down or unreachable"),
    (504, 4, "DEADLINE_EXCEEDED"),
];

/// Renders the policy. It has two patches:
/// 1. every route with a local rate limit answers RESOURCE_EXHAUSTED instead
///    of Envoy's default UNAVAILABLE (which invites immediate retries); Envoy
///    Gateway does not expose that switch;
/// 2. the HTTP connection manager's local replies to REST callers get a JSON
///    body `{"code": <gRPC code>, "message": ..., "details": []}`, except
///    the 400s of the REST extension for bodies that do not fit the schema,
///    which already carry theirs, with a google.rpc.BadRequest.
pub fn render_error_responses_policy() -> String {
    let header = policy_header(
        "error-responses",
        "How the gateway answers the errors it makes itself: RESOURCE_EXHAUSTED
for rate-limited gRPC calls, and JSON bodies shaped like the services'
errors ({\"code\": <gRPC code>, \"message\": ..., \"details\": []}) for REST
callers. Native gRPC calls keep grpc-status/grpc-message untouched.",
    );
    let mappers: String = GATEWAY_ERRORS
        .iter()
        .map(|&(http_status, grpc_code, meaning)| rest_mapper(http_status, grpc_code, meaning))
        .collect();
    format!(
        r#"{header}    - type: type.googleapis.com/envoy.config.route.v3.RouteConfiguration
      name: {ROUTE_CONFIG_NAME}
      operation:
        op: add
        jsonPath: "$.virtual_hosts[*].routes[?(@.typed_per_filter_config['envoy.filters.http.local_ratelimit'])].typed_per_filter_config['envoy.filters.http.local_ratelimit']"
        path: /rate_limited_as_resource_exhausted
        value: true
    - type: type.googleapis.com/envoy.config.listener.v3.Listener
      name: {LISTENER_NAME}
      operation:
        op: add
        jsonPath: "{HCM_JSON_PATH}"
        path: /typed_config/local_reply_config
        value:
          mappers:
            # A REST body the REST extension refused (rest-extension.yaml):
            # its answer already names the fields; the first matching mapper
            # wins, and this one changes nothing.
            - filter:
                metadata_filter:
                  matcher:
                    filter: {METADATA_NAMESPACE}
                    path:
                      - key: {BAD_BODY_KEY}
                    value:
                      bool_match: true
                  match_if_key_not_found: false
{mappers}"#
    )
}

/// One local-reply mapper: a REST request answered `http_status` by the
/// gateway gets a JSON body carrying `grpc_code`.
///
/// A request is REST when it did not arrive as gRPC (no content type, or one
/// other than application/grpc*), or when the transcoder
/// rewrote it into gRPC (it records `x-envoy-original-method`); Envoy decides
/// "is this gRPC" from the request as it arrived, so transcoded requests get
/// plain HTTP local replies that need this body.
fn rest_mapper(http_status: u16, grpc_code: i32, meaning: &str) -> String {
    // A rate-limited call says which tier refused it: the local limiter's
    // details are `local_rate_limited`, the global one's
    // `request_rate_limited` (its reply has no body to show).
    let message = if http_status == 429 {
        "%RESPONSE_CODE_DETAILS%"
    } else {
        "%LOCAL_REPLY_BODY%"
    };
    format!(
        r#"            # {http_status} -> {meaning}
            - filter:
                and_filter:
                  filters:
                    - status_code_filter:
                        comparison:
                          op: EQ
                          value:
                            default_value: {http_status}
                            runtime_key: local_reply.rest_json.{http_status}
                    - or_filter:
                        filters:
                          - header_filter:
                              header:
                                name: content-type
                                present_match: false
                          - header_filter:
                              header:
                                name: content-type
                                string_match:
                                  prefix: application/grpc
                                invert_match: true
                          - header_filter:
                              header:
                                name: x-envoy-original-method
                                present_match: true
              body_format_override:
                json_format:
                  code: {grpc_code}
                  message: "{message}"
                  details: []
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_gateway_error_gets_a_mapper_with_its_grpc_code() {
        let yaml = render_error_responses_policy();
        for &(http_status, grpc_code, _) in GATEWAY_ERRORS {
            let mapper = format!("default_value: {http_status}\n");
            let start = yaml
                .find(&mapper)
                .unwrap_or_else(|| panic!("no mapper for {http_status}"));
            let code = yaml[start..]
                .lines()
                .find_map(|line| line.trim().strip_prefix("code: "))
                .expect("mapper has a code");
            assert_eq!(code, grpc_code.to_string(), "HTTP {http_status}");
        }
    }

    #[test]
    fn rate_limited_calls_become_resource_exhausted() {
        let yaml = render_error_responses_policy();
        assert!(yaml.contains("path: /rate_limited_as_resource_exhausted\n        value: true"));
        assert!(yaml.contains(&format!("name: {ROUTE_CONFIG_NAME}")));
    }

    #[test]
    fn the_rest_extensions_bad_body_answers_are_left_alone_first() {
        let yaml = render_error_responses_policy();
        let bad_body = yaml
            .find(&format!("- key: {BAD_BODY_KEY}\n"))
            .expect("a mapper for the extension's answers");
        let first_status_mapper = yaml.find("status_code_filter").expect("status mappers");
        assert!(bad_body < first_status_mapper, "{yaml}");
        assert!(yaml.contains(&format!("filter: {METADATA_NAMESPACE}\n")));
    }
}
