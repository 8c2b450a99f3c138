//! Paired benches (the last parts of `just bench`): what one difference
//! between two stacks costs. Round after round, one stack then the other,
//! the `bench-pair` binary (crates/bench) sends REST calls through the
//! gateway, at fixed rates and flat out, and reads what every process spent;
//! this module compares the rounds. Medians over rounds, because a single
//! pair of runs on a small shared machine moves by more than the cost it is
//! after. Targets are reported, not asserted, like every bench target.
//!
//! - [`TIERS`] (`just bench-tiers`, issue #13): the global rate-limit tier,
//!   on the scale stack with limits far above the load. Target: at 1000
//!   req/s it adds at most 1 ms to the p99.
//! - [`REST`] (`just bench-rest`, issue #14): the REST extension (strict
//!   bodies, 201 for creates, no gRPC headers), on the bench stack against
//!   the transcoder alone. Target: at most 10% fewer REST requests per
//!   second flat out.

use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;

/// What a pair's target bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// At most this many ms more p99 at `rate` req/s.
    P99Added { rate: u32, ms: f64 },
    /// At most this fraction fewer requests per second flat out.
    MaxRateLost { fraction: f64 },
}

/// Two stacks that differ in one thing, and how to compare them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pair {
    /// The just recipe, in headings and messages.
    pub name: &'static str,
    /// What the second stack adds, e.g. "the global tier".
    pub what: &'static str,
    /// The stack profiles, baseline first.
    pub profiles: [&'static str; 2],
    /// The sides' names in the tables, baseline first.
    pub labels: [&'static str; 2],
    /// The stack, in a sentence for the report.
    pub stack: &'static str,
    /// Processes watched besides Envoy (pid file names).
    pub processes: &'static str,
    /// The CPU columns: label and process-name prefix.
    pub cpu_columns: &'static [(&'static str, &'static str)],
    pub target: Target,
    /// `just bench`'s runs (`bench-pair --runs`).
    pub runs: &'static str,
}

pub const TIERS: Pair = Pair {
    name: "bench-tiers",
    what: "the global tier",
    profiles: ["bench-local", "bench-global"],
    labels: ["local only", "local + global"],
    stack: "The scale stack (two instances of each service on PostgreSQL, release binaries, limits \
            far above the load) with the local tier only, then with both tiers",
    processes: "ratelimit,redis,customer-service,customer-service-2",
    cpu_columns: &[
        ("Envoy", "envoy"),
        ("rate-limit service", "ratelimit"),
        ("Redis", "redis"),
        ("services", "customer-service"),
        ("vegeta", "vegeta"),
    ],
    target: Target::P99Added {
        rate: 1000,
        ms: 1.0,
    },
    runs: "get@500,get@1000",
};

pub const REST: Pair = Pair {
    name: "bench-rest",
    what: "the REST extension",
    profiles: ["bench-plain-rest", "bench"],
    labels: ["transcoder only", "+ REST extension"],
    stack: "The bench stack (one instance of each service, in memory, release binaries, no rate \
            limits) without the REST extension (k8s/overlays/bench-plain-rest), then with it",
    processes: "customer-service",
    cpu_columns: &[
        ("Envoy", "envoy"),
        ("services", "customer-service"),
        ("vegeta", "vegeta"),
    ],
    target: Target::MaxRateLost { fraction: 0.10 },
    runs: "get@1000,create@500,get@max,create@max",
};

/// How much to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub rounds: u32,
    /// Comma-separated, as `bench-pair --runs` takes them.
    pub runs: String,
    pub duration: String,
}

impl Plan {
    /// `just bench`: three rounds of 10 s runs.
    pub fn full(pair: &Pair) -> Self {
        Self {
            rounds: 3,
            runs: pair.runs.into(),
            duration: "10s".into(),
        }
    }

    /// `just bench-smoke`: one short round of the same runs, fixed rates
    /// lowered to 100 req/s, proves the pipeline.
    pub fn smoke(pair: &Pair) -> Self {
        let runs: Vec<String> = pair
            .runs
            .split(',')
            .map(|run| match run.split_once('@') {
                Some((method, rate)) if rate != "max" => format!("{method}@100"),
                _ => run.to_owned(),
            })
            .collect();
        let mut unique: Vec<String> = Vec::new();
        for run in runs {
            if !unique.contains(&run) {
                unique.push(run);
            }
        }
        Self {
            rounds: 1,
            runs: unique.join(","),
            duration: "1s".into(),
        }
    }

    /// The `cargo stack` arguments of one side: `profile`'s stack, with
    /// `bench-pair` run against it (its state directory is known only
    /// inside the run: STACK_STATE_DIR).
    pub fn stack_args(&self, pair: &Pair, profile: &str, out: &Path) -> Vec<String> {
        let mut args: Vec<String> = ["run", "--stop-others", profile, "--", "bash", "-c"]
            .map(str::to_owned)
            .to_vec();
        args.push(r#"exec "$0" --state-dir "$STACK_STATE_DIR" "$@""#.into());
        args.push("target/release/bench-pair".into());
        args.extend([
            "--out".into(),
            out.display().to_string(),
            "--runs".into(),
            self.runs.clone(),
            "--duration".into(),
            self.duration.clone(),
            "--processes".into(),
            pair.processes.into(),
        ]);
        args
    }
}

/// The order the two sides (0 baseline, 1 the other) run in, in round
/// `round` (from 1): baseline first in odd rounds, last in even ones. In
/// the first three-round run the side that always went first was slower
/// in most runs, which a fixed order reports as the difference's cost or
/// gain.
pub fn side_order(round: u32) -> [usize; 2] {
    if round % 2 == 1 { [0, 1] } else { [1, 0] }
}

/// What one `bench-pair` invocation wrote: one stack, its runs.
#[derive(Debug, Clone, Deserialize)]
pub struct Side {
    pub cores: usize,
    pub duration_s: f64,
    pub runs: Vec<Run>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Run {
    /// As asked: `get@1000`, `create@max`.
    pub run: String,
    /// Requests per second asked; 0 flat out.
    pub rate: u32,
    /// Successful requests per second achieved.
    pub rps: f64,
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    pub latency_ms: Latency,
    pub processes: Vec<Process>,
    pub machine_cpu_pct: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Process {
    pub process: String,
    pub cpu_pct: f64,
}

impl Run {
    /// The requests per second the CPU is divided by: as asked, or as
    /// achieved flat out.
    fn per_second(&self) -> f64 {
        if self.rate > 0 {
            f64::from(self.rate)
        } else {
            self.rps.max(1.0)
        }
    }

    /// CPU microseconds per request of the processes whose name starts
    /// with `prefix` (percent of one core over the run's rate).
    fn cpu_us_per_request(&self, prefix: &str) -> f64 {
        let pct: f64 = self
            .processes
            .iter()
            .filter(|p| p.process.starts_with(prefix))
            .fold(0.0, |sum, p| sum + p.cpu_pct);
        pct * 1e4 / self.per_second()
    }

    fn machine_us_per_request(&self) -> f64 {
        self.machine_cpu_pct * 1e4 / self.per_second()
    }
}

/// One round: the baseline stack, then the other.
#[derive(Debug, Clone)]
pub struct Round {
    pub base: Side,
    pub with: Side,
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

fn run_named<'a>(
    side: &'a Side,
    profile: &str,
    round: usize,
    run: &str,
) -> Result<&'a Run, String> {
    side.runs
        .iter()
        .find(|r| r.run == run)
        .ok_or(format!("round {round}: {profile} has no run {run}"))
}

/// What the second stack adds to one run, medians over the rounds.
#[derive(Debug, Clone, PartialEq)]
pub struct Cost {
    pub run: String,
    pub rate: u32,
    pub p99_added_ms: f64,
    pub cpu_added_us: f64,
    /// Requests per second, baseline and other (flat-out runs).
    pub rps: (f64, f64),
}

impl Cost {
    /// The fraction of requests per second lost flat out.
    pub fn rate_lost(&self) -> f64 {
        1.0 - self.rps.1 / self.rps.0.max(f64::MIN_POSITIVE)
    }

    /// The run's rate in words: as asked, or for a flat-out run what each
    /// side reached and the change.
    pub fn rate_text(&self) -> String {
        if self.rate == 0 {
            format!(
                "{:.0} -> {:.0} req/s ({:+.1}%)",
                self.rps.0,
                self.rps.1,
                -self.rate_lost() * 100.0
            )
        } else {
            format!("{} req/s", self.rate)
        }
    }

    /// Whether this run is the target's, and then whether it is met.
    pub fn verdict(&self, target: Target) -> Option<bool> {
        match target {
            Target::P99Added { rate, ms } => (self.rate == rate).then_some(self.p99_added_ms <= ms),
            Target::MaxRateLost { fraction } => {
                (self.rate == 0).then_some(self.rate_lost() <= fraction)
            }
        }
    }
}

fn target_text(target: Target) -> String {
    match target {
        Target::P99Added { ms, .. } => format!("at most {ms} ms"),
        Target::MaxRateLost { fraction } => format!("at most {:.0}% fewer req/s", fraction * 100.0),
    }
}

/// The comparison as markdown, and the cost of each run. Every request must
/// have succeeded: a refused or failed request measures something else.
pub fn compare(pair: &Pair, rounds: &[Round], header: &str) -> Result<(String, Vec<Cost>), String> {
    let first = rounds.first().ok_or("no rounds")?;
    for (i, round) in rounds.iter().enumerate() {
        for (name, side) in pair.profiles.iter().zip([&round.base, &round.with]) {
            if let Some(bad) = side.runs.iter().find(|r| r.errors > 0 || r.ok == 0) {
                return Err(format!(
                    "round {}: {name} {}: {} of {} requests failed",
                    i + 1,
                    bad.run,
                    bad.requests - bad.ok,
                    bad.requests
                ));
            }
        }
    }
    let mut md = format!("{header}\n\n");
    md.push_str(
        "| run | stack | req/s | p50 ms | p99 ms | p99 of each round ms | machine CPU µs/req |",
    );
    for (label, _) in pair.cpu_columns {
        let _ = write!(md, " {label} µs/req |");
    }
    md.push_str("\n|---|---|---:|---:|---:|---|---:|");
    md.push_str(&"---:|".repeat(pair.cpu_columns.len()));
    md.push('\n');
    let mut costs = Vec::new();
    for name in first.base.runs.iter().map(|r| r.run.clone()) {
        let mut sides: [Vec<&Run>; 2] = [Vec::new(), Vec::new()];
        for (i, round) in rounds.iter().enumerate() {
            sides[0].push(run_named(&round.base, pair.profiles[0], i + 1, &name)?);
            sides[1].push(run_named(&round.with, pair.profiles[1], i + 1, &name)?);
        }
        let mut p99 = [0.0; 2];
        let mut machine = [0.0; 2];
        let mut rps = [0.0; 2];
        for (pick, runs) in sides.iter().enumerate() {
            let med = |f: &dyn Fn(&Run) -> f64| median(runs.iter().map(|r| f(r)).collect());
            let each: Vec<String> = runs
                .iter()
                .map(|r| format!("{:.2}", r.latency_ms.p99))
                .collect();
            p99[pick] = med(&|r| r.latency_ms.p99);
            machine[pick] = med(&Run::machine_us_per_request);
            rps[pick] = med(&|r| r.rps);
            let _ = write!(
                md,
                "| {name} | {} | {:.0} | {:.2} | {:.2} | {} | {:.0} |",
                pair.labels[pick],
                rps[pick],
                med(&|r| r.latency_ms.p50),
                p99[pick],
                each.join(", "),
                machine[pick]
            );
            for (_, prefix) in pair.cpu_columns {
                let _ = write!(md, " {:.0} |", med(&|r| r.cpu_us_per_request(prefix)));
            }
            md.push('\n');
        }
        costs.push(Cost {
            rate: sides[0][0].rate,
            run: name,
            p99_added_ms: p99[1] - p99[0],
            cpu_added_us: machine[1] - machine[0],
            rps: (rps[0], rps[1]),
        });
    }
    let _ = write!(
        md,
        "\n| run | rate | p99 added by {what} | machine CPU added per request | target |\n|---|---:|---:|---:|---|\n",
        what = pair.what
    );
    for cost in &costs {
        let verdict = match cost.verdict(pair.target) {
            None => "(no target for this run)".to_owned(),
            Some(met) => format!(
                "{}: {}",
                target_text(pair.target),
                if met { "met" } else { "MISSED" }
            ),
        };
        let rps = cost.rate_text();
        let _ = writeln!(
            md,
            "| {} | {rps} | {:+.2} ms | {:+.0} µs | {verdict} |",
            cost.run, cost.p99_added_ms, cost.cpu_added_us
        );
    }
    let _ = write!(
        md,
        "\nMedians over the rounds ({}) of {:.0} s per run; `@max` runs go as fast as 20 workers can. \
         CPU per request is each process's CPU time over the run divided by the requests (machine: \
         every process, the load tool included, from /proc/stat; {} cores).\n",
        rounds.len(),
        first.base.duration_s,
        first.base.cores
    );
    Ok((md, costs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, rate: u32, rps: f64, p99: f64, envoy_pct: f64, errors: u64) -> Run {
        Run {
            run: name.into(),
            rate,
            rps,
            requests: 10_000,
            ok: 10_000 - errors,
            errors,
            latency_ms: Latency {
                p50: p99 / 4.0,
                p99,
            },
            processes: vec![
                Process {
                    process: "envoy".into(),
                    cpu_pct: envoy_pct,
                },
                Process {
                    process: "customer-service".into(),
                    cpu_pct: 10.0,
                },
                Process {
                    process: "customer-service-2".into(),
                    cpu_pct: 10.0,
                },
            ],
            machine_cpu_pct: envoy_pct + 20.0,
        }
    }

    fn side(runs: Vec<Run>) -> Side {
        Side {
            cores: 2,
            duration_s: 10.0,
            runs,
        }
    }

    fn tiers_round(local_p99: f64, global_p99: f64) -> Round {
        Round {
            base: side(vec![
                run("get@500", 500, 500.0, local_p99 / 2.0, 20.0, 0),
                run("get@1000", 1000, 1000.0, local_p99, 40.0, 0),
            ]),
            with: side(vec![
                run("get@500", 500, 500.0, global_p99 / 2.0, 30.0, 0),
                run("get@1000", 1000, 1000.0, global_p99, 60.0, 0),
            ]),
        }
    }

    #[test]
    fn the_cost_is_the_difference_of_the_median_p99s() {
        // One noisy round (30 ms) does not move the medians.
        let rounds = [
            tiers_round(2.0, 2.5),
            tiers_round(2.2, 30.0),
            tiers_round(1.8, 2.6),
        ];
        let (md, costs) = compare(&TIERS, &rounds, "# t").unwrap();
        let at_1000 = costs.iter().find(|c| c.rate == 1000).unwrap();
        assert!((at_1000.p99_added_ms - 0.6).abs() < 1e-9, "{at_1000:?}");
        // Envoy 40% -> 60% of a core at 1000 req/s: 200 µs more per request.
        assert!((at_1000.cpu_added_us - 200.0).abs() < 1e-9, "{at_1000:?}");
        assert!(
            md.contains("| get@1000 | 1000 req/s | +0.60 ms | +200 µs | at most 1 ms: met |"),
            "{md}"
        );
        assert!(
            md.contains("| get@500 | 500 req/s | +0.30 ms | +200 µs | (no target for this run) |"),
            "{md}"
        );
        // Services are summed: 2 x 10% of a core at 1000 req/s = 200 µs.
        assert!(
            md.contains("| get@1000 | local only | 1000 | 0.50 | 2.00 | 2.00, 2.20, 1.80 | 600 | 400 | 0 | 0 | 200 | 0 |"),
            "{md}"
        );
    }

    #[test]
    fn a_missed_target_is_reported_not_hidden() {
        let (md, costs) = compare(&TIERS, &[tiers_round(2.0, 3.5)], "# t").unwrap();
        assert!(md.contains("MISSED"), "{md}");
        assert!(costs.iter().any(|c| c.verdict(TIERS.target) == Some(false)));
    }

    #[test]
    fn flat_out_runs_are_judged_by_the_rate_lost_and_divide_cpu_by_what_they_reached() {
        let round = |with_rps: f64| Round {
            base: side(vec![run("get@max", 0, 4000.0, 9.0, 100.0, 0)]),
            with: side(vec![run("get@max", 0, with_rps, 9.5, 100.0, 0)]),
        };
        let (md, costs) = compare(&REST, &[round(3700.0)], "# r").unwrap();
        let cost = &costs[0];
        assert!((cost.rate_lost() - 0.075).abs() < 1e-9, "{cost:?}");
        assert_eq!(cost.verdict(REST.target), Some(true));
        // 120% of a core over 4000 req/s = 300 µs; over 3700 req/s = 324 µs.
        assert!(
            (cost.cpu_added_us - (1.2e6 / 3700.0 - 300.0)).abs() < 1e-6,
            "{cost:?}"
        );
        assert!(
            md.contains("| get@max | 4000 -> 3700 req/s (-7.5%) | +0.50 ms | +24 µs | at most 10% fewer req/s: met |"),
            "{md}"
        );
        let (md, costs) = compare(&REST, &[round(3500.0)], "# r").unwrap();
        assert_eq!(costs[0].verdict(REST.target), Some(false));
        assert!(md.contains("(-12.5%)") && md.contains("MISSED"), "{md}");
    }

    #[test]
    fn a_failed_request_spoils_the_comparison() {
        let mut bad = tiers_round(2.0, 2.5);
        bad.with.runs[0].errors = 3;
        bad.with.runs[0].ok -= 3;
        let err = compare(&TIERS, &[tiers_round(2.0, 2.5), bad], "# t").unwrap_err();
        assert!(
            err.contains("round 2: bench-global get@500: 3 of 10000"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_run_is_an_error() {
        let mut r = tiers_round(2.0, 2.5);
        r.with.runs.pop();
        let err = compare(&TIERS, &[r], "# t").unwrap_err();
        assert!(err.contains("bench-global has no run get@1000"), "{err}");
    }

    #[test]
    fn each_side_runs_the_bench_inside_its_profiles_stack() {
        let args = Plan::full(&TIERS).stack_args(&TIERS, "bench-global", Path::new("out/r1.json"));
        assert_eq!(&args[..4], ["run", "--stop-others", "bench-global", "--"]);
        let tail = args[6..].join(" ");
        assert!(tail.starts_with(r#"exec "$0" --state-dir "$STACK_STATE_DIR" "$@" target/release/bench-pair --out out/r1.json --runs get@500,get@1000 --duration 10s"#), "{tail}");
    }

    #[test]
    fn the_smoke_plan_keeps_every_run_at_a_low_rate() {
        assert_eq!(
            Plan::smoke(&REST).runs,
            "get@100,create@100,get@max,create@max"
        );
        assert_eq!(Plan::smoke(&TIERS).runs, "get@100");
    }

    #[test]
    fn the_sides_take_turns_going_first() {
        assert_eq!(side_order(1), [0, 1]);
        assert_eq!(side_order(2), [1, 0]);
        assert_eq!(side_order(3), [0, 1]);
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }
}
