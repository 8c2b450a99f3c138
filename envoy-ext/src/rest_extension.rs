//! The `rest` EnvoyExtensionPolicy: a small Lua filter that makes the
//! transcoded API answer like REST (201 Created + Location for creates, no
//! gRPC-only headers). Its code is `rest.lua`; the only API-dependent part,
//! the create paths, is read from the descriptor set's google.api.http rules.
//!
//! Envoy Gateway adds the filter disabled and enables it per route, and sorts
//! it after the filters the transcoder patch puts at the head. Neither works
//! for REST: a REST request's own path (`/customers`) matches no route when
//! Envoy builds the filter chain (only the transcoded path matches a
//! GRPCRoute), and on responses a filter after the transcoder sees the gRPC
//! answer, whose status the transcoder then overwrites. So the transcoder
//! patch (`crate::render_transcoder_policy`) enables it for the whole listener
//! and puts the transcoder after it; the EnvoyProxies' `filterOrder` makes it
//! the first filter Envoy Gateway emits, which is what that patch counts on.

use prost_reflect::{DescriptorPool, Value};

use crate::{generated_banner, services::Gateway};

/// The policy's name; Envoy Gateway names its filter after it.
pub const POLICY_NAME: &str = "rest";

/// Whether `name` is the REST extension's filter in the listener. Envoy
/// Gateway v1.9 names it `envoy.filters.http.lua/<kind>/<namespace>/<policy>/lua/0`,
/// where `<kind>` is the policy's kind as its provider reports it: empty with
/// the standalone File provider, `envoyextensionpolicy` in `egctl x
/// translate`; so only both ends are fixed.
pub fn is_lua_filter(name: &str, namespace: &str) -> bool {
    name.starts_with("envoy.filters.http.lua/")
        && name.ends_with(&format!("/{namespace}/{POLICY_NAME}/lua/0"))
}

/// A JSONPath (Envoy Gateway's ojg dialect) selecting the filter
/// [`is_lua_filter`] accepts; `.` stands for the `/` a regex literal cannot
/// hold. The offline translation test and the e2e suite prove it matches.
pub fn lua_filter_json_path(namespace: &str) -> String {
    let namespace = namespace.replace('-', "\\-");
    format!(
        "$..http_filters[?(@.name =~ /^envoy\\.filters\\.http\\.lua.*.{namespace}.{POLICY_NAME}.lua.0$/)]"
    )
}

const LUA_TEMPLATE: &str = include_str!("rest.lua");

/// Why the extension cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum ExtensionError {
    #[error("the descriptor set does not decode: {0}")]
    Descriptor(#[from] prost_reflect::DescriptorError),
    #[error("the descriptor set lacks the google.api.http extension")]
    NoHttpRule,
}

/// REST paths of the API's standard Create methods (AIP-133): a `post` rule
/// on a collection, without path variables or a custom verb. Sorted.
pub fn create_paths(descriptor_set: &[u8]) -> Result<Vec<String>, ExtensionError> {
    let pool = DescriptorPool::decode(descriptor_set)?;
    let http = pool
        .get_extension_by_name("google.api.http")
        .ok_or(ExtensionError::NoHttpRule)?;
    let mut paths: Vec<String> = pool
        .services()
        .flat_map(|service| service.methods().collect::<Vec<_>>())
        .filter(|method| method.name().starts_with("Create"))
        .filter_map(|method| {
            let options = method.options();
            let rule = options.get_extension(&http);
            match rule.as_message()?.get_field_by_name("post").as_deref() {
                Some(Value::String(path))
                    if path.starts_with('/') && !path.contains(['{', ':']) =>
                {
                    Some(path.clone())
                }
                _ => None,
            }
        })
        .collect();
    paths.sort();
    paths.dedup();
    Ok(paths)
}

/// The Lua source with the create paths filled in.
pub fn render_lua(descriptor_set: &[u8]) -> Result<String, ExtensionError> {
    let entries: String = create_paths(descriptor_set)?
        .iter()
        .map(|path| format!("  [\"{path}\"] = true,\n"))
        .collect();
    Ok(LUA_TEMPLATE.replace("@CREATE@\n", &entries))
}

/// The EnvoyExtensionPolicy YAML, targeting the Gateway (the filter serves
/// the whole listener; see the module docs for why not the GRPCRoutes).
pub fn render_rest_extension_policy(
    descriptor_set: &[u8],
    gateway: &Gateway,
) -> Result<String, ExtensionError> {
    let lua: String = render_lua(descriptor_set)?
        .lines()
        .map(|line| {
            if line.is_empty() {
                "\n".to_owned()
            } else {
                format!("        {line}\n")
            }
        })
        .collect();
    let banner = generated_banner(
        "REST that behaves like REST: POST on a collection answers 201 Created
with a Location, and REST responses carry no gRPC-only headers; gRPC calls
are untouched. The transcoder patch (transcoder.yaml) runs this filter
before the transcoder and for the whole listener: envoy-ext/src/rest_extension.rs
says why. The Lua's source is envoy-ext/src/rest.lua.",
    );
    let Gateway {
        namespace, name, ..
    } = gateway;
    Ok(format!(
        r#"{banner}apiVersion: gateway.envoyproxy.io/v1alpha1
kind: EnvoyExtensionPolicy
metadata:
  name: {POLICY_NAME}
  namespace: {namespace}
spec:
  targetRefs:
    - group: gateway.networking.k8s.io
      kind: Gateway
      name: {name}
  lua:
    - type: Inline
      inline: |
{lua}"#
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lua_filter_is_known_by_both_ends_of_its_name() {
        for kind in ["", "envoyextensionpolicy"] {
            let name = format!("envoy.filters.http.lua/{kind}/envoy-poc/rest/lua/0");
            assert!(is_lua_filter(&name, "envoy-poc"), "{name}");
        }
        assert!(!is_lua_filter(
            "envoy.filters.http.lua//other/rest/lua/0",
            "envoy-poc"
        ));
        assert!(!is_lua_filter(
            "envoy.filters.http.lua//envoy-poc/rest/lua/1",
            "envoy-poc"
        ));
        assert!(!is_lua_filter("envoy.filters.http.router", "envoy-poc"));
    }

    #[test]
    fn create_paths_are_the_collections_posts() {
        assert_eq!(
            create_paths(api::DESCRIPTOR_SET).unwrap(),
            ["/customers", "/products"]
        );
    }

    #[test]
    fn the_lua_lists_every_create_path_and_keeps_no_placeholder() {
        let lua = render_lua(api::DESCRIPTOR_SET).unwrap();
        assert!(lua.contains("  [\"/customers\"] = true,\n"), "{lua}");
        assert!(lua.contains("  [\"/products\"] = true,\n"), "{lua}");
        assert!(!lua.contains('@'), "{lua}");
    }

    #[test]
    fn the_policy_targets_the_gateway_and_inlines_the_lua() {
        let table = crate::services::ServiceTable::committed().unwrap();
        let gateway = &table.gateway;
        let yaml = render_rest_extension_policy(api::DESCRIPTOR_SET, gateway).unwrap();
        assert!(yaml.contains("kind: EnvoyExtensionPolicy\n"), "{yaml}");
        assert!(yaml.contains(&format!("\n  namespace: {}\n", gateway.namespace)));
        assert!(yaml.contains(&format!(
            "      kind: Gateway\n      name: {}\n",
            gateway.name
        )));
        assert!(yaml.contains("        function envoy_on_response(response)\n"));
    }
}
