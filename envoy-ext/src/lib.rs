//! Renders the gateway's committed Kubernetes objects:
//!
//! - the EnvoyPatchPolicies that Envoy Gateway has no first-class API for,
//!   into `k8s/gateway/`: `transcoder.yaml` puts Envoy's gRPC-JSON transcoder
//!   at the head of the gateway listener's HTTP filters (everything in it
//!   that depends on the API comes from [`api::DESCRIPTOR_SET`], so the REST
//!   surface can never drift from the protos); `error-responses.yaml` makes
//!   the gateway's own errors match the services' (RESOURCE_EXHAUSTED for
//!   rate-limited gRPC calls, google.rpc.Status JSON bodies for REST);
//! - every object that repeats per service (routes, traffic and security
//!   policies, Backends, Deployments), from the service table
//!   ([`services::ServiceTable`], `envoy-ext/services.toml`; see
//!   [`manifests`]).
//!
//! The output is committed; a test fails when it is stale (`just render`
//! rewrites it).

mod error_responses;
pub mod manifests;
pub mod rest_extension;
pub mod services;

pub use error_responses::render_error_responses_policy;

use base64::Engine;
use prost::Message;
use prost_types::FileDescriptorSet;
use services::{ServiceTable, TableError};

/// Why the committed files cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the descriptor set does not decode: {0}")]
    Descriptor(#[from] prost::DecodeError),
    #[error(transparent)]
    Table(#[from] TableError),
    #[error(transparent)]
    Extension(#[from] rest_extension::ExtensionError),
    #[error(
        "services.toml and proto/ disagree: the table routes {table:?}, the API has {api:?} \
         (a new service is a proto, a crate and a row: docs/adding-a-service.md)"
    )]
    Mismatch {
        table: Vec<String>,
        api: Vec<String>,
    },
}

/// Every rendered file: its path relative to the repository root and its
/// content. The table must route exactly the API's services.
pub fn render_all(
    descriptor_set: &[u8],
    table: &ServiceTable,
) -> Result<Vec<(&'static str, String)>, RenderError> {
    let mut api = api_services(descriptor_set)?;
    let mut routed: Vec<String> = table
        .services
        .iter()
        .map(services::Service::grpc_path_prefix)
        .collect();
    api.sort();
    routed.sort();
    if api != routed {
        return Err(RenderError::Mismatch { table: routed, api });
    }
    let version = env!("CARGO_PKG_VERSION");
    let lua_methods = rest_extension::lua_methods(descriptor_set)?;
    Ok(vec![
        (
            "k8s/gateway/transcoder.yaml",
            render_transcoder_policy(descriptor_set, &lua_methods)?,
        ),
        (
            "k8s/overlays/bench-plain-rest/kustomization.yaml",
            plain_rest_overlay(&transcoder_patches(descriptor_set, &lua_methods)?),
        ),
        (
            "k8s/gateway/rest-extension.yaml",
            rest_extension::render_rest_extension_policy(descriptor_set, &table.gateway)?,
        ),
        (
            "k8s/gateway/error-responses.yaml",
            render_error_responses_policy(),
        ),
        ("k8s/gateway/grpcroutes.yaml", manifests::grpcroutes(table)),
        (
            "k8s/gateway/health-checks.yaml",
            manifests::health_check_authority(table),
        ),
        (
            "k8s/gateway/backend-traffic.yaml",
            manifests::backend_traffic(table),
        ),
        (
            "k8s/overlays/local/backends.yaml",
            manifests::local_backends(table)?,
        ),
        (
            "k8s/overlays/local/reflection-backendrefs.yaml",
            manifests::reflection_backendrefs(table),
        ),
        (
            "k8s/overlays/ha/kustomization.yaml",
            manifests::ha_kustomization(table)?,
        ),
        (
            "k8s/global-limits/kustomization.yaml",
            manifests::global_limits_component(table),
        ),
        (
            "k8s/overlays/cluster/kustomization.yaml",
            manifests::cluster_kustomization(table, version),
        ),
        (
            "k8s/auth/kustomization.yaml",
            manifests::auth_kustomization(table),
        ),
        (
            "k8s/auth/securitypolicies.yaml",
            manifests::security_policies(table),
        ),
        (
            "k8s/base/services.yaml",
            manifests::base_services(table, version),
        ),
        (
            "k8s/base/networkpolicy.yaml",
            manifests::network_policy(table),
        ),
        (
            "envoy-ext/tests/translate/kustomization.yaml",
            manifests::translate_kustomization(table),
        ),
    ])
}

/// Listener name under Envoy Gateway's XDSNameSchemeV2: `tcp-<port>`,
/// independent of the Gateway's namespace, so one patch fits the cluster and
/// the local standalone stack.
pub const LISTENER_NAME: &str = "tcp-8080";

/// Route configuration name under XDSNameSchemeV2: `http-<port>`.
pub const ROUTE_CONFIG_NAME: &str = "http-8080";

/// How many patches the transcoder policy holds, each on the listener
/// (the offline translation renames them all: `manifests::translate_kustomization`).
pub const TRANSCODER_PATCHES: usize = 8;

/// The largest REST request body the gateway accepts (413 above it). REST
/// bodies are JSON, larger than the protobuf they become, so a body under
/// this limit always fits the services' 4 MiB `--max-message-bytes`, and the
/// service judges its content; a larger one never costs a service anything.
pub const REST_BODY_LIMIT_BYTES: u64 = 4 * 1024 * 1024;

/// JSONPath to the HTTP connection manager of the listener, by filter name
/// rather than position.
const HCM_JSON_PATH: &str =
    "$..filters[?(@.name == 'envoy.filters.network.http_connection_manager')]";

/// The generated-file banner and the file's purpose, as YAML comments.
fn generated_banner(purpose: &str) -> String {
    let purpose: String = purpose.lines().map(|line| format!("# {line}\n")).collect();
    format!(
        "# GENERATED by `just render` (envoy-ext). Do not edit by hand: the
# envoy-ext tests fail when this file differs from what it renders.
#
{purpose}"
    )
}

/// The head every rendered patch policy shares: generated-file banner,
/// purpose, and the EnvoyPatchPolicy envelope targeting the Gateway.
fn policy_header(name: &str, purpose: &str) -> String {
    let banner = generated_banner(purpose);
    format!(
        r#"{banner}apiVersion: gateway.envoyproxy.io/v1alpha1
kind: EnvoyPatchPolicy
metadata:
  name: {name}
  namespace: envoy-poc
spec:
  targetRef:
    group: gateway.networking.k8s.io
    kind: Gateway
    name: eg
  type: JSONPatch
  jsonPatches:
"#
    )
}

/// Fully qualified names of the API services (everything outside `google.*`),
/// in descriptor order.
pub fn api_services(descriptor_set: &[u8]) -> Result<Vec<String>, prost::DecodeError> {
    let set = FileDescriptorSet::decode(descriptor_set)?;
    Ok(set
        .file
        .iter()
        .filter(|file| !file.package().starts_with("google."))
        .flat_map(|file| {
            let package = file.package().to_owned();
            file.service
                .iter()
                .map(move |service| format!("{package}.{}", service.name()))
        })
        .collect())
}

/// Where Envoy Gateway puts the HTTP filters of a plain HTTP listener, as a
/// JSON pointer into the Listener. A JSON patch's `from` takes only a
/// pointer (no JSONPath), and wrapping the REST extension needs one; the
/// offline translation test proves the pointer still holds.
const HTTP_FILTERS_POINTER: &str = "/default_filter_chain/filters/0/typed_config/http_filters";

/// YAML `text` with every line indented by `by`.
fn indent(text: &str, by: &str) -> String {
    text.lines().map(|line| format!("{by}{line}\n")).collect()
}

/// The predicate that a request is a gRPC call: its content-type.
const GRPC_CALL: &str = r#"single_predicate:
  input:
    name: content-type
    typed_config:
      "@type": type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput
      header_name: content-type
  value_match:
    prefix: application/grpc
"#;

/// An `xds_matcher` (YAML indented by `by`) that skips the wrapped filter
/// for gRPC calls and, given `methods`, for requests with any other method.
fn skip_matcher(by: &str, methods: Option<&[String]>) -> String {
    let (action, predicate) = match methods {
        None => ("skip-for-grpc", GRPC_CALL.to_owned()),
        Some(methods) => {
            let other_method = format!(
                r#"not_matcher:
  single_predicate:
    input:
      name: method
      typed_config:
        "@type": type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput
        header_name: ":method"
    value_match:
      safe_regex:
        google_re2: {{}}
        regex: "^({})$"
"#,
                methods.join("|")
            );
            let either =
                |predicate: &str| format!("  - {}", indent(predicate, "    ").trim_start());
            (
                "skip-for-grpc-and-other-methods",
                format!(
                    "or_matcher:\n  predicate:\n{}{}",
                    either(GRPC_CALL),
                    either(&other_method)
                ),
            )
        }
    };
    let matcher = format!(
        r#"xds_matcher:
  matcher_list:
    matchers:
      - predicate:
{}        on_match:
          action:
            name: {action}
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.common.matcher.action.v3.SkipFilter
"#,
        indent(&predicate, "          ")
    );
    indent(&matcher, by)
}

/// The EnvoyPatchPolicy YAML for the given descriptor set. `lua_methods`
/// are the HTTP methods the REST extension ([`rest_extension`]) has work
/// for; Envoy Gateway emits its filter first (the EnvoyProxies'
/// `filterOrder`) and disabled.
pub fn render_transcoder_policy(
    descriptor_set: &[u8],
    lua_methods: &[String],
) -> Result<String, prost::DecodeError> {
    let methods = lua_methods.join(", ");
    let header = policy_header(
        "grpc-json-transcoder",
        &format!(
            "Inserts Envoy's gRPC-JSON transcoder at the head of the gateway
listener's HTTP filters, built from the descriptor set of proto/. It turns
REST calls into gRPC calls to /<package>.<Service>/<Method> and clears the
route cache, so they then match the GRPCRoutes and get the same rate limits
and auth as native gRPC.

Only three filters run before it, each skipped for gRPC calls (a matcher on
the request's content-type), so native gRPC meets none of them:
- rest-grpc-headers: removes gRPC's own headers (grpc-status: 0 on every
  success, grpc-message, ...) from REST responses, whose status and JSON
  body say it all;
- rest-body-limit, a size guard for REST bodies: the transcoder hands the
  converted message on in one piece, so a limit after it never triggers,
  and REST callers are owed a 413 for an oversized body (the services
  answer gRPC's oversized messages with OUT_OF_RANGE);
- the REST extension (rest-extension.yaml, Lua): it must see the REST
  request before the transcoder and the transcoded response after it.
  It runs only for the methods it has work for ({methods}: strict
  bodies, 201 for creates); a Lua filter costs Envoy tens of
  microseconds a request even when its script returns at once, and most
  REST calls are GETs. Envoy Gateway emits it first (the EnvoyProxies'
  filterOrder) and disabled but for the GRPCRoutes' routes, which a REST
  path matches only once transcoded. So these patches put the transcoder
  right after it, then replace it by a matcher wrapper of the same name,
  enabled for the whole listener, holding Envoy Gateway's own Lua config.

The connection manager also returns x-request-id on every response, REST
and gRPC: the id the services log for the call."
        ),
    );
    Ok(format!(
        "{header}{}",
        transcoder_patches(descriptor_set, lua_methods)?
            .iter()
            .map(|patch| patch.yaml.as_str())
            .collect::<String>()
    ))
}

/// A patch putting `filter` at the head of the listener's HTTP filters,
/// wrapped in a matcher: `skip` (from [`skip_matcher`]) says when it does
/// not run, `config` is the filter's typed_config body after its `@type`
/// (YAML indented for it, may be empty).
fn head_filter_wrapped(
    name: &str,
    skip: &str,
    filter: &str,
    type_url: &str,
    config: &str,
) -> String {
    format!(
        r#"    - type: type.googleapis.com/envoy.config.listener.v3.Listener
      name: {LISTENER_NAME}
      operation:
        op: add
        jsonPath: "{HCM_JSON_PATH}"
        path: /typed_config/http_filters/0
        value:
          name: {name}
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.common.matching.v3.ExtensionWithMatcher
{skip}            extension_config:
              name: {filter}
              typed_config:
                "@type": {type_url}
{config}"#
    )
}

/// One patch of the transcoder policy.
#[derive(Debug, Clone)]
pub struct Patch {
    /// Whether it exists for the REST extension: the bench's baseline
    /// (`plain_rest_overlay`) leaves those out.
    pub rest_extension: bool,
    pub yaml: String,
}

/// The transcoder policy's patches, in order (see [`render_transcoder_policy`]).
pub fn transcoder_patches(
    descriptor_set: &[u8],
    lua_methods: &[String],
) -> Result<Vec<Patch>, prost::DecodeError> {
    let services = api_services(descriptor_set)?
        .iter()
        .map(|service| format!("                - {service}\n"))
        .collect::<String>();
    let descriptor_b64 = base64::engine::general_purpose::STANDARD.encode(descriptor_set);
    let grpc_skip = skip_matcher("            ", None);
    let lua_skip = skip_matcher("            ", Some(lua_methods));
    Ok(vec![
        Patch {
            rest_extension: false,
            yaml: format!(
                r#"    - type: type.googleapis.com/envoy.config.listener.v3.Listener
      name: {LISTENER_NAME}
      operation:
        op: add
        jsonPath: "{HCM_JSON_PATH}"
        path: /typed_config/http_filters/1
        value:
          name: envoy.filters.http.grpc_json_transcoder
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder
            services:
{services}            convert_grpc_status: true
            print_options:
              # snake_case, as in the protos and in query parameters.
              preserve_proto_field_names: true
              # Zero values (stock 0, empty phone) are printed, not dropped.
              always_print_primitive_fields: true
              always_print_enums_as_ints: false
              add_whitespace: false
            request_validation_options:
              # A path that maps to no method is answered here with 404.
              reject_unknown_method: true
              # A typo'd query parameter is a 400, not silently ignored.
              reject_unknown_query_parameters: true
            proto_descriptor_bin: {descriptor_b64}
"#
            ),
        },
        Patch {
            rest_extension: true,
            yaml: format!(
                "    # The Lua's wrapper goes in front of Envoy Gateway's Lua filter (index
    # 0, the transcoder now 2); Envoy Gateway's Lua config and name are
    # copied into it, then its own filter is removed.
{}",
                head_filter_wrapped(
                    "rest-extension",
                    &lua_skip,
                    "envoy.filters.http.lua",
                    "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
                    "",
                )
            ),
        },
        Patch {
            rest_extension: true,
            yaml: format!(
                r#"    - type: type.googleapis.com/envoy.config.listener.v3.Listener
      name: {LISTENER_NAME}
      operation:
        op: copy
        from: {HTTP_FILTERS_POINTER}/1/typed_config
        path: {HTTP_FILTERS_POINTER}/0/typed_config/extension_config/typed_config
"#
            ),
        },
        Patch {
            rest_extension: true,
            yaml: format!(
                r#"    - type: type.googleapis.com/envoy.config.listener.v3.Listener
      name: {LISTENER_NAME}
      operation:
        op: copy
        from: {HTTP_FILTERS_POINTER}/1/name
        path: {HTTP_FILTERS_POINTER}/0/name
"#
            ),
        },
        Patch {
            rest_extension: true,
            yaml: format!(
                r#"    - type: type.googleapis.com/envoy.config.listener.v3.Listener
      name: {LISTENER_NAME}
      operation:
        op: remove
        path: {HTTP_FILTERS_POINTER}/1
"#
            ),
        },
        Patch {
            rest_extension: false,
            yaml: head_filter_wrapped(
                "rest-body-limit",
                &grpc_skip,
                "envoy.filters.http.buffer",
                "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
                &format!("                max_request_bytes: {REST_BODY_LIMIT_BYTES}\n"),
            ),
        },
        Patch {
            rest_extension: true,
            yaml: head_filter_wrapped(
                "rest-grpc-headers",
                &grpc_skip,
                "envoy.filters.http.header_mutation",
                "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
                "                mutations:
                  response_mutations:
                    - remove_on_match:
                        key_matcher:
                          prefix: grpc-
",
            ),
        },
        Patch {
            rest_extension: false,
            yaml: format!(
                r#"    - type: type.googleapis.com/envoy.config.listener.v3.Listener
      name: {LISTENER_NAME}
      operation:
        op: add
        jsonPath: "{HCM_JSON_PATH}"
        path: /typed_config/always_set_request_id_in_response
        value: true
"#
            ),
        },
    ])
}

/// The bench stack without the REST extension, as a kustomization of
/// k8s/overlays/bench: the baseline `just bench-rest` measures the
/// extension's cost against. No EnvoyExtensionPolicy, none of the
/// transcoder policy's patches for the extension, and the transcoder
/// patched in at the head of the listener (no Lua to follow).
pub fn plain_rest_overlay(patches: &[Patch]) -> String {
    let banner = generated_banner(
        "The bench stack without the REST extension (the profile
bench-plain-rest): the baseline `just bench-rest` measures the extension's
cost against. REST as the transcoder alone makes it: creates answer 200,
responses carry gRPC's headers, unknown body fields are dropped.",
    );
    let removals: String = patches
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, patch)| patch.rest_extension)
        .map(|(i, _)| format!("      - {{op: remove, path: /spec/jsonPatches/{i}}}\n"))
        .collect();
    format!(
        r#"{banner}apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../bench
patches:
  - target:
      group: gateway.envoyproxy.io
      kind: EnvoyExtensionPolicy
      name: rest
    patch: |-
      $patch: delete
      apiVersion: gateway.envoyproxy.io/v1alpha1
      kind: EnvoyExtensionPolicy
      metadata:
        name: rest
        namespace: envoy-poc
  - target:
      group: gateway.envoyproxy.io
      kind: EnvoyPatchPolicy
      name: grpc-json-transcoder
    patch: |-
{removals}      - {{op: test, path: /spec/jsonPatches/0/operation/value/name, value: envoy.filters.http.grpc_json_transcoder}}
      - {{op: replace, path: /spec/jsonPatches/0/operation/path, value: /typed_config/http_filters/0}}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_both_api_services_and_no_google_ones() {
        let services = api_services(api::DESCRIPTOR_SET).expect("descriptor decodes");
        assert_eq!(
            services,
            [
                api::customer::v1::SERVICE_NAME,
                api::product::v1::SERVICE_NAME
            ]
        );
    }

    #[test]
    fn listener_and_route_names_follow_the_table_port() {
        let table = ServiceTable::committed().unwrap();
        assert_eq!(LISTENER_NAME, format!("tcp-{}", table.gateway.port));
        assert_eq!(ROUTE_CONFIG_NAME, format!("http-{}", table.gateway.port));
    }

    #[test]
    fn patch_policies_target_the_table_gateway() {
        let table = ServiceTable::committed().unwrap();
        let head = policy_header("x", "y");
        assert!(head.contains(&format!("\n  namespace: {}\n", table.gateway.namespace)));
        assert!(head.contains(&format!(
            "\n    kind: Gateway\n    name: {}\n",
            table.gateway.name
        )));
    }

    #[test]
    fn a_table_without_an_api_service_does_not_render() {
        let mut table = ServiceTable::committed().unwrap();
        table.services.pop();
        let err = render_all(api::DESCRIPTOR_SET, &table).unwrap_err();
        assert!(matches!(err, RenderError::Mismatch { .. }), "{err}");
    }

    #[test]
    fn every_transcoder_patch_is_counted() {
        let yaml = render_transcoder_policy(api::DESCRIPTOR_SET, &["POST".to_owned()]).unwrap();
        let listener_patches = format!("      name: {LISTENER_NAME}\n");
        assert_eq!(yaml.matches("    - type: ").count(), TRANSCODER_PATCHES);
        assert_eq!(yaml.matches(&listener_patches).count(), TRANSCODER_PATCHES);
    }

    #[test]
    fn embeds_the_exact_descriptor_bytes() {
        let yaml =
            render_transcoder_policy(api::DESCRIPTOR_SET, &["POST".to_owned()]).expect("renders");
        let line = yaml
            .lines()
            .find_map(|l| l.trim().strip_prefix("proto_descriptor_bin: "))
            .expect("descriptor line present");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(line)
            .expect("valid base64");
        assert_eq!(bytes, api::DESCRIPTOR_SET);
    }
}
