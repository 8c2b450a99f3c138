//! The README's quick-start commands, run as written in a shell like a
//! reader's: the pinned tools are NOT on its PATH until the README's own
//! `eval "$(just shell-env)"` line puts them there. Each command's output
//! must match what the README shows: the same lines, or for JSON the same
//! fields (ids and timestamps differ from run to run).
//!
//! Against another gateway than localhost:8080 (`E2E_GATEWAY`, a cluster's),
//! the commands' `localhost:8080` is replaced by its address.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use xtask::readme::{README, examples};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The PATH of a shell that has not been set up: this one's without the
/// tools directory (just, which runs this test, puts it first).
fn fresh_path() -> String {
    let tools = xtask::tools::bin_dir();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .filter(|d| *d != tools)
        .collect();
    std::env::join_paths(dirs).unwrap().into_string().unwrap()
}

fn shell(script: &str) -> (bool, String, String) {
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(repo_root())
        .env("PATH", fresh_path())
        .output()
        .expect("bash");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn the_quick_start_commands_work_as_written_in_a_fresh_shell() {
    // As written, unless the tests target another gateway (a cluster's).
    let authority = std::env::var("E2E_GATEWAY")
        .map(|g| g.trim_start_matches("http://").to_owned())
        .unwrap_or_else(|_| "localhost:8080".to_owned());
    let examples = examples(README);
    // Commands that print nothing (the PATH step) set the shell up for the rest.
    let setup: Vec<&str> = examples
        .iter()
        .filter(|e| e.output.is_empty())
        .map(|e| e.command.as_str())
        .collect();
    assert!(!setup.is_empty(), "the README sets up PATH first");

    let (ok, found, err) = shell(&format!("{}\ncommand -v grpcurl", setup.join("\n")));
    assert!(ok, "{setup:?}: {err}");
    assert_eq!(
        Path::new(found.trim()).parent(),
        Some(xtask::tools::bin_dir().as_path()),
        "after the README's PATH step grpcurl is the pinned one"
    );

    let mut ran = 0;
    for example in examples.iter().filter(|e| !e.output.is_empty()) {
        let command = example.command.replace("localhost:8080", &authority);
        let (ok, stdout, stderr) = shell(&format!("{}\n{command}", setup.join("\n")));
        assert!(ok, "`{command}` failed: {stdout}{stderr}");
        let shown = example.output.join("\n");
        match serde_json::from_str::<Value>(&shown) {
            Ok(want) => {
                let got: Value = serde_json::from_str(&stdout)
                    .unwrap_or_else(|e| panic!("`{command}`: not JSON ({e}): {stdout}"));
                assert_eq!(keys(&got), keys(&want), "`{command}`: {stdout}");
                assert_eq!(got.get("code"), want.get("code"), "`{command}`: {stdout}");
            }
            Err(_) => assert_eq!(stdout.trim_end(), shown, "`{command}`"),
        }
        ran += 1;
    }
    assert!(ran >= 3, "the README shows commands with their output");
}
