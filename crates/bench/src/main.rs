//! `just bench`: what the gateway and the REST transcoding cost, measured side
//! by side in one run on one machine, plus the service's own footprint.
//!
//! Expects the bench stack to be up (`just bench` starts it: release
//! binaries, `k8s/overlays/bench`, state in `.local/bench`). Writes
//! `results.json`, `results.md` and `latency.svg` to `--out`, prints the
//! ratios and the targets, and exits non-zero when a tool fails or a run
//! produced no successful request. Targets are reported, never asserted.

use std::{
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use clap::Parser;
use serde_json::{Value, json};
use tonic::transport::Endpoint;

use bench::{
    explain, load,
    load::{Error, LoadConfig, Method, Mode, Path3},
    procs, report, service,
};

#[derive(Debug, Parser)]
#[command(about = "Gateway and transcoding cost: load runs, service footprint, report")]
struct Args {
    /// Length of each load run.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Requests per second of the fixed-rate runs.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Concurrent requests of the max-throughput runs (ghz -c, vegeta workers).
    #[arg(long, default_value_t = 20)]
    concurrency: u32,
    /// gRPC connections ghz spreads the requests over.
    #[arg(long, default_value_t = 2)]
    connections: u32,
    /// Cores the load tool may use (ghz --cpus, GOMAXPROCS for vegeta).
    #[arg(long, default_value_t = 1)]
    tool_cpus: u32,
    /// Where results.{json,md} and latency.svg go.
    #[arg(long)]
    out: PathBuf,
    /// The bench stack's state directory (pid files of the stack).
    #[arg(long)]
    state_dir: PathBuf,
    /// The release customer-service binary (service measurements).
    #[arg(long)]
    customer_bin: PathBuf,
    #[arg(long, default_value = "127.0.0.1:50051")]
    direct: String,
    #[arg(long, default_value = "127.0.0.1:8080")]
    gateway: String,
    /// Records the stack's customer-service was started with (for the report).
    #[arg(long, default_value_t = 0)]
    stack_records: usize,
    /// Store sizes whose RSS is measured (besides the sample data alone).
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    rss_records: Vec<usize>,
    /// Store size for the List page cost at start / middle / end.
    #[arg(long, default_value_t = 100_000)]
    list_records: usize,
    /// Small store to compare the List page cost against.
    #[arg(long, default_value_t = 100)]
    small_records: usize,
    /// Sequential List calls timed per position.
    #[arg(long, default_value_t = 1000)]
    list_calls: usize,
    /// Process starts per start-to-SERVING measurement.
    #[arg(long, default_value_t = 5)]
    start_reps: usize,
    /// Skip the load runs (service measurements only; no stack needed).
    #[arg(long)]
    service_only: bool,
    /// The paths of the load runs (`direct_grpc`, `gateway_grpc`, `gateway_rest`).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "direct_grpc,gateway_grpc,gateway_rest"
    )]
    paths: Vec<Path3>,
    /// The stack's processes whose CPU and memory are sampled (pid file
    /// names; "envoy" is found under envoy-gateway).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "customer-service,envoy,envoy-gateway"
    )]
    watch: Vec<String>,
    /// Against a stack of two instances on one store (the stores bench):
    /// no service measurements, no report but results.json; first the List
    /// page at the start, middle and end of the stack's store, through the
    /// gateway, and with --psql the store's List query EXPLAINed.
    #[arg(long)]
    stores: bool,
    /// psql, to EXPLAIN the List query on the stack's PostgreSQL (its socket
    /// is in <state-dir>/postgres).
    #[arg(long)]
    psql: Option<PathBuf>,
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default();
    let mem_mib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024);
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    json!({"nproc": nproc, "cpu": cpu, "mem_mib": mem_mib})
}

/// How the load runs were made, for the results' JSON.
fn run_config(args: &Args) -> Value {
    json!({
        "duration": humantime::format_duration(args.duration).to_string(),
        "rate": args.rate, "concurrency": args.concurrency, "connections": args.connections,
        "load_tool_cpus": args.tool_cpus,
        "stack_records": args.stack_records + service::SAMPLES,
        "get_id": load::GET_ID,
        "tools": {"grpc": "ghz", "rest": "vegeta (HTTP/1.1, keep-alive)"},
    })
}

async fn run(args: Args) -> Result<bool, Error> {
    let begun = Instant::now();
    std::fs::create_dir_all(&args.out)?;
    let work = args.out.join("raw");
    std::fs::create_dir_all(&work)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
    let started = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let cfg = LoadConfig {
        duration: args.duration,
        rate: args.rate,
        concurrency: args.concurrency,
        connections: args.connections,
        tool_cpus: args.tool_cpus,
        direct: args.direct.clone(),
        gateway: args.gateway.clone(),
        protoset: load::write_protoset(&work)?,
        work: work.clone(),
        tag: now.as_millis().to_string(),
    };

    let mut runs = Vec::new();
    let mut failures = Vec::new();
    // The store as seeded: measured before Create grows it.
    let mut store = json!({});
    if args.stores {
        let total = args.stack_records + service::SAMPLES;
        eprintln!("List page of 20 through the gateway, {total} records:");
        let channel = Endpoint::from_shared(format!("http://{}", args.gateway))?
            .connect()
            .await?;
        store["list_page_20"] = service::list_cost(channel, total, args.list_calls).await?;
        store["list_page_20"]["calls_per_position"] = json!(args.list_calls);
        if let Some(psql) = &args.psql {
            let sockets = args.state_dir.join("postgres");
            // The pages just timed: after n records is after seq n, the
            // seeded ids being 1..=total.
            let list = &store["list_page_20"];
            let afters: Vec<(&str, u64)> = ["start", "middle", "end"]
                .into_iter()
                .map(|p| (p, list[p]["after"].as_u64().unwrap_or(0)))
                .collect();
            let explained = explain::capture(psql, &sockets, &afters)?;
            eprintln!(
                "  EXPLAIN of the store's List query on {} rows: {}",
                explained["rows"],
                explained["plans"]
                    .as_object()
                    .map(|plans| plans
                        .iter()
                        .map(|(k, v)| format!("{k}: {}", v["assessment"]))
                        .collect::<Vec<_>>()
                        .join("; "))
                    .unwrap_or_default()
            );
            store["explain"] = explained;
        }
    }
    if !args.service_only {
        // The control plane too: Envoy's access log goes to its log file.
        let names: Vec<&str> = args.watch.iter().map(String::as_str).collect();
        let watched = procs::stack_processes(&args.state_dir, &names)?;
        eprintln!(
            "load runs ({} each; watching {}):",
            humantime::format_duration(args.duration),
            watched
                .iter()
                .map(|w| format!("{} pid {}", w.name, w.pid))
                .collect::<Vec<_>>()
                .join(", ")
        );
        // Method by method, so every path sees the same store: Create runs
        // last and grows the store (GET/List do not depend on its size).
        for method in Method::ALL {
            for mode in [Mode::Max, Mode::Rate] {
                for &path in &args.paths {
                    match load::run(&cfg, path, method, mode, &watched) {
                        Ok(r) => {
                            eprintln!(
                                "  {:<18} {:<4} {:<13} {:>8.0} req/s  p50 {:>6.2}  p90 {:>6.2}  p99 {:>6.2} ms  errors {}",
                                method.label(),
                                mode.key(),
                                path.label(),
                                r.rps,
                                r.p50_ms,
                                r.p90_ms,
                                r.p99_ms,
                                r.errors_count()
                            );
                            if r.ok == 0 {
                                failures.push(format!(
                                    "{} {} {}: no successful request ({})",
                                    method.label(),
                                    mode.key(),
                                    path.label(),
                                    r.errors
                                ));
                            }
                            runs.push(r);
                        }
                        Err(e) => {
                            eprintln!(
                                "  {} {} {}: FAILED: {e}",
                                method.label(),
                                mode.key(),
                                path.label()
                            );
                            failures.push(e.to_string());
                        }
                    }
                }
            }
        }
    }

    if args.stores {
        let all = json!({
            "started": started,
            "elapsed_s": begun.elapsed().as_secs(),
            "machine": machine(),
            "config": run_config(&args),
            "store": store,
            "runs": runs.iter().map(load::RunResult::to_json).collect::<Vec<_>>(),
            "failures": failures,
        });
        std::fs::write(
            args.out.join("results.json"),
            serde_json::to_string_pretty(&all)? + "\n",
        )?;
        for f in &failures {
            eprintln!("FAIL: {f}");
        }
        return Ok(failures.is_empty());
    }

    eprintln!("service measurements ({}):", args.customer_bin.display());
    let service = service::measure(
        &args.customer_bin,
        &service::ServiceConfig {
            rss_records: args.rss_records.clone(),
            list_records: args.list_records,
            small_records: args.small_records,
            start_reps: args.start_reps,
            list_calls: args.list_calls,
        },
    )
    .await?;

    let ratios = report::ratios(&runs);
    let targets = report::targets(&ratios, &service, args.rate);
    let created: u64 = runs
        .iter()
        .filter(|r| r.method == Method::Create)
        .map(|r| r.ok)
        .sum();
    let all = json!({
        "started": started,
        "elapsed_s": begun.elapsed().as_secs(),
        "machine": machine(),
        "config": run_config(&args),
        "runs": runs.iter().map(load::RunResult::to_json).collect::<Vec<_>>(),
        "ratios": ratios,
        "targets": targets,
        "service": service,
        "created_records": created,
        "failures": failures,
    });
    std::fs::write(
        args.out.join("results.json"),
        serde_json::to_string_pretty(&all)? + "\n",
    )?;
    std::fs::write(args.out.join("results.md"), report::markdown(&all, &runs))?;
    std::fs::write(args.out.join("latency.svg"), report::svg(&runs, args.rate))?;

    println!("\nratios:");
    if let Some(r) = all["ratios"].as_object() {
        for (m, v) in r {
            println!(
                "  {m:<18} gateway gRPC/direct {}  REST/direct {}  p99 added at {}/s: gRPC {} ms, REST {} ms",
                v["gateway_grpc_over_direct_rps"],
                v["rest_over_direct_rps"],
                args.rate,
                v["gateway_grpc_added_p99_ms_at_rate"],
                v["rest_added_p99_ms_at_rate"]
            );
        }
    }
    println!("targets (reported, not asserted):");
    for t in &targets {
        let verdict = match t["met"].as_bool() {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "not measured",
        };
        println!(
            "  {:<7} {} = {} {} {}",
            verdict,
            t["target"].as_str().unwrap_or(""),
            t["value"],
            t["unit"].as_str().unwrap_or(""),
            t["note"].as_str().unwrap_or("")
        );
    }
    println!(
        "results: {} (results.md, results.json, latency.svg); {} s",
        args.out.display(),
        begun.elapsed().as_secs()
    );
    for f in &failures {
        eprintln!("FAIL: {f}");
    }
    Ok(failures.is_empty())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}
