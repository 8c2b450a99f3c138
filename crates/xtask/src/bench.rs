//! `just bench` / `just bench-smoke`: release binaries, the bench profile of
//! the stack, the benchmark (crates/bench), and for the smoke run a check
//! that every output is there and parses.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("bench-smoke: {0}")]
    Check(String),
}

/// The knobs of a full run (environment, with these defaults).
pub const KNOBS: &[(&str, &str, &str)] = &[
    ("BENCH_DURATION", "--duration", "5s"),
    ("BENCH_RATE", "--rate", "1000"),
    ("BENCH_CONCURRENCY", "--concurrency", "20"),
];

/// Records in the stack's customer store: full run (BENCH_RECORDS) and smoke.
pub const RECORDS_DEFAULT: &str = "10000";
pub const SMOKE_RECORDS: &str = "100";

/// Seconds, not minutes: 1 s runs and small stores prove the pipeline.
pub const SMOKE_ARGS: &[&str] = &[
    "--duration",
    "1s",
    "--rate",
    "100",
    "--concurrency",
    "4",
    "--connections",
    "1",
    "--rss-records",
    "10000",
    "--list-records",
    "1000",
    "--small-records",
    "100",
    "--list-calls",
    "50",
    "--start-reps",
    "2",
];

/// The bench's arguments after `--out` and the records (knobs from `env`).
pub fn args(smoke: bool, env: impl Fn(&str) -> Option<String>) -> Vec<String> {
    if smoke {
        return SMOKE_ARGS.iter().map(|s| s.to_string()).collect();
    }
    KNOBS
        .iter()
        .flat_map(|(var, flag, default)| {
            [
                flag.to_string(),
                env(var).unwrap_or_else(|| default.to_string()),
            ]
        })
        .collect()
}

/// The command `cargo stack run` runs: the bench against the stack it
/// started, whose state directory only that child knows (STACK_STATE_DIR).
pub fn command(out: &Path, records: &str, args: &[String]) -> Command {
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(r#"exec "$0" --state-dir "$STACK_STATE_DIR" "$@""#)
        .arg("target/release/bench")
        .arg("--out")
        .arg(out)
        .args(["--customer-bin", "target/release/customer-service"])
        .args(["--stack-records", records])
        .args(args);
    command
}

/// Every output of a smoke run is there and holds a measurement.
pub fn check_outputs(out: &Path) -> Result<String, BenchError> {
    let read = |name: &str| {
        let path = out.join(name);
        std::fs::read_to_string(&path).map_err(|source| BenchError::Read { path, source })
    };
    let results: Value =
        serde_json::from_str(&read("results.json")?).map_err(|source| BenchError::Json {
            path: out.join("results.json"),
            source,
        })?;
    let fail = |m: String| Err(BenchError::Check(m));
    let runs = results["runs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if runs.len() != 18 {
        return fail(format!("want 18 runs, got {}", runs.len()));
    }
    for run in runs {
        if run["ok"].as_u64().unwrap_or(0) == 0 {
            return fail(format!("no successful request: {run}"));
        }
        if run["latency_ms"]["p50"].as_f64().unwrap_or(0.0) <= 0.0 {
            return fail(format!("no latency: {run}"));
        }
    }
    let truthy = |v: &Value| !(v.is_null() || v == &Value::from(0) || v == &Value::from(false));
    if !truthy(&results["service"]["rss_mib"]) || !truthy(&results["service"]["start_to_serving"]) {
        return fail("no service measurements".into());
    }
    let targets = results["targets"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if targets.len() != 4 || targets.iter().any(|t| t["value"].is_null()) {
        return fail(format!("targets: {}", results["targets"]));
    }
    if !read("results.md")?.contains("| GetCustomer") {
        return fail("results.md has no GetCustomer row".into());
    }
    if !read("latency.svg")?.starts_with("<svg") {
        return fail("latency.svg is not an SVG".into());
    }
    Ok(format!(
        "bench-smoke: ok ({} runs, outputs parse)",
        runs.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write_outputs(dir: &Path, results: &Value, md: &str, svg: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("results.json"), results.to_string()).unwrap();
        std::fs::write(dir.join("results.md"), md).unwrap();
        std::fs::write(dir.join("latency.svg"), svg).unwrap();
    }

    fn good() -> Value {
        let run = json!({"ok": 10, "latency_ms": {"p50": 0.4}});
        json!({
            "runs": vec![run; 18],
            "service": {"rss_mib": 12.5, "start_to_serving": 0.02},
            "targets": vec![json!({"value": 1.0}); 4],
        })
    }

    #[test]
    fn complete_outputs_pass_and_each_gap_fails() {
        let dir = std::env::temp_dir().join(format!("xtask-bench-{}", std::process::id()));
        write_outputs(&dir, &good(), "| GetCustomer | 1 |", "<svg/>");
        assert_eq!(
            check_outputs(&dir).unwrap(),
            "bench-smoke: ok (18 runs, outputs parse)"
        );

        let mut no_ok = good();
        no_ok["runs"][3]["ok"] = json!(0);
        let mut short = good();
        short["runs"].as_array_mut().unwrap().pop();
        let mut no_rss = good();
        no_rss["service"]["rss_mib"] = Value::Null;
        let mut target = good();
        target["targets"][2]["value"] = Value::Null;
        for (results, md, svg, want) in [
            (no_ok, "| GetCustomer", "<svg", "no successful request"),
            (short, "| GetCustomer", "<svg", "want 18 runs"),
            (no_rss, "| GetCustomer", "<svg", "no service measurements"),
            (target, "| GetCustomer", "<svg", "targets"),
            (good(), "| ListCustomers", "<svg", "GetCustomer"),
            (good(), "| GetCustomer", "<html", "not an SVG"),
        ] {
            write_outputs(&dir, &results, md, svg);
            let err = check_outputs(&dir).unwrap_err().to_string();
            assert!(err.contains(want), "{want}: {err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            check_outputs(&dir)
                .unwrap_err()
                .to_string()
                .contains("results.json")
        );
    }

    #[test]
    fn knobs_come_from_the_environment_with_defaults() {
        let args = args(false, |var| (var == "BENCH_RATE").then(|| "50".to_string()));
        assert_eq!(
            args,
            ["--duration", "5s", "--rate", "50", "--concurrency", "20"]
        );
        assert_eq!(super::args(true, |_| None), SMOKE_ARGS);
    }
}
