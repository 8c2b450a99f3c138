//! The stores part of `just bench`: the same calls through the gateway (gRPC
//! and REST) on two stacks that differ only in the store: two instances of
//! each service in memory (profile bench-memory) or on one PostgreSQL
//! (bench-postgres), release binaries, no rate limits. The `bench` binary
//! (crates/bench, `--stores`) runs inside each stack and writes one JSON;
//! this module builds its command and compares the two into stores.md.
//!
//! Targets (issue #12, reported, not asserted): Get on PostgreSQL at least
//! half the in-memory throughput (max mode); a List page costs O(page) on
//! 100k rows: the store's List query is an index range scan wherever the
//! page starts, and a page at the start, middle and end costs about the same.

use serde_json::Value;
use std::fmt::Write as _;

/// The profiles compared, baseline first, with their column labels.
pub const PROFILES: [(&str, &str); 2] = [
    ("bench-memory", "in-memory"),
    ("bench-postgres", "PostgreSQL"),
];

/// Rows in each store: full run (BENCH_STORE_RECORDS) and smoke.
pub const RECORDS_DEFAULT: &str = "100000";
pub const SMOKE_RECORDS: &str = "1000";

/// The least PostgreSQL/in-memory throughput of Get the target allows.
pub const TARGET_GET_RATIO: f64 = 0.5;
/// "About the same": the slowest position's median page at most this many
/// times the fastest's.
pub const TARGET_LIST_SPREAD: f64 = 1.5;

const PATHS: [(&str, &str); 2] = [("gateway_grpc", "gRPC"), ("gateway_rest", "REST")];
const METHODS: [&str; 3] = ["GetCustomer", "ListCustomers(20)", "CreateCustomer"];
const POSITIONS: [&str; 3] = ["start", "middle", "end"];

/// The `bench` arguments of one side (after --out, --customer-bin and
/// --stack-records): only the gateway's paths, both instances watched, on
/// PostgreSQL the List query EXPLAINed with the `psql` on PATH (Debian's
/// wrapper; the postgresql-15 pin brings it). PostgreSQL itself is not
/// watched: its work is done by the postmaster's children (one backend per
/// pooled connection), which a per-pid sample does not see.
pub fn bench_args(profile: &str) -> Vec<String> {
    let mut args: Vec<String> = [
        "--stores",
        "--paths",
        "gateway_grpc,gateway_rest",
        "--watch",
        "customer-service,customer-service-2,envoy",
    ]
    .map(str::to_owned)
    .to_vec();
    if profile == PROFILES[1].0 {
        args.extend(["--psql".into(), "psql".into()]);
    }
    args
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn find_run<'a>(
    side: &'a Value,
    name: &str,
    method: &str,
    path: &str,
    mode: &str,
) -> Result<&'a Value, String> {
    side["runs"]
        .as_array()
        .and_then(|runs| {
            runs.iter()
                .find(|r| r["method"] == method && r["path"] == path && r["mode"] == mode)
        })
        .ok_or_else(|| format!("{name}: no {method} {mode} run on {path}"))
}

/// A target as reported: what, the value, met or not.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub target: String,
    pub value: String,
    pub met: bool,
}

/// The comparison as markdown, and the targets. Every run must have
/// succeeded on both sides: a failed request measures something else.
pub fn compare(
    memory: &Value,
    postgres: &Value,
    header: &str,
) -> Result<(String, Vec<Target>), String> {
    let sides = [(PROFILES[0].1, memory), (PROFILES[1].1, postgres)];
    for (name, side) in sides {
        for run in side["runs"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if run["errors"].as_u64() != Some(0) || run["ok"].as_u64().unwrap_or(0) == 0 {
                return Err(format!(
                    "{name}: {} {} {}: {} errors, {} ok",
                    run["method"], run["mode"], run["path"], run["errors"], run["ok"]
                ));
            }
        }
    }
    let mut targets = Vec::new();
    let mut md = format!("{header}\n\n## Throughput and latency through the gateway\n\n");
    md.push_str(
        "| call | path | in-memory req/s | PostgreSQL req/s | PostgreSQL / in-memory | \
         p50 ms at rate, mem / pg | p99 ms at rate, mem / pg | p99 ms at max, mem / pg |\n\
         |---|---|---:|---:|---:|---|---|---|\n",
    );
    for method in METHODS {
        for (path, label) in PATHS {
            let mut row = [[&Value::Null; 2]; 2];
            for (i, (name, side)) in sides.iter().enumerate() {
                row[i] = [
                    find_run(side, name, method, path, "max")?,
                    find_run(side, name, method, path, "rate")?,
                ];
            }
            let [mem, pg] = row;
            let ratio = f(&pg[0]["rps"]) / f(&mem[0]["rps"]);
            let _ = writeln!(
                md,
                "| {method} | {label} | {:.0} | {:.0} | {ratio:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} / {:.2} |",
                f(&mem[0]["rps"]),
                f(&pg[0]["rps"]),
                f(&mem[1]["latency_ms"]["p50"]),
                f(&pg[1]["latency_ms"]["p50"]),
                f(&mem[1]["latency_ms"]["p99"]),
                f(&pg[1]["latency_ms"]["p99"]),
                f(&mem[0]["latency_ms"]["p99"]),
                f(&pg[0]["latency_ms"]["p99"]),
            );
            if method == METHODS[0] {
                targets.push(Target {
                    target: format!("Get on PostgreSQL ≥ {TARGET_GET_RATIO}× in-memory throughput ({label}, max)"),
                    value: format!("{ratio:.2}×"),
                    met: ratio >= TARGET_GET_RATIO,
                });
            }
        }
    }

    md.push_str(
        "\n## A List page of 20 at the start, middle and end of the store (gRPC through the gateway, sequential calls)\n\n\
         | store | records | start median / p99 µs | middle median / p99 µs | end median / p99 µs | slowest / fastest median |\n\
         |---|---:|---|---|---|---:|\n",
    );
    for (name, side) in sides {
        let list = &side["store"]["list_page_20"];
        let mut cells = Vec::new();
        let mut medians = Vec::new();
        for position in POSITIONS {
            let at = &list[position];
            if at.is_null() {
                return Err(format!("{name}: no List page at the {position}"));
            }
            medians.push(f(&at["median_us"]));
            cells.push(format!(
                "{:.0} / {:.0}",
                f(&at["median_us"]),
                f(&at["p99_us"])
            ));
        }
        let spread = medians.iter().copied().fold(f64::MIN, f64::max)
            / medians.iter().copied().fold(f64::MAX, f64::min);
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {spread:.2} |",
            list["records"],
            cells.join(" | ")
        );
        targets.push(Target {
            target: format!("List page at start/middle/end about the same ({name}: slowest ≤ {TARGET_LIST_SPREAD}× fastest median)"),
            value: format!("{spread:.2}×"),
            met: spread <= TARGET_LIST_SPREAD,
        });
    }

    let explain = &postgres["store"]["explain"];
    let plans: Vec<(&str, &Value)> = POSITIONS
        .iter()
        .chain(&["generic"])
        .filter_map(|&name| Some((name, explain["plans"].get(name)?)))
        .collect();
    if plans.is_empty() {
        return Err("PostgreSQL: no EXPLAIN of the List query".into());
    }
    let _ = write!(
        md,
        "\n## The plan of the store's List query on PostgreSQL ({} rows)\n\n\
         The statement postgres-store prepares (`{}`), EXPLAINed by psql on the bench's database \
         with a page's {} rows, after the page's last seq; `generic` is the plan a prepared \
         statement may switch to after five runs. O(page): an index finds the position and the scan reads \
         at most two pages of rows.\n\n\
         | page after seq | index | rows the scan read | O(page) | shared buffers hit | execution ms |\n\
         |---|---|---:|---|---:|---:|\n",
        explain["rows"],
        explain["query"].as_str().unwrap_or_default(),
        explain["page_rows"]
    );
    let mut all_range = true;
    for &(name, plan) in &plans {
        let a = &plan["assessment"];
        let range = a["o_page"].as_bool() == Some(true);
        all_range &= range;
        let after = plan["after_seq"]
            .as_u64()
            .map_or("generic".to_owned(), |s| format!("{name} ({s})"));
        let _ = writeln!(
            md,
            "| {after} | {} | {} | {} | {} | {} |",
            a["index"].as_str().unwrap_or("none"),
            a["scan_rows"]
                .as_u64()
                .map_or("-".to_owned(), |r| r.to_string()),
            if range { "yes" } else { "**no**" },
            a["shared_hit_buffers"]
                .as_u64()
                .map_or("-".to_owned(), |b| b.to_string()),
            a["execution_ms"]
                .as_f64()
                .map_or("-".to_owned(), |ms| format!("{ms:.3}"))
        );
    }
    targets.push(Target {
        target: "List query on PostgreSQL costs O(page) at every position (index, about a page of rows read)".into(),
        value: format!("{} plans", plans.len()),
        met: all_range && !plans.is_empty(),
    });
    for (name, plan) in &plans {
        let _ = write!(
            md,
            "\n`{name}`:\n\n```\n{}\n```\n",
            plan["plan"].as_str().unwrap_or_default()
        );
    }

    md.push_str(
        "\n## Targets (reported, not asserted)\n\n| target | measured | |\n|---|---:|---|\n",
    );
    for t in &targets {
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            t.target,
            t.value,
            if t.met { "met" } else { "**MISSED**" }
        );
    }
    let config = &memory["config"];
    let _ = write!(
        md,
        "\nEach run {} (max: {} in flight; rate: {} req/s); gRPC with ghz, REST with vegeta, both through \
         Envoy to two instances of customer-service; {} records in each store before the runs.\n",
        config["duration"].as_str().unwrap_or_default(),
        config["concurrency"],
        config["rate"],
        config["stack_records"]
    );
    Ok((md, targets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn side(rps: f64, list_us: [f64; 3], plan: Option<&str>) -> Value {
        let mut runs = Vec::new();
        for method in METHODS {
            for (path, _) in PATHS {
                for mode in ["max", "rate"] {
                    runs.push(json!({
                        "method": method, "path": path, "mode": mode, "rps": rps, "ok": 10, "errors": 0,
                        "latency_ms": {"p50": 0.5, "p99": 2.0},
                    }));
                }
            }
        }
        let mut store = json!({"list_page_20": {"records": 100005}});
        for (position, us) in POSITIONS.iter().zip(list_us) {
            store["list_page_20"][position] = json!({"median_us": us, "p99_us": us * 2.0});
        }
        if let Some(plan) = plan {
            let assessment = json!({"index": "records_pkey", "o_page": !plan.contains("Seq Scan"),
                "scan_rows": 21, "shared_hit_buffers": 4, "execution_ms": 0.05});
            store["explain"] = json!({"query": "SELECT 1", "rows": 100005, "page_rows": 21, "plans": {
                "start": {"after_seq": 0, "plan": plan, "assessment": assessment},
                "generic": {"after_seq": null, "plan": plan, "assessment": assessment},
            }});
        }
        json!({"config": {"duration": "5s", "concurrency": 20, "rate": 1000, "stack_records": 100005},
               "store": store, "runs": runs})
    }

    #[test]
    fn the_ratio_and_every_target_are_reported() {
        let memory = side(8000.0, [150.0, 151.0, 149.0], None);
        let postgres = side(
            4400.0,
            [300.0, 310.0, 305.0],
            Some("Limit\n  -> Index Scan using records_pkey on records"),
        );
        let (md, targets) = compare(&memory, &postgres, "# t").unwrap();
        assert!(md.contains("| GetCustomer | REST | 8000 | 4400 | 0.55 | 0.50 / 0.50 | 2.00 / 2.00 | 2.00 / 2.00 |"), "{md}");
        assert!(
            md.contains("| PostgreSQL | 100005 | 300 / 600 | 310 / 620 | 305 / 610 | 1.03 |"),
            "{md}"
        );
        assert!(
            md.contains("| start (0) | records_pkey | 21 | yes | 4 | 0.050 |"),
            "{md}"
        );
        assert!(md.contains("| generic | records_pkey | 21 | yes |"), "{md}");
        assert!(
            md.contains("```\nLimit\n  -> Index Scan using records_pkey on records\n```"),
            "{md}"
        );
        assert_eq!(targets.len(), 5);
        assert!(targets.iter().all(|t| t.met), "{targets:?}");
    }

    #[test]
    fn missed_targets_are_reported_not_hidden() {
        let memory = side(8000.0, [150.0, 151.0, 149.0], None);
        let postgres = side(
            3000.0,
            [100.0, 400.0, 900.0],
            Some("Limit\n  -> Sort\n    -> Seq Scan on records"),
        );
        let (md, targets) = compare(&memory, &postgres, "# t").unwrap();
        let missed: Vec<&str> = targets
            .iter()
            .filter(|t| !t.met)
            .map(|t| t.target.as_str())
            .collect();
        assert_eq!(missed.len(), 4, "{missed:?}");
        assert!(md.contains("| **no** |"), "{md}");
        assert!(md.contains("**MISSED**"), "{md}");
    }

    #[test]
    fn a_failed_request_a_missing_run_or_plan_spoils_the_comparison() {
        let memory = side(8000.0, [150.0; 3], None);
        let postgres = side(4400.0, [300.0; 3], Some("Index Scan using records_pkey"));
        let mut failed = postgres.clone();
        failed["runs"][3]["errors"] = json!(2);
        let err = compare(&memory, &failed, "# t").unwrap_err();
        assert!(err.starts_with("PostgreSQL: \"GetCustomer\""), "{err}");
        let mut short = memory.clone();
        short["runs"].as_array_mut().unwrap().pop();
        let err = compare(&short, &postgres, "# t").unwrap_err();
        assert_eq!(err, "in-memory: no CreateCustomer rate run on gateway_rest");
        let err = compare(&memory, &side(4400.0, [300.0; 3], None), "# t").unwrap_err();
        assert!(err.contains("no EXPLAIN"), "{err}");
        let mut no_list = memory.clone();
        no_list["store"]["list_page_20"]["end"] = Value::Null;
        assert!(
            compare(&no_list, &postgres, "# t")
                .unwrap_err()
                .contains("no List page at the end")
        );
    }

    #[test]
    fn only_the_postgres_side_is_explained() {
        let memory = "--stores --paths gateway_grpc,gateway_rest --watch customer-service,customer-service-2,envoy";
        assert_eq!(bench_args("bench-memory").join(" "), memory);
        assert_eq!(
            bench_args("bench-postgres").join(" "),
            format!("{memory} --psql psql")
        );
    }
}
