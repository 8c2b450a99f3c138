//! `just fuzz`: schemathesis against the gateway of the fuzz profile (no
//! rate limits), then what its HAR says (every request it sent, with the
//! answer) and what the stack says (still healthy, no panic in a log).

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

#[derive(Debug, thiserror::Error)]
pub enum FuzzError {
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

/// The logs under `logs_dir` that say a process panicked.
pub fn panicked_logs(logs_dir: &Path) -> Result<Vec<PathBuf>, FuzzError> {
    let entries = std::fs::read_dir(logs_dir).map_err(|source| FuzzError::Read {
        path: logs_dir.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "log")
            && std::fs::read_to_string(&path).is_ok_and(|t| t.contains("panicked"))
        {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
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

    #[test]
    fn panics_are_found_in_logs() {
        let dir = std::env::temp_dir().join(format!("xtask-fuzz-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("customer-service.log"), "ok\n").unwrap();
        assert!(panicked_logs(&dir).unwrap().is_empty());
        std::fs::write(dir.join("product-service.log"), "thread 'x' panicked at\n").unwrap();
        assert_eq!(
            panicked_logs(&dir).unwrap(),
            [dir.join("product-service.log")]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
