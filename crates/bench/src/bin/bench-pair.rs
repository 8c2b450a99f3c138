//! One side of a paired bench (`just bench-tiers`, `just bench-rest`): REST
//! calls through the gateway of a running stack, at fixed rates or as fast
//! as 20 workers go (vegeta), with what each process and the whole machine
//! spent meanwhile. `cargo xtask` runs it against two stacks that differ in
//! one thing, round after round, and compares them (crates/xtask/src/pair.rs).

use std::{path::PathBuf, process::ExitCode, time::Duration};

use bench::{
    load::{self, Error, LoadConfig, Method, Mode, Path3},
    procs,
};
use clap::Parser;
use serde_json::json;

/// Workers of a run as fast as it goes: enough to keep a 2-core gateway busy.
const MAX_WORKERS: u32 = 20;

#[derive(Debug, Parser)]
#[command(
    about = "REST calls at fixed rates or flat out through a running stack, with the CPU each process spent"
)]
struct Args {
    /// The stack's state directory (its pid files).
    #[arg(long)]
    state_dir: PathBuf,
    /// Where the runs go (JSON).
    #[arg(long)]
    out: PathBuf,
    /// The runs, in this order: `<get|create>@<req/s>` or `<get|create>@max`.
    #[arg(long, value_delimiter = ',', default_value = "get@500,get@1000")]
    runs: Vec<RunSpec>,
    /// Length of each run.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// The stack's processes to watch besides Envoy (pid file names).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ratelimit,redis,customer-service,customer-service-2"
    )]
    processes: Vec<String>,
    #[arg(long, default_value = "127.0.0.1:8080")]
    gateway: String,
}

/// One run: a method, at a rate or flat out (rate 0).
#[derive(Debug, Clone, PartialEq, Eq)]
struct RunSpec {
    text: String,
    method: Method,
    rate: u32,
}

impl std::str::FromStr for RunSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (method, rate) = text
            .split_once('@')
            .ok_or(format!("{text}: expected <get|create>@<req/s|max>"))?;
        let method = match method {
            "get" => Method::Get,
            "create" => Method::Create,
            other => return Err(format!("{text}: unknown method {other} (get, create)")),
        };
        let rate = match rate {
            "max" => 0,
            rate => rate
                .parse()
                .ok()
                .filter(|&r| r > 0)
                .ok_or(format!("{text}: the rate is a positive number or max"))?,
        };
        Ok(Self {
            text: text.to_owned(),
            method,
            rate,
        })
    }
}

fn run(args: &Args) -> Result<bool, Error> {
    let work = std::env::temp_dir().join(format!("bench-pair-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let mut names = vec!["envoy"];
    names.extend(args.processes.iter().map(String::as_str));
    let watched = procs::stack_processes(&args.state_dir, &names)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let tag = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let config = |rate: u32, duration: Duration, name: &str| LoadConfig {
        duration,
        rate,
        concurrency: MAX_WORKERS,
        connections: 1,
        tool_cpus: 1,
        direct: String::new(),
        gateway: args.gateway.clone(),
        protoset: PathBuf::new(),
        work: work.clone(),
        // Creates must not collide with an earlier run's e-mails.
        tag: format!("{tag}-{name}"),
    };
    // Connections, caches and the rate-limit service's first descriptors
    // are warm before anything is measured.
    load::run(
        &config(200, Duration::from_secs(2), "warm"),
        Path3::Rest,
        Method::Get,
        Mode::Rate,
        &watched,
    )?;
    let mut runs = Vec::new();
    let mut clean = true;
    for spec in &args.runs {
        let mode = if spec.rate == 0 {
            Mode::Max
        } else {
            Mode::Rate
        };
        let before = procs::machine_ticks().ok_or("/proc/stat unreadable")?;
        let run = load::run(
            &config(spec.rate, args.duration, &spec.text.replace('@', "-")),
            Path3::Rest,
            spec.method,
            mode,
            &watched,
        )?;
        let after = procs::machine_ticks().ok_or("/proc/stat unreadable")?;
        let machine = procs::machine_busy_pct(before, after, cores);
        eprintln!(
            "  {:>12}: {:.0} req/s, p50 {:.2} p99 {:.2} ms, {} of {} ok, machine {machine:.0}% of one core",
            spec.text, run.rps, run.p50_ms, run.p99_ms, run.ok, run.requests
        );
        clean &= run.errors_count() == 0 && run.ok > 0;
        let mut value = run.to_json();
        value["run"] = json!(spec.text);
        value["rate"] = json!(spec.rate);
        value["machine_cpu_pct"] = json!(procs::round1(machine));
        runs.push(value);
    }
    drop(std::fs::remove_dir_all(&work));
    let doc = json!({"cores": cores, "duration_s": args.duration.as_secs_f64(), "runs": runs});
    std::fs::write(&args.out, serde_json::to_string_pretty(&doc)? + "\n")?;
    Ok(clean)
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!(
                "bench-pair: a run had failed requests (see {})",
                args.out.display()
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("bench-pair: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_specs_are_a_method_and_a_rate_or_max() {
        let get: RunSpec = "get@1000".parse().unwrap();
        assert_eq!((get.method, get.rate), (Method::Get, 1000));
        let create: RunSpec = "create@max".parse().unwrap();
        assert_eq!((create.method, create.rate), (Method::Create, 0));
        for bad in ["get", "list@10", "get@0", "get@fast"] {
            assert!(bad.parse::<RunSpec>().is_err(), "{bad}");
        }
    }
}
