//! `just fuzz [dev|scale]`: schemathesis against the gateway of a fuzz
//! profile (`fuzz`: the dev stack in memory; `fuzz-scale`: two instances of
//! each service on PostgreSQL; neither refuses a call with a 429), then what
//! its HAR says (every request it sent, with the answer) and what the stack
//! says (every process alive and ready, no crash in a log, every service
//! instance served calls).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Fewer requests than this and the run proves little (raise FUZZ_EXAMPLES).
pub const MIN_REQUESTS: usize = 1000;

/// Examples per operation and phase (10 operations), and the fixed seed: a
/// failure reproduces; FUZZ_SEED=$RANDOM explores.
pub const DEFAULT_EXAMPLES: &str = "100";
pub const DEFAULT_SEED: &str = "20261130";

pub const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";

/// The stack `just fuzz STACK` names, and the stack runner's profile for it.
pub fn profile(stack: &str) -> Result<&'static str, FuzzError> {
    match stack {
        "dev" => Ok("fuzz"),
        "scale" => Ok("fuzz-scale"),
        other => Err(FuzzError::Stack(other.to_owned())),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FuzzError {
    #[error("no fuzz stack {0}: dev (in memory) or scale (PostgreSQL)")]
    Stack(String),
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a HAR file: {source}")]
    Har {
        path: PathBuf,
        source: serde_json::Error,
    },
}

#[derive(Deserialize)]
struct Har {
    log: HarLog,
}
#[derive(Deserialize)]
struct HarLog {
    entries: Vec<HarEntry>,
}
#[derive(Deserialize)]
struct HarEntry {
    response: HarResponse,
}
#[derive(Deserialize)]
struct HarResponse {
    status: u16,
}

/// What the gateway answered, by status (0: no answer).
#[derive(Debug, PartialEq, Eq)]
pub struct Summary {
    pub by_status: BTreeMap<u16, usize>,
}

impl Summary {
    pub fn requests(&self) -> usize {
        self.by_status.values().sum()
    }

    /// 5xx and requests without an answer.
    pub fn server_errors(&self) -> usize {
        self.by_status
            .iter()
            .filter(|(code, _)| **code >= 500 || **code == 0)
            .map(|(_, n)| n)
            .sum()
    }

    /// What is wrong with the run, if anything.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.requests() < MIN_REQUESTS {
            out.push(format!(
                "only {} requests (want >= {MIN_REQUESTS}; raise FUZZ_EXAMPLES)",
                self.requests()
            ));
        }
        if self.server_errors() > 0 {
            out.push(format!(
                "{} responses 5xx (or no response)",
                self.server_errors()
            ));
        }
        out
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let by: Vec<String> = self
            .by_status
            .iter()
            .map(|(c, n)| format!("{c}: {n}"))
            .collect();
        write!(
            f,
            "requests: {}; by status: {{{}}}; 5xx: {}",
            self.requests(),
            by.join(", "),
            self.server_errors()
        )
    }
}

pub fn summarize(har: &Path) -> Result<Summary, FuzzError> {
    let text = std::fs::read_to_string(har).map_err(|source| FuzzError::Read {
        path: har.to_path_buf(),
        source,
    })?;
    let har_file: Har = serde_json::from_str(&text).map_err(|source| FuzzError::Har {
        path: har.to_path_buf(),
        source,
    })?;
    let mut by_status = BTreeMap::new();
    for entry in har_file.log.entries {
        *by_status.entry(entry.response.status).or_insert(0) += 1;
    }
    Ok(Summary { by_status })
}

/// What a log line says when a process crashed: a Rust panic; PostgreSQL's
/// PANIC severity (the server stops); a backend killed by a signal (the
/// postmaster then resets every connection, which a client sees as errors
/// that are not its fault).
const CRASH_MARKERS: &[&str] = &["panicked", "PANIC:", "was terminated by signal"];

/// The logs under `logs_dir` that say a process crashed.
pub fn crashed_logs(logs_dir: &Path) -> Result<Vec<PathBuf>, FuzzError> {
    let mut out = Vec::new();
    for path in logs(logs_dir)? {
        if std::fs::read_to_string(&path)
            .is_ok_and(|t| CRASH_MARKERS.iter().any(|marker| t.contains(marker)))
        {
            out.push(path);
        }
    }
    Ok(out)
}

/// The `*.log` files of a directory, sorted.
fn logs(logs_dir: &Path) -> Result<Vec<PathBuf>, FuzzError> {
    let entries = std::fs::read_dir(logs_dir).map_err(|source| FuzzError::Read {
        path: logs_dir.to_path_buf(),
        source,
    })?;
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "log"))
        .collect();
    out.sort();
    Ok(out)
}

/// Is `stem` an instance of `service` as the stack runner names them
/// (`customer-service`, `customer-service-2`, ...)?
fn is_instance(stem: &str, service: &str) -> bool {
    stem.strip_prefix(service).is_some_and(|rest| {
        rest.is_empty()
            || rest
                .strip_prefix('-')
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// API calls an instance's log records: the runtime's per-call "finished"
/// line (crates/runtime/src/telemetry.rs), without the gateway's health
/// checks (grpc.health.v1), which reach every instance fuzzed or not.
pub fn api_calls(log: &str) -> usize {
    log.lines()
        .filter(|line| {
            line.contains("finished")
                && line.contains("method=/")
                && !line.contains("method=/grpc.")
        })
        .count()
}

/// API calls per service instance, from the instances' logs under
/// `logs_dir`: with two instances behind the gateway, a run proves
/// something about both only if both served calls.
pub fn calls_per_instance(
    logs_dir: &Path,
    services: &[&str],
) -> Result<BTreeMap<String, usize>, FuzzError> {
    let mut out = BTreeMap::new();
    for path in logs(logs_dir)? {
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if services.iter().any(|service| is_instance(stem, service)) {
            let text = std::fs::read_to_string(&path).map_err(|source| FuzzError::Read {
                path: path.clone(),
                source,
            })?;
            out.insert(stem.to_owned(), api_calls(&text));
        }
    }
    Ok(out)
}

/// What is wrong with the calls per instance: no instance log at all, or
/// an instance that served nothing.
pub fn coverage_failures(calls: &BTreeMap<String, usize>) -> Vec<String> {
    if calls.is_empty() {
        return vec!["no service instance log found".into()];
    }
    calls
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(instance, _)| format!("{instance} served no API call"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn har(statuses: &[(u16, usize)]) -> PathBuf {
        let entries: Vec<_> = statuses
            .iter()
            .flat_map(|(s, n)| {
                std::iter::repeat_n(serde_json::json!({"response": {"status": s}}), *n)
            })
            .collect();
        let path = std::env::temp_dir().join(format!(
            "xtask-fuzz-{}-{}.har",
            std::process::id(),
            statuses.len()
        ));
        std::fs::write(
            &path,
            serde_json::json!({"log": {"entries": entries}}).to_string(),
        )
        .unwrap();
        path
    }

    #[test]
    fn a_clean_run_passes_and_5xx_or_too_few_requests_fail() {
        let clean = summarize(&har(&[(200, 700), (400, 350), (404, 10)])).unwrap();
        assert_eq!(
            clean.to_string(),
            "requests: 1060; by status: {200: 700, 400: 350, 404: 10}; 5xx: 0"
        );
        assert!(clean.failures().is_empty());

        let broken = summarize(&har(&[(200, 1000), (503, 2), (0, 1), (404, 5)])).unwrap();
        assert_eq!(broken.server_errors(), 3);
        assert_eq!(broken.failures(), ["3 responses 5xx (or no response)"]);

        let few = summarize(&har(&[(200, 10)])).unwrap();
        assert!(few.failures()[0].contains("only 10 requests"));
    }

    fn logs_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-fuzz-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_two_stacks_and_their_profiles() {
        assert_eq!(profile("dev").unwrap(), "fuzz");
        assert_eq!(profile("scale").unwrap(), "fuzz-scale");
        let err = profile("fuzz").unwrap_err().to_string();
        assert!(err.contains("no fuzz stack fuzz: dev"), "{err}");
    }

    #[test]
    fn crashes_are_found_in_logs() {
        let dir = logs_dir("crash");
        std::fs::write(dir.join("customer-service.log"), "ok\n").unwrap();
        // A client's bad statement is an ERROR, not a crash.
        std::fs::write(
            dir.join("postgres.log"),
            "2026-12-03 16:40:00.000 UTC [7] ERROR:  duplicate key value violates unique constraint\n",
        )
        .unwrap();
        assert!(crashed_logs(&dir).unwrap().is_empty());
        std::fs::write(dir.join("product-service.log"), "thread 'x' panicked at\n").unwrap();
        assert_eq!(
            crashed_logs(&dir).unwrap(),
            [dir.join("product-service.log")]
        );
        std::fs::write(
            dir.join("postgres.log"),
            "2026-12-03 16:40:00.000 UTC [7] LOG:  server process (PID 9) was terminated by signal 11: Segmentation fault\n",
        )
        .unwrap();
        assert_eq!(crashed_logs(&dir).unwrap().len(), 2);
        std::fs::write(
            dir.join("postgres.log"),
            "[7] PANIC:  could not write to file\n",
        )
        .unwrap();
        std::fs::write(dir.join("postgres.txt"), "PANIC: not a log\n").unwrap();
        assert_eq!(
            crashed_logs(&dir).unwrap(),
            [dir.join("postgres.log"), dir.join("product-service.log")]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn instance_names() {
        assert!(is_instance("customer-service", "customer-service"));
        assert!(is_instance("customer-service-2", "customer-service"));
        assert!(is_instance("customer-service-10", "customer-service"));
        assert!(!is_instance("customer-service-", "customer-service"));
        assert!(!is_instance("customer-service-x", "customer-service"));
        assert!(!is_instance("customer-services", "customer-service"));
        assert!(!is_instance("postgres", "customer-service"));
    }

    #[test]
    fn calls_per_instance_leave_out_health_checks_and_other_logs() {
        let dir = logs_dir("calls");
        let call = |method: &str| {
            format!(
                "2026-12-03T16:40:00Z  WARN grpc{{method=/{method} code=NotFound}}: service_runtime::telemetry: finished elapsed_ms=1.2\n"
            )
        };
        let health = call("grpc.health.v1.Health/Check");
        std::fs::write(
            dir.join("customer-service.log"),
            format!(
                "listening\n{}{}{health}",
                call("customer.v1.CustomerService/GetCustomer"),
                call("customer.v1.CustomerService/ListCustomers")
            ),
        )
        .unwrap();
        std::fs::write(dir.join("customer-service-2.log"), health.repeat(3)).unwrap();
        std::fs::write(
            dir.join("product-service.log"),
            call("product.v1.ProductService/GetProduct"),
        )
        .unwrap();
        std::fs::write(dir.join("postgres.log"), "finished method=/x\n").unwrap();
        let calls = calls_per_instance(&dir, &["customer-service", "product-service"]).unwrap();
        assert_eq!(
            calls,
            [
                ("customer-service".to_owned(), 2),
                ("customer-service-2".to_owned(), 0),
                ("product-service".to_owned(), 1),
            ]
            .into()
        );
        assert_eq!(
            coverage_failures(&calls),
            ["customer-service-2 served no API call"]
        );
        assert_eq!(
            coverage_failures(&BTreeMap::new()),
            ["no service instance log found"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
