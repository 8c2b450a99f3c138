//! One side of `just bench-tiers`: REST Gets through the gateway of a
//! running stack at fixed rates (vegeta), with what each process and the
//! whole machine spent meanwhile. `cargo xtask bench-tiers` runs it against
//! a stack with the local rate-limit tier only and one with both tiers,
//! round after round, and compares them.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use bench::{
    load::{self, Error, LoadConfig, Method, Mode, Path3},
    procs,
};
use clap::Parser;
use serde_json::json;

#[derive(Debug, Parser)]
#[command(
    about = "REST Gets at fixed rates through a running stack, with the CPU each process spent"
)]
struct Args {
    /// The stack's state directory (its pid files).
    #[arg(long)]
    state_dir: PathBuf,
    /// Where the runs go (JSON).
    #[arg(long)]
    out: PathBuf,
    /// Requests per second, one run each, in this order.
    #[arg(long, value_delimiter = ',', default_value = "500,1000")]
    rates: Vec<u32>,
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

fn run(args: &Args) -> Result<bool, Error> {
    let work = std::env::temp_dir().join(format!("bench-tiers-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let mut names = vec!["envoy"];
    names.extend(args.processes.iter().map(String::as_str));
    let watched = procs::stack_processes(&args.state_dir, &names)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let config = |rate: u32, duration: Duration| LoadConfig {
        duration,
        rate,
        concurrency: 20,
        connections: 1,
        tool_cpus: 1,
        direct: String::new(),
        gateway: args.gateway.clone(),
        protoset: PathBuf::new(),
        work: work.clone(),
        tag: String::new(),
    };
    // Connections, caches and the rate-limit service's first descriptors
    // are warm before anything is measured.
    load::run(
        &config(200, Duration::from_secs(2)),
        Path3::Rest,
        Method::Get,
        Mode::Rate,
        &watched,
    )?;
    let mut runs = Vec::new();
    let mut clean = true;
    for &rate in &args.rates {
        let before = procs::machine_ticks().ok_or("/proc/stat unreadable")?;
        let run = load::run(
            &config(rate, args.duration),
            Path3::Rest,
            Method::Get,
            Mode::Rate,
            &watched,
        )?;
        let after = procs::machine_ticks().ok_or("/proc/stat unreadable")?;
        let machine = procs::machine_busy_pct(before, after, cores);
        eprintln!(
            "  {rate:>5} req/s: p50 {:.2} p99 {:.2} ms, {} of {} ok, machine {machine:.0}% of one core",
            run.p50_ms, run.p99_ms, run.ok, run.requests
        );
        clean &= run.errors_count() == 0 && run.ok > 0;
        let mut value = run.to_json();
        value["rate"] = json!(rate);
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
                "bench-tiers: a run had failed requests (see {})",
                args.out.display()
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("bench-tiers: {e}");
            ExitCode::FAILURE
        }
    }
}
