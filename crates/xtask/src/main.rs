//! `cargo xtask <task>`: the logic behind the justfile's recipes. Each
//! recipe is a one-liner that calls a task here, so the deciding code (which
//! tool version, what a check accepts, which order) is Rust with tests.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};
use xtask::{bench, e2e, fuzz, pair, pins::Pins, readme, stack, stores, token, tools};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "The tasks behind the justfile")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the pinned tools (names of tools or groups from crates/xtask/pins.toml; default: `default`)
    Tools { names: Vec<String> },
    /// Print every pin: `name version`, or with --shell `NAME_VERSION='...'` lines to eval
    Pins {
        #[arg(long)]
        shell: bool,
    },
    /// Print one tool's pinned version
    Pin { name: String },
    /// Print `export PATH=...` with the pinned tools first (eval it in a shell)
    ShellEnv,
    /// `cargo stack ARGS...` with its tools installed and ENVOY_VERSION (and Keycloak's paths) set
    Stack {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
    /// Print the README's quick-start commands (with --auth: the auth stack's)
    Examples {
        #[arg(long)]
        auth: bool,
    },
    /// Build release binaries, run the benchmark against the bench stack (--smoke: seconds, then check the outputs)
    Bench {
        #[arg(long)]
        smoke: bool,
        out: PathBuf,
    },
    /// Fuzz the REST API through a fresh stack's gateway: dev (in memory) or scale (PostgreSQL); the checks: `fuzz-run`
    Fuzz {
        #[arg(default_value = "dev")]
        stack: String,
    },
    /// Inside `cargo stack run fuzz|fuzz-scale`: schemathesis against the gateway, then the HAR and the stack checked
    FuzzRun,
    /// Run an e2e suite on its stack: offline (tools only), dev, faults (ha profile), auth
    E2e { suite: String },
    /// Regenerate docs/openapi/api.swagger.yaml from proto/ (buf + protoc-gen-openapiv2, then the REST extension's 201s)
    Openapi,
    /// Fail when docs/openapi/api.swagger.yaml differs from what proto/ generates
    CheckOpenapi,
    /// Print an access token of a test user from the running Keycloak
    Token {
        user: String,
        #[arg(default_value = "envoy-poc")]
        realm: String,
    },
    /// rustfmt, clippy -D warnings, buf lint, buf breaking against the previous commit
    Lint,
    /// What the global rate-limit tier costs: rounds of the scale stack with the local tier only, then with both, the same runs (vegeta); medians compared
    BenchTiers {
        #[command(flatten)]
        plan: PlanArgs,
    },
    /// What the REST extension costs: rounds of the bench stack without it, then with it, the same runs (vegeta); medians compared
    BenchRest {
        #[command(flatten)]
        plan: PlanArgs,
    },
    /// In-memory beside PostgreSQL: Get, List, Create through the gateway on two instances of each store, List page cost and the List query's plan on PostgreSQL; stores.md
    BenchStores {
        #[arg(long, default_value = "crates/bench/results")]
        out: PathBuf,
    },
    /// Build every service of the table (envoy-ext/services.toml): `cargo build --bins -p ...`
    BuildServices {
        #[arg(long)]
        release: bool,
    },
    // ---- kubernetes (src/k8s) ----
    #[command(flatten)]
    K8s(xtask::k8s::Task),
}

fn main() -> ExitCode {
    match run(Cli::parse().task) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

type Error = Box<dyn std::error::Error>;

fn run(task: Task) -> Result<ExitCode, Error> {
    let pins = Pins::load()?;
    match task {
        Task::Tools { names } => {
            let names: Vec<&str> = if names.is_empty() {
                vec!["default"]
            } else {
                names.iter().map(String::as_str).collect()
            };
            tools::ensure(&pins, &names)?;
        }
        Task::Pins { shell: true } => print!("{}", pins.shell()),
        Task::Pins { shell: false } => {
            for tool in pins.tools() {
                println!("{} {}", tool.name, tool.version);
            }
        }
        Task::Pin { name } => println!("{}", pins.version(&name)?),
        Task::BenchTiers { plan } => return run_pair_task(&pins, &pair::TIERS, plan),
        Task::BenchRest { plan } => return run_pair_task(&pins, &pair::REST, plan),
        Task::BenchStores { out } => {
            let build = build_release()?;
            if build != ExitCode::SUCCESS {
                return Ok(build);
            }
            return run_bench_stores(&pins, false, &out);
        }
        Task::BuildServices { release } => {
            let table = envoy_ext::services::ServiceTable::committed()?;
            let mut build = Command::new("cargo");
            build.args(["build", "--locked", "--bins"]);
            if release {
                build.arg("--release");
            }
            for service in &table.services {
                build.args(["-p", &service.name]);
            }
            return status(&mut build);
        }
        Task::K8s(task) => xtask::k8s::run(task, &pins)?,
        Task::ShellEnv => println!("export PATH=\"{}:$PATH\"", tools::bin_dir().display()),
        Task::Stack { args } => return status(&mut stack::command(&pins, &args)?),
        Task::Examples { auth: false } => {
            println!("\nTry it (REST through the transcoder, gRPC through the GRPCRoutes):");
            for example in readme::examples(readme::README) {
                println!("  {}", example.command);
            }
            println!("Logs: .local/stack/dev/logs/. Stop: just down");
        }
        Task::Examples { auth: true } => {
            println!("Try: curl -si localhost:8080/customers  (401), then");
            println!(
                "     curl -s -H \"authorization: Bearer $(just token alice)\" localhost:8080/customers"
            );
            println!(
                "Users (password = name): alice reader, bob writer, carol admin, dave no role. Stop: just down"
            );
        }
        Task::Bench { smoke, out } => return run_bench(&pins, smoke, &out),
        Task::Fuzz { stack } => return fuzz_stack(&pins, &stack),
        Task::FuzzRun => return run_fuzz(),
        Task::E2e { suite } => return run_e2e(&pins, e2e::suite(&suite)?),
        Task::Openapi => return write_openapi(),
        Task::CheckOpenapi => return check_openapi(),
        Task::Token { user, realm } => {
            let out = Command::new("curl")
                .args(["-sS", &token::endpoint(&realm)])
                .args(["-d", "grant_type=password", "-d"])
                .arg(format!("client_id={}", token::CLIENT_ID))
                .arg("-d")
                .arg(format!("username={user}"))
                .arg("-d")
                .arg(format!("password={user}"))
                .output()?;
            if !out.status.success() {
                return Err(format!(
                    "Keycloak not reachable at {}: run 'just up-auth' ({})",
                    token::KEYCLOAK_URL,
                    String::from_utf8_lossy(&out.stderr).trim()
                )
                .into());
            }
            println!(
                "{}",
                token::access_token(&String::from_utf8_lossy(&out.stdout))?
            );
        }
        Task::Lint => {
            let mut e2e_targets = vec!["clippy", "--locked", "-p", "e2e"];
            for target in e2e::named_targets() {
                e2e_targets.extend(["--test", target]);
            }
            e2e_targets.extend(["--", "-D", "warnings"]);
            for (program, args) in [
                ("cargo", &["fmt", "--all", "--check"][..]),
                (
                    "cargo",
                    &[
                        "clippy",
                        "--workspace",
                        "--all-targets",
                        "--all-features",
                        "--locked",
                        "--",
                        "-D",
                        "warnings",
                    ],
                ),
                ("cargo", &e2e_targets[..]),
                ("buf", &["lint", "proto"]),
                (
                    "buf",
                    &[
                        "breaking",
                        "proto",
                        "--against",
                        ".git#ref=HEAD~1,subdir=proto",
                    ],
                ),
            ] {
                let code = status(
                    Command::new(program)
                        .args(args)
                        .env("PATH", tools::path_with_tools()),
                )?;
                if code != ExitCode::SUCCESS {
                    return Ok(code);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `command`, passing its exit status on.
fn status(command: &mut Command) -> Result<ExitCode, Error> {
    let program = command.get_program().to_string_lossy().into_owned();
    let status = command
        .status()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

/// The release binaries both benches run: the services and the bench's own.
fn build_release() -> Result<ExitCode, Error> {
    status(Command::new("cargo").args([
        "build",
        "--release",
        "--locked",
        "-p",
        "customer-service",
        "-p",
        "product-service",
        "-p",
        "bench",
    ]))
}

/// A paired bench's knobs; `just bench`'s plan when left out.
#[derive(Debug, clap::Args)]
struct PlanArgs {
    #[arg(long)]
    rounds: Option<u32>,
    /// Comma-separated `bench-pair` runs: `get@1000`, `create@max`, ...
    #[arg(long)]
    runs: Option<String>,
    #[arg(long)]
    duration: Option<String>,
    #[arg(long, default_value = "crates/bench/results")]
    out: PathBuf,
}

fn run_pair_task(pins: &Pins, pair: &pair::Pair, args: PlanArgs) -> Result<ExitCode, Error> {
    let full = pair::Plan::full(pair);
    let plan = pair::Plan {
        rounds: args.rounds.unwrap_or(full.rounds),
        runs: args.runs.unwrap_or(full.runs),
        duration: args.duration.unwrap_or(full.duration),
    };
    let build = build_release()?;
    if build != ExitCode::SUCCESS {
        return Ok(build);
    }
    run_bench_pair(pins, pair, &plan, &args.out)
}

/// Rounds of the pair's two profiles, one after the other, then the
/// comparison in `out`/<name>.md (and the rounds' runs in `out`/<name>/),
/// <name> being the recipe without `bench-`.
fn run_bench_pair(
    pins: &Pins,
    pair: &pair::Pair,
    plan: &pair::Plan,
    out: &Path,
) -> Result<ExitCode, Error> {
    tools::ensure(pins, &["default", "bench", "scale"])?;
    let stem = pair.name.trim_start_matches("bench-");
    let raw = out.join(stem);
    std::fs::create_dir_all(&raw).map_err(|e| format!("{}: {e}", raw.display()))?;
    let mut rounds = Vec::new();
    for round in 1..=plan.rounds {
        let mut sides = [None, None];
        for side in pair::side_order(round) {
            let profile = pair.profiles[side];
            eprintln!("{}: round {round} of {}, {profile}", pair.name, plan.rounds);
            let json = raw.join(format!("round-{round}-{profile}.json"));
            let args = plan.stack_args(pair, profile, &json);
            let code = status(&mut stack::command(pins, &args)?)?;
            if code != ExitCode::SUCCESS {
                return Ok(code);
            }
            let text =
                std::fs::read_to_string(&json).map_err(|e| format!("{}: {e}", json.display()))?;
            sides[side] = Some(
                serde_json::from_str::<pair::Side>(&text)
                    .map_err(|e| format!("{}: {e}", json.display()))?,
            );
        }
        let [Some(base), Some(with)] = sides else {
            return Err("a round lacks a side".into());
        };
        rounds.push(pair::Round { base, with });
    }
    let header = format!(
        "# What {} costs (just {})\n\n{}. {}; rounds: {}; REST calls through the gateway (vegeta): \
         {}, {} each.",
        pair.what,
        pair.name,
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
        pair.stack,
        plan.rounds,
        plan.runs,
        plan.duration
    );
    let (md, costs) = pair::compare(pair, &rounds, &header)?;
    let path = out.join(format!("{stem}.md"));
    std::fs::write(&path, &md).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("{md}");
    for cost in costs {
        println!(
            "{}: {} ({}): {} adds {:+.2} ms to the p99, {:+.0} µs of CPU per request",
            pair.name,
            cost.run,
            cost.rate_text(),
            pair.what,
            cost.p99_added_ms,
            cost.cpu_added_us
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn run_bench(pins: &Pins, smoke: bool, out: &Path) -> Result<ExitCode, Error> {
    tools::ensure(pins, &["default", "bench"])?;
    let build = build_release()?;
    if build != ExitCode::SUCCESS {
        return Ok(build);
    }
    if smoke && out.exists() {
        std::fs::remove_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    let records = if smoke {
        bench::SMOKE_RECORDS.to_string()
    } else {
        std::env::var("BENCH_RECORDS").unwrap_or_else(|_| bench::RECORDS_DEFAULT.to_string())
    };
    // The smoke run belongs to `just test`, which owns the machine's ports;
    // a full run stops a dev stack only when asked (it may be someone's).
    let mut args = vec!["run".to_string()];
    if smoke || std::env::var("BENCH_STOP_DEV_STACK").as_deref() == Ok("1") {
        args.push("--stop-others".into());
    }
    args.extend(["bench".into(), "--".into()]);
    let bench = bench::command(
        out,
        &records,
        &bench::args(smoke, |v| std::env::var(v).ok()),
    );
    args.extend(command_args(&bench));
    let code = status(stack::command(pins, &args)?.env("BENCH_RECORDS", &records))?;
    if code != ExitCode::SUCCESS {
        if !smoke {
            eprintln!(
                "bench: a dev stack in the way? `just down`, or BENCH_STOP_DEV_STACK=1 just bench"
            );
        }
        return Ok(code);
    }
    if smoke {
        println!("{}", bench::check_outputs(out)?);
    }
    // The stores, the REST extension and the rate-limit tiers: stacks of their own, after the
    // bench stack.
    let code = run_bench_stores(pins, smoke, out)?;
    if code != ExitCode::SUCCESS {
        return Ok(code);
    }
    for pair in [pair::REST, pair::TIERS] {
        let plan = if smoke {
            pair::Plan::smoke(&pair)
        } else {
            pair::Plan::full(&pair)
        };
        let code = run_bench_pair(pins, &pair, &plan, out)?;
        if code != ExitCode::SUCCESS {
            return Ok(code);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A command as the words `cargo stack run PROFILE -- ...` takes.
fn command_args(command: &Command) -> Vec<String> {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// In-memory beside PostgreSQL: each store's stack (fresh, seeded with the
/// same records) with the bench's gateway runs inside it, then the
/// comparison in `out`/stores.md (each side's JSON in `out`/stores/).
fn run_bench_stores(pins: &Pins, smoke: bool, out: &Path) -> Result<ExitCode, Error> {
    tools::ensure(pins, &["default", "bench", "scale"])?;
    let records = if smoke {
        stores::SMOKE_RECORDS.to_string()
    } else {
        std::env::var("BENCH_STORE_RECORDS").unwrap_or_else(|_| stores::RECORDS_DEFAULT.to_string())
    };
    let mut sides = Vec::new();
    for (profile, label) in stores::PROFILES {
        eprintln!("bench stores: {label} ({profile}, {records} records)");
        // A fresh store: the seeded rows and nothing an earlier run created.
        let code = status(&mut stack::command(
            pins,
            &["reset".into(), profile.into()],
        )?)?;
        if code != ExitCode::SUCCESS {
            return Ok(code);
        }
        let dir = out.join("stores").join(profile);
        let mut bench_args = bench::args(smoke, |v| std::env::var(v).ok());
        bench_args.extend(stores::bench_args(profile));
        let mut args: Vec<String> = ["run", "--stop-others", profile, "--"]
            .map(str::to_owned)
            .to_vec();
        args.extend(command_args(&bench::command(&dir, &records, &bench_args)));
        let code = status(stack::command(pins, &args)?.env("BENCH_STORE_RECORDS", &records))?;
        if code != ExitCode::SUCCESS {
            return Ok(code);
        }
        let json = dir.join("results.json");
        let text =
            std::fs::read_to_string(&json).map_err(|e| format!("{}: {e}", json.display()))?;
        sides.push(
            serde_json::from_str::<serde_json::Value>(&text)
                .map_err(|e| format!("{}: {e}", json.display()))?,
        );
    }
    let [memory, postgres] =
        <[serde_json::Value; 2]>::try_from(sides).map_err(|_| "bench stores: want two sides")?;
    let header = format!(
        "# In-memory beside PostgreSQL (just bench)\n\n{}. Two instances of customer-service behind \
         the gateway (release binaries, no rate limits), each store fresh and seeded with {records} \
         synthetic customers plus the 5 samples; the profiles bench-memory and bench-postgres.",
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
    );
    let (md, targets) = stores::compare(&memory, &postgres, &header)?;
    let path = out.join("stores.md");
    std::fs::write(&path, &md).map_err(|e| format!("{}: {e}", path.display()))?;
    println!(
        "bench stores: {} (targets reported, not asserted)",
        path.display()
    );
    for t in targets {
        let verdict = if t.met { "met" } else { "MISSED" };
        println!("  {verdict:<7} {} = {}", t.target, t.value);
    }
    Ok(ExitCode::SUCCESS)
}

fn run_e2e(pins: &Pins, suite: &e2e::Suite) -> Result<ExitCode, Error> {
    let path = tools::path_with_tools();
    let Some(stack_args) = suite.stack_args() else {
        tools::ensure(pins, &["default"])?;
        let mut command = Command::new("cargo");
        command.args(suite.cargo_test(false)).env("PATH", &path);
        suite.apply_env(&mut command);
        return status(&mut command);
    };
    // Built first: the stack (and the machine's fixed ports) is held only
    // while the tests run.
    let built = status(Command::new("cargo").args(suite.cargo_test(true)))?;
    if built != ExitCode::SUCCESS {
        return Ok(built);
    }
    let mut command = stack::command(pins, &stack_args)?;
    suite.apply_env(&mut command);
    status(&mut command)
}

/// `just fuzz STACK`: its profile from scratch (the PostgreSQL database,
/// logs and reports of an earlier run deleted, so a seed reproduces a run
/// and an old log cannot fail a new one), other stacks stopped meanwhile.
fn fuzz_stack(pins: &Pins, stack: &str) -> Result<ExitCode, Error> {
    let profile = fuzz::profile(stack)?;
    let reset = status(&mut stack::command(
        pins,
        &["reset".into(), profile.into()],
    )?)?;
    if reset != ExitCode::SUCCESS {
        return Ok(reset);
    }
    let args: Vec<String> = [
        "run",
        "--stop-others",
        profile,
        "--",
        "cargo",
        "xtask",
        "fuzz-run",
    ]
    .map(String::from)
    .into();
    status(&mut stack::command(pins, &args)?)
}

fn run_fuzz() -> Result<ExitCode, Error> {
    let (Ok(profile), Ok(state)) = (
        std::env::var("STACK_PROFILE"),
        std::env::var("STACK_STATE_DIR"),
    ) else {
        return Err(
            "run inside `cargo stack run fuzz|fuzz-scale -- cargo xtask fuzz-run` (just fuzz [scale])"
                .into(),
        );
    };
    let state = PathBuf::from(state);
    let reports = state.join("reports");
    if reports.exists() {
        std::fs::remove_dir_all(&reports)?;
    }
    std::fs::create_dir_all(&reports)?;
    let har = reports.join("fuzz.har");
    let env = |var: &str, default: &str| std::env::var(var).unwrap_or_else(|_| default.to_string());
    let started = std::time::Instant::now();
    let st = status(
        Command::new("st")
            .args([
                "run",
                "docs/openapi/api.swagger.yaml",
                "--url",
                "http://127.0.0.1:8080",
            ])
            .args([
                "--checks",
                fuzz::CHECKS,
                "--mode",
                "all",
                "--workers",
                "2",
                "--no-color",
            ])
            .args([
                "--max-examples",
                &env("FUZZ_EXAMPLES", fuzz::DEFAULT_EXAMPLES),
            ])
            .args(["--seed", &env("FUZZ_SEED", fuzz::DEFAULT_SEED)])
            .args(["--report", "har", "--report-har-path"])
            .arg(&har),
    )?;
    println!(
        "schemathesis: {st:?} after {}s",
        started.elapsed().as_secs()
    );
    let mut failures = Vec::new();
    if st != ExitCode::SUCCESS {
        failures.push("schemathesis reported failures".to_string());
    }
    let summary = fuzz::summarize(&har)?;
    println!("{summary}");
    std::fs::write(reports.join("summary.txt"), format!("{summary}\n"))?;
    failures.extend(summary.failures());
    let logs = state.join("logs");
    for log in fuzz::crashed_logs(&logs)? {
        failures.push(format!("a process crashed: {}", log.display()));
    }
    let table = envoy_ext::services::ServiceTable::committed()?;
    let services: Vec<&str> = table.services.iter().map(|s| s.name.as_str()).collect();
    let calls = fuzz::calls_per_instance(&logs, &services)?;
    let by: Vec<String> = calls.iter().map(|(i, n)| format!("{i}: {n}")).collect();
    println!("API calls per instance: {{{}}}", by.join(", "));
    failures.extend(fuzz::coverage_failures(&calls));
    if status(Command::new("cargo").args(["stack", "running", &profile]))? != ExitCode::SUCCESS {
        failures.push("the stack is not healthy after the fuzz run".into());
    }
    if failures.is_empty() {
        println!("fuzz: ok");
        return Ok(ExitCode::SUCCESS);
    }
    for failure in failures {
        eprintln!("FAIL: {failure}");
    }
    Ok(ExitCode::FAILURE)
}

const OPENAPI_SPEC: &str = "docs/openapi/api.swagger.yaml";

/// The spec proto/ generates: protoc-gen-openapiv2 through buf, then the
/// statuses the gateway's REST extension adds (xtask::openapi). None when
/// buf failed (it has said why).
fn generate_openapi() -> Result<Option<String>, Error> {
    let out = std::env::temp_dir().join(format!("xtask-openapi-{}", std::process::id()));
    let generated = status(
        Command::new("buf")
            .args([
                "generate",
                "proto",
                "--template",
                "docs/openapi/buf.gen.yaml",
                "--output",
            ])
            .arg(&out)
            .env("PATH", tools::path_with_tools()),
    )?;
    let spec = if generated == ExitCode::SUCCESS {
        Some(std::fs::read_to_string(out.join("api.swagger.yaml"))?)
    } else {
        None
    };
    let _ = std::fs::remove_dir_all(&out);
    let Some(spec) = spec else { return Ok(None) };
    let creates = envoy_ext::rest_extension::create_paths(api::DESCRIPTOR_SET)?;
    let spec = xtask::openapi::created_responses(&spec, &creates)?;
    let mut bodies: Vec<String> = envoy_ext::rest_extension::rest_bodies(api::DESCRIPTOR_SET)?
        .iter()
        .filter_map(|body| body.kind.strip_prefix("msg:"))
        .map(xtask::openapi::definition_name)
        .collect();
    bodies.sort();
    bodies.dedup();
    Ok(Some(xtask::openapi::closed_definitions(&spec, &bodies)?))
}

fn write_openapi() -> Result<ExitCode, Error> {
    let Some(spec) = generate_openapi()? else {
        return Ok(ExitCode::FAILURE);
    };
    std::fs::write(OPENAPI_SPEC, spec)?;
    println!("wrote {OPENAPI_SPEC}");
    Ok(ExitCode::SUCCESS)
}

fn check_openapi() -> Result<ExitCode, Error> {
    let Some(spec) = generate_openapi()? else {
        return Ok(ExitCode::FAILURE);
    };
    if std::fs::read_to_string(OPENAPI_SPEC)? == spec {
        println!("{OPENAPI_SPEC} is what proto/ generates");
        return Ok(ExitCode::SUCCESS);
    }
    // Show the difference; the comparison above decides.
    let fresh = std::env::temp_dir().join(format!("xtask-openapi-{}.yaml", std::process::id()));
    std::fs::write(&fresh, &spec)?;
    let _ = Command::new("diff")
        .arg("-u")
        .arg(OPENAPI_SPEC)
        .arg(&fresh)
        .status();
    let _ = std::fs::remove_file(&fresh);
    eprintln!("FAIL: {OPENAPI_SPEC} is stale: run 'just openapi' and commit it");
    Ok(ExitCode::FAILURE)
}
