//! A plain `cargo test` runs the workspace's default-members: every crate
//! but crates/e2e (its tests need a running stack or the pinned tools). A
//! crate left out of that list would silently never be tested; this fails
//! until it is added.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;

#[test]
fn every_crate_but_e2e_is_a_default_member() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(root.join("Cargo.toml")).unwrap()).unwrap();
    let workspace = manifest["workspace"].as_table().unwrap();
    let default: Vec<&str> = workspace["default-members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let mut crates: Vec<String> = std::fs::read_dir(root.join("crates"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| format!("crates/{}", e.file_name().to_string_lossy()))
        .filter(|c| c != "crates/e2e")
        .collect();
    crates.push("envoy-ext".into());
    crates.sort();
    let mut listed: Vec<String> = default.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(
        listed, crates,
        "workspace.default-members in Cargo.toml must list every crate but crates/e2e"
    );
}
