//! `cargo xtask bench-tiers`: what the global rate-limit tier costs. The
//! same stack (`scale`: two instances of each service on PostgreSQL) runs
//! with only the local tier (profile bench-local) and with both tiers
//! (bench-global), limits far above the load; vegeta sends the same fixed
//! rate to each, and the p99 difference is the global tier's cost (target:
//! at most 1 ms, issue #13).

use serde::Deserialize;

/// The profiles compared, baseline first.
pub const PROFILES: [&str; 2] = ["bench-local", "bench-global"];
/// The request: a read through the transcoder, answered from PostgreSQL.
pub const TARGET: &str = "GET http://127.0.0.1:8080/customers/cus_000001";
/// The cost the global tier may add to the p99.
pub const TARGET_P99_COST_MS: f64 = 1.0;

/// What vegeta's `report -type=json` says of one run (the parts we use).
#[derive(Debug, Deserialize)]
pub struct Report {
    pub latencies: Latencies,
    pub requests: u64,
    pub success: f64,
    pub status_codes: std::collections::BTreeMap<String, u64>,
}

/// Nanoseconds.
#[derive(Debug, Deserialize)]
pub struct Latencies {
    #[serde(rename = "50th")]
    pub p50: u64,
    #[serde(rename = "99th")]
    pub p99: u64,
}

impl Report {
    pub fn parse(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    pub fn p50_ms(&self) -> f64 {
        ns_to_ms(self.latencies.p50)
    }

    pub fn p99_ms(&self) -> f64 {
        ns_to_ms(self.latencies.p99)
    }
}

#[allow(clippy::cast_precision_loss)] // latencies are far below 2^52 ns
fn ns_to_ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// The comparison as a table, and whether the global tier stayed within
/// the target. Every request must have succeeded in both runs: a refused
/// or failed request would measure something else.
pub fn compare(local: &Report, global: &Report) -> Result<(String, bool), String> {
    for (name, report) in [("bench-local", local), ("bench-global", global)] {
        if report.success < 1.0 {
            return Err(format!(
                "{name}: only {:.2}% of {} requests succeeded ({:?})",
                report.success * 100.0,
                report.requests,
                report.status_codes
            ));
        }
    }
    let cost = global.p99_ms() - local.p99_ms();
    let ok = cost <= TARGET_P99_COST_MS;
    let table = format!(
        "| tiers | requests | p50 ms | p99 ms |\n|---|---|---|---|\n\
         | local only | {} | {:.2} | {:.2} |\n| local + global | {} | {:.2} | {:.2} |\n\n\
         global tier adds {cost:.2} ms at p99 (target: at most {TARGET_P99_COST_MS} ms): {}\n",
        local.requests,
        local.p50_ms(),
        local.p99_ms(),
        global.requests,
        global.p50_ms(),
        global.p99_ms(),
        if ok { "met" } else { "MISSED" }
    );
    Ok((table, ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(p99_ns: u64, success: f64) -> Report {
        Report::parse(&format!(
            r#"{{"latencies":{{"total":1,"mean":1,"50th":1000000,"90th":1,"95th":1,"99th":{p99_ns},"max":1,"min":1}},
                "requests":10000,"rate":1000,"success":{success},"status_codes":{{"200":10000}}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn the_cost_is_the_p99_difference() {
        let (table, ok) = compare(&report(2_000_000, 1.0), &report(2_600_000, 1.0)).unwrap();
        assert!(ok, "{table}");
        assert!(table.contains("adds 0.60 ms"), "{table}");
        let (_, ok) = compare(&report(2_000_000, 1.0), &report(3_100_000, 1.0)).unwrap();
        assert!(!ok);
    }

    #[test]
    fn a_refused_request_spoils_the_comparison() {
        let err = compare(&report(1, 1.0), &report(1, 0.99)).unwrap_err();
        assert!(err.contains("bench-global"), "{err}");
    }
}
