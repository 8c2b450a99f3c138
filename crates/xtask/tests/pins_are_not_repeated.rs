//! A pin lives in crates/xtask/pins.toml and nowhere else: a version copied
//! into a recipe, a script or a manifest goes stale the day the pin moves.
//! Walks every tracked file (`git ls-files`) and fails on any pin value
//! found outside the places listed below, each with the reason it may.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use xtask::pins::{PINS_PATH, Pins};

/// Files that may hold pin values, and why.
fn skipped(path: &str) -> bool {
    // Prose: docs record which version a figure was measured with.
    path.starts_with("docs/") || path.ends_with(".md")
        // Lock files: checksummed versions of dependencies, any of which may
        // happen to share a number with one of our tools.
        || path.ends_with("Cargo.lock")
        || path.ends_with("go.sum")
        // Go modules are pin files of their own (Kubernetes, etcd and CoreDNS
        // for the local cluster are pinned there), and their indirect
        // dependencies share numbers with our tools (an indirect fsnotify shares envoy-gateway's).
        || path.ends_with("go.mod")
        // The pins themselves.
        || path == PINS_PATH
}

/// Copies that must stay, each checked to still equal the pin (so moving the
/// pin without them fails here too): (file, tool, why).
const SYNCED_COPIES: &[(&str, &str, &str)] = &[
    (
        "k8s/keycloak/keycloak.yaml",
        "keycloak",
        "a manifest users apply with `kubectl apply -k`: its image tag is literal",
    ),
    (
        "k8s/local-cluster/eg-values.yaml",
        "envoy-gateway",
        "helm values for the local cluster's locally built images ",
    ),
    (
        "k8s/local-cluster/eg-values.yaml",
        "envoy",
        "helm values for the local cluster's locally built images ",
    ),
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tracked_files(root: &Path) -> Vec<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["ls-files", "-z"])
        .output()
        .expect("git ls-files (this test reads the tracked files)");
    assert!(out.status.success(), "git ls-files failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .split('\0')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `version` in `text` as a whole token: no letter, digit or dot right
/// before or after it (so 2.50.0 does not match 12.50.0 or 2.50.01).
fn occurrences(text: &str, version: &str) -> usize {
    let part = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '.');
    text.match_indices(version)
        .filter(|(at, _)| {
            !part(text[..*at].chars().next_back())
                && !part(text[at + version.len()..].chars().next())
        })
        .count()
}

#[test]
fn token_matching_is_whole_versions_only() {
    assert_eq!(occurrences("envoy 2.50.0, v2.50.0", "2.50.0"), 1);
    assert_eq!(occurrences("12.50.0 2.50.01 2.50.0.1", "2.50.0"), 0);
    assert_eq!(occurrences("image: k:31.2.3\n", "31.2.3"), 1);
    assert_eq!(occurrences("version = \"v9.8.7\"", "v9.8.7"), 1);
}

#[test]
fn no_pin_is_written_outside_pins_toml() {
    let pins = Pins::load().unwrap();
    // One version may be several tools' pin (egctl is envoy-gateway's release).
    let mut versions: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for tool in pins.tools() {
        versions.entry(&tool.version).or_default().push(&tool.name);
    }
    let root = repo_root();
    let mut found = Vec::new();
    let mut synced_seen = vec![false; SYNCED_COPIES.len()];
    for path in tracked_files(&root) {
        if skipped(&path) {
            continue;
        }
        // Binary files and files deleted in the work tree hold no pins we write.
        let Ok(text) = std::fs::read_to_string(root.join(&path)) else {
            continue;
        };
        for (version, tools) in &versions {
            if occurrences(&text, version) == 0 {
                continue;
            }
            let synced = SYNCED_COPIES
                .iter()
                .enumerate()
                .filter(|(_, (p, t, _))| *p == path && tools.contains(t))
                .map(|(i, _)| i)
                .collect::<Vec<_>>();
            for i in &synced {
                synced_seen[*i] = true;
            }
            if synced.is_empty() {
                found.push(format!("{path}: {version} ({})", tools.join(", ")));
            }
        }
    }
    assert!(
        found.is_empty(),
        "pins written outside {PINS_PATH} (read them with `cargo xtask pin NAME`, \
         `cargo xtask pins --shell`, or xtask::pins::Pins):\n{}",
        found.join("\n")
    );
    for ((path, tool, why), seen) in SYNCED_COPIES.iter().zip(synced_seen) {
        assert!(
            seen,
            "{path} must carry the {tool} pin ({why}): update it to {}",
            pins.version(tool).unwrap()
        );
    }
}
