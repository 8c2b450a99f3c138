//! The service table says what each service's REST collection is; the
//! protos' google.api.http rules decide what the transcoder serves. They
//! must agree, or the docs, limits and tests keyed on the collection would
//! describe paths that do not exist.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use envoy_ext::services::ServiceTable;
use prost_reflect::{DescriptorPool, Value};

/// Every path pattern of a method's google.api.http rule (get, post, ...).
fn http_paths(pool: &DescriptorPool, service: &str) -> Vec<String> {
    let http = pool.get_extension_by_name("google.api.http").unwrap();
    let service = pool
        .get_service_by_name(service)
        .unwrap_or_else(|| panic!("no service {service} in the API"));
    service
        .methods()
        .flat_map(|method| {
            let options = method.options();
            let rule = options.get_extension(&http).into_owned();
            let rule = rule.as_message().unwrap().clone();
            ["get", "put", "post", "delete", "patch"]
                .into_iter()
                .filter_map(|verb| match rule.get_field_by_name(verb).as_deref() {
                    Some(Value::String(path)) if !path.is_empty() => Some(path.clone()),
                    _ => None,
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_rest_path_of_a_service_is_under_its_collection() {
    let pool = DescriptorPool::decode(api::DESCRIPTOR_SET).unwrap();
    for row in ServiceTable::committed().unwrap().services {
        let paths = http_paths(&pool, &row.grpc_path_prefix());
        assert!(!paths.is_empty(), "{}: no REST mapping", row.name);
        let collection = format!("/{}", row.rest_collection);
        for path in paths {
            assert!(
                path == collection || path.starts_with(&format!("{collection}/")),
                "{}: {path} is not under {collection} (services.toml rest_collection)",
                row.name
            );
        }
    }
}
