//! The `rest` EnvoyExtensionPolicy: a Lua filter that makes the transcoded
//! API behave like REST: strict request bodies (an unknown field or a wrong
//! JSON type is a 400 with a BadRequest naming it) and 201 Created +
//! Location for creates. Its code is `rest.lua`; its API-dependent tables
//! (create paths, bodies, messages) are read from the descriptor set.
//!
//! Envoy Gateway adds the filter disabled and enables it per route, and sorts
//! it after the filters the transcoder patch puts at the head. Neither works
//! for REST: a REST request's own path (`/customers`) matches no route when
//! Envoy builds the filter chain (only the transcoded path matches a
//! GRPCRoute), and on responses a filter after the transcoder sees the gRPC
//! answer, whose status the transcoder then overwrites. So the transcoder
//! patch (`crate::render_transcoder_policy`) puts the transcoder after it
//! (the EnvoyProxies' `filterOrder` makes it the first filter Envoy Gateway
//! emits) and wraps it in a matcher, enabled for the whole listener, that
//! runs it only for REST calls with a method of [`lua_methods`]: a Lua
//! filter costs tens of microseconds of Envoy CPU a request even when the
//! script returns at once (docs/performance.md). gRPC's own headers leave
//! REST responses through a header-mutation filter of that patch.

use std::collections::BTreeMap;

use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MethodDescriptor, Value,
};

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

const LUA_TEMPLATE: &str = include_str!("rest.lua");

/// The dynamic metadata namespace the Lua writes: what the request side
/// learned, for the response side and the local-reply mappers.
pub const METADATA_NAMESPACE: &str = "envoy-poc.rest";
/// The key, in [`METADATA_NAMESPACE`], set (true) when the Lua refused a
/// REST body with its own BadRequest answer, which the error-responses
/// policy then leaves as it is.
pub const BAD_BODY_KEY: &str = "bad_body";

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
    creates_in(&DescriptorPool::decode(descriptor_set)?)
}

fn creates_in(pool: &DescriptorPool) -> Result<Vec<String>, ExtensionError> {
    let mut paths: Vec<String> = http_rules(pool)?
        .into_iter()
        .filter(|rule| rule.http_method == "POST" && rule.method.name().starts_with("Create"))
        .map(|rule| rule.path)
        .filter(|path| path.starts_with('/') && !path.contains(['{', ':']))
        .collect();
    paths.sort();
    paths.dedup();
    Ok(paths)
}

/// One google.api.http binding of a gRPC method.
struct HttpRule {
    method: MethodDescriptor,
    /// Upper case, as in `:method`.
    http_method: String,
    /// The path template, e.g. `/customers/{customer.id}`.
    path: String,
    /// The `body:` of the rule: empty (none), `*` or a request field.
    body: String,
}

/// Every binding of every method, additional_bindings included.
fn http_rules(pool: &DescriptorPool) -> Result<Vec<HttpRule>, ExtensionError> {
    let http = pool
        .get_extension_by_name("google.api.http")
        .ok_or(ExtensionError::NoHttpRule)?;
    let mut rules = Vec::new();
    for method in pool
        .services()
        .flat_map(|service| service.methods().collect::<Vec<_>>())
    {
        let options = method.options();
        if let Some(rule) = options.get_extension(&http).as_message() {
            push_rule(&method, rule, &mut rules);
        }
    }
    Ok(rules)
}

fn push_rule(method: &MethodDescriptor, rule: &DynamicMessage, rules: &mut Vec<HttpRule>) {
    let text = |name: &str| match rule.get_field_by_name(name).as_deref() {
        Some(Value::String(text)) => text.clone(),
        _ => String::new(),
    };
    let binding = ["get", "put", "post", "delete", "patch"]
        .into_iter()
        .find(|verb| rule.has_field_by_name(verb))
        .map(|verb| (verb.to_uppercase(), text(verb)))
        .or_else(|| {
            let custom = rule.get_field_by_name("custom")?.as_message()?.clone();
            let field = |name: &str| Some(custom.get_field_by_name(name)?.as_str()?.to_owned());
            Some((field("kind")?.to_uppercase(), field("path")?))
        });
    if let Some((http_method, path)) = binding {
        rules.push(HttpRule {
            method: method.clone(),
            http_method,
            path,
            body: text("body"),
        });
    }
    if let Some(Value::List(more)) = rule.get_field_by_name("additional_bindings").as_deref() {
        for binding in more.iter().filter_map(Value::as_message) {
            push_rule(method, binding, rules);
        }
    }
}

/// A Lua pattern matching the paths of a google.api.http path template:
/// `{var}` and `*` are one segment, `**` any rest, `{var=tmpl}` its template.
pub fn lua_path_pattern(template: &str) -> String {
    format!("^{}$", unanchored_pattern(template))
}

fn unanchored_pattern(template: &str) -> String {
    let mut pattern = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' => {
                let mut inner = String::new();
                for c in chars.by_ref() {
                    if c == '}' {
                        break;
                    }
                    inner.push(c);
                }
                match inner.split_once('=') {
                    Some((_, sub)) => pattern.push_str(&unanchored_pattern(sub)),
                    None => pattern.push_str("[^/]+"),
                }
            }
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                pattern.push_str(".+");
            }
            '*' => pattern.push_str("[^/]+"),
            '^' | '$' | '(' | ')' | '%' | '.' | '[' | ']' | '+' | '-' | '?' => {
                pattern.push('%');
                pattern.push(c);
            }
            _ => pattern.push(c),
        }
    }
    pattern
}

/// How the check sees a field's JSON value (rest.lua's MESSAGES explains the
/// kinds): the proto3 JSON mapping, with the well-known types' own forms.
fn json_kind(kind: &Kind) -> String {
    match kind {
        Kind::String | Kind::Bytes => "string".to_owned(),
        Kind::Bool => "bool".to_owned(),
        Kind::Enum(_) => "enum".to_owned(),
        Kind::Message(message) => match message.full_name() {
            "google.protobuf.Timestamp"
            | "google.protobuf.Duration"
            | "google.protobuf.FieldMask"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue" => "string".to_owned(),
            "google.protobuf.BoolValue" => "bool".to_owned(),
            "google.protobuf.DoubleValue" | "google.protobuf.FloatValue" => "number".to_owned(),
            "google.protobuf.Int64Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.Int32Value"
            | "google.protobuf.UInt32Value" => "integer".to_owned(),
            "google.protobuf.Struct" | "google.protobuf.Any" => "object".to_owned(),
            "google.protobuf.ListValue" => "array".to_owned(),
            "google.protobuf.Value" => "any".to_owned(),
            name => format!("msg:{name}"),
        },
        Kind::Double | Kind::Float => "number".to_owned(),
        _ => "integer".to_owned(),
    }
}

/// A field's kind and shape (`list`, `map` or none) as the check sees them.
fn field_kind(field: &FieldDescriptor) -> (String, Option<&'static str>) {
    if field.is_map()
        && let Kind::Message(entry) = field.kind()
    {
        return (
            json_kind(&entry.map_entry_value_field().kind()),
            Some("map"),
        );
    }
    let shape = field.is_list().then_some("list");
    (json_kind(&field.kind()), shape)
}

/// A REST body the gateway checks before the transcoder.
#[derive(Debug, PartialEq, Eq)]
pub struct RestBody {
    /// Upper case, as in `:method`.
    pub http_method: String,
    /// A Lua pattern of the path ([`lua_path_pattern`]).
    pub path_pattern: String,
    /// The body's kind, as in rest.lua (`msg:<message>` for the usual
    /// `body: "customer"`).
    pub kind: String,
    /// The body's field path in the gRPC request, as the services name
    /// fields in their BadRequest details; empty for `body: "*"`.
    pub field_path: String,
}

/// The bodies of the API's REST rules, in the descriptor set's order.
pub fn rest_bodies(descriptor_set: &[u8]) -> Result<Vec<RestBody>, ExtensionError> {
    bodies_in(&DescriptorPool::decode(descriptor_set)?)
}

fn bodies_in(pool: &DescriptorPool) -> Result<Vec<RestBody>, ExtensionError> {
    Ok(http_rules(pool)?
        .into_iter()
        .filter(|rule| !rule.body.is_empty())
        .filter_map(|rule| {
            let input = rule.method.input();
            let kind = if rule.body == "*" {
                format!("msg:{}", input.full_name())
            } else {
                field_kind(&input.get_field_by_name(&rule.body)?).0
            };
            let field_path = if rule.body == "*" {
                String::new()
            } else {
                rule.body
            };
            Some(RestBody {
                http_method: rule.http_method,
                path_pattern: lua_path_pattern(&rule.path),
                kind,
                field_path,
            })
        })
        .collect())
}

/// The HTTP methods the extension has work for, sorted: those of the rules
/// that take a body, and POST when there is a create. Every other request
/// skips it (`crate::render_transcoder_policy`).
pub fn lua_methods(descriptor_set: &[u8]) -> Result<Vec<String>, ExtensionError> {
    let pool = DescriptorPool::decode(descriptor_set)?;
    let mut methods: Vec<String> = bodies_in(&pool)?
        .into_iter()
        .map(|body| body.http_method)
        .collect();
    if !creates_in(&pool)?.is_empty() {
        methods.push("POST".to_owned());
    }
    methods.sort();
    methods.dedup();
    Ok(methods)
}

/// The messages the bodies reach, by full name, with their fields as Lua
/// table entries (`["jsonName"] = {"proto_name", "kind", "shape"}`).
fn body_messages(pool: &DescriptorPool, bodies: &[RestBody]) -> BTreeMap<String, Vec<String>> {
    let mut messages = BTreeMap::new();
    let mut pending: Vec<String> = bodies.iter().map(|body| body.kind.clone()).collect();
    while let Some(kind) = pending.pop() {
        let Some(name) = kind.strip_prefix("msg:") else {
            continue;
        };
        if messages.contains_key(name) {
            continue;
        }
        let Some(message) = pool.get_message_by_name(name) else {
            continue;
        };
        let mut entries = Vec::new();
        for field in message.fields() {
            let (kind, shape) = field_kind(&field);
            let shape = shape.map_or(String::new(), |shape| format!(", \"{shape}\""));
            let value = format!("{{\"{}\", \"{kind}\"{shape}}}", field.name());
            let mut names = vec![field.json_name().to_owned(), field.name().to_owned()];
            names.dedup();
            for json_name in names {
                entries.push(format!("[\"{json_name}\"] = {value}"));
            }
            pending.push(kind);
        }
        messages.insert(name.to_owned(), entries);
    }
    messages
}

/// The Lua source with the API's tables filled in.
pub fn render_lua(descriptor_set: &[u8]) -> Result<String, ExtensionError> {
    let pool = DescriptorPool::decode(descriptor_set)?;
    let creates: String = creates_in(&pool)?
        .iter()
        .map(|path| format!("  [\"{path}\"] = true,\n"))
        .collect();
    let rest_bodies = bodies_in(&pool)?;
    let mut by_method: BTreeMap<&str, Vec<&RestBody>> = BTreeMap::new();
    for body in &rest_bodies {
        by_method.entry(&body.http_method).or_default().push(body);
    }
    let bodies: String = by_method
        .iter()
        .map(|(method, rules)| {
            let rules: String = rules
                .iter()
                .map(|rule| {
                    format!(
                        "    {{ \"{}\", \"{}\", \"{}\" }},\n",
                        rule.path_pattern.replace('\\', "\\\\"),
                        rule.kind,
                        rule.field_path
                    )
                })
                .collect();
            format!("  {method} = {{\n{rules}  }},\n")
        })
        .collect();
    let messages: String = body_messages(&pool, &rest_bodies)
        .iter()
        .map(|(name, fields)| {
            let fields: String = fields
                .iter()
                .map(|field| format!("    {field},\n"))
                .collect();
            format!("  [\"{name}\"] = {{\n{fields}  }},\n")
        })
        .collect();
    Ok(LUA_TEMPLATE
        .replace("@CREATE@\n", &creates)
        .replace("@BODIES@\n", &bodies)
        .replace("@MESSAGES@\n", &messages)
        .replace("@NAMESPACE@", METADATA_NAMESPACE)
        .replace("@BAD_BODY@", BAD_BODY_KEY))
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
        "REST that behaves like REST: request bodies are checked against the
API's messages (an unknown field or a wrong JSON type is a 400 naming it),
and POST on a collection answers 201 Created with a Location; gRPC calls
are untouched. The transcoder patch (transcoder.yaml) runs this filter
before the transcoder, for the whole listener and only for the methods it
has work for: envoy-ext/src/rest_extension.rs says why. The Lua's source is
envoy-ext/src/rest.lua.",
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
    fn path_templates_become_anchored_lua_patterns() {
        assert_eq!(lua_path_pattern("/customers"), "^/customers$");
        assert_eq!(
            lua_path_pattern("/customers/{customer.id}"),
            "^/customers/[^/]+$"
        );
        assert_eq!(
            lua_path_pattern("/v1/{name=shelves/*/books/**}:cancel-all"),
            "^/v1/shelves/[^/]+/books/.+:cancel%-all$"
        );
    }

    #[test]
    fn the_bodies_are_the_posts_and_patches_of_both_services() {
        let bodies = rest_bodies(api::DESCRIPTOR_SET).unwrap();
        let summary: Vec<(&str, &str, &str, &str)> = bodies
            .iter()
            .map(|b| {
                (
                    b.http_method.as_str(),
                    b.path_pattern.as_str(),
                    b.kind.as_str(),
                    b.field_path.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "POST",
                    "^/customers$",
                    "msg:customer.v1.Customer",
                    "customer"
                ),
                (
                    "PATCH",
                    "^/customers/[^/]+$",
                    "msg:customer.v1.Customer",
                    "customer"
                ),
                ("POST", "^/products$", "msg:product.v1.Product", "product"),
                (
                    "PATCH",
                    "^/products/[^/]+$",
                    "msg:product.v1.Product",
                    "product"
                ),
            ]
        );
    }

    #[test]
    fn every_field_is_known_by_its_json_and_proto_names_with_its_json_kind() {
        let lua = render_lua(api::DESCRIPTOR_SET).unwrap();
        for entry in [
            r#"["name"] = {"name", "string"},"#,
            r#"["createTime"] = {"create_time", "string"},"#,
            r#"["create_time"] = {"create_time", "string"},"#,
            r#"["priceMinorUnits"] = {"price_minor_units", "integer"},"#,
            r#"["stockQuantity"] = {"stock_quantity", "integer"},"#,
            r#"    { "^/products/[^/]+$", "msg:product.v1.Product", "product" },"#,
        ] {
            assert!(lua.contains(entry), "{entry} missing from:\n{lua}");
        }
        // A name whose JSON name is itself is listed once.
        assert_eq!(lua.matches(r#"["name"] = "#).count(), 2, "{lua}");
        // Only the messages the bodies reach.
        assert!(!lua.contains("ListCustomersRequest"), "{lua}");
    }

    #[test]
    fn the_lua_lists_every_create_path_and_keeps_no_placeholder() {
        let lua = render_lua(api::DESCRIPTOR_SET).unwrap();
        assert!(lua.contains("  [\"/customers\"] = true,\n"), "{lua}");
        assert!(lua.contains("  [\"/products\"] = true,\n"), "{lua}");
        for placeholder in [
            "@CREATE@",
            "@BODIES@",
            "@MESSAGES@",
            "@NAMESPACE@",
            "@BAD_BODY@",
        ] {
            assert!(!lua.contains(placeholder), "{lua}");
        }
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
