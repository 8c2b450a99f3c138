//! Every committed generated file (patch policies, per-service gateway
//! objects, local Backends, auth layer, base Deployments) must be exactly
//! what the current protos, service table and renderer produce.

use std::{fs, path::Path};

use envoy_ext::services::ServiceTable;

#[test]
fn committed_files_match_the_renderer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let table = ServiceTable::committed().expect("the committed table parses");
    let files = envoy_ext::render_all(api::DESCRIPTOR_SET, &table).expect("renders");
    let stale: Vec<String> = files
        .into_iter()
        .filter(|(path, rendered)| {
            fs::read_to_string(root.join(path)).ok().as_deref() != Some(rendered.as_str())
        })
        .map(|(path, _)| path.to_owned())
        .collect();
    assert!(
        stale.is_empty(),
        "stale or missing generated files: {}; run `just render` and commit the result",
        stale.join(", ")
    );
}
