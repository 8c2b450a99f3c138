//! The committed transcoder policy must be exactly what the protos render to.

use std::{fs, path::Path};

#[test]
fn committed_transcoder_policy_matches_the_protos() {
    let repo_root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = repo_root.join(envoy_ext::TRANSCODER_POLICY_PATH);
    let committed = fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    let rendered = envoy_ext::render_transcoder_policy(api::DESCRIPTOR_SET).expect("renders");
    assert!(
        committed == rendered,
        "{} is stale: run `just render` and commit the result",
        envoy_ext::TRANSCODER_POLICY_PATH
    );
}
