//! The committed policies must be exactly what the current protos and
//! renderer produce.

use std::{fs, path::Path};

#[test]
fn committed_policies_match_the_renderer() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(envoy_ext::OUTPUT_DIR);
    for (name, rendered) in envoy_ext::render_all(api::DESCRIPTOR_SET).expect("renders") {
        let path = dir.join(name);
        let committed = fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
        assert!(
            committed == rendered,
            "{} is stale: run `just render` and commit the result",
            path.display()
        );
    }
}
