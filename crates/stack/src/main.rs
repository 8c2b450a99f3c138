//! `cargo stack up|down|status|running|restart|run`: see docs/development.md.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{Arc, atomic::AtomicBool},
};

use clap::{Parser, Subcommand};
use stack::{Error, profile::Profiles, runner::Runner};

/// The local stack as host processes, from the profiles in crates/stack/profiles.toml.
#[derive(Debug, Parser)]
#[command(name = "stack")]
struct Cli {
    /// A profiles file instead of the committed crates/stack/profiles.toml
    #[arg(long, global = true, env = "STACK_PROFILES", value_name = "FILE")]
    profiles: Option<PathBuf>,
    /// The repository: profile paths are relative to it, state goes to <root>/.local/stack
    #[arg(long, global = true, env = "STACK_ROOT", value_name = "DIR")]
    root: Option<PathBuf>,
    /// Set a profile variable, e.g. `--set records=100` for the bench profile
    #[arg(long = "set", global = true, value_name = "NAME=VALUE")]
    sets: Vec<String>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start what is not running (and restart what was rebuilt or changed), wait until all is ready
    Up {
        #[arg(default_value = "dev")]
        profile: String,
    },
    /// Stop exactly what `up` started (no PROFILE: every profile that runs)
    Down { profile: Option<String> },
    /// Stop PROFILE and delete its state (logs, certificates, the scale profile's database)
    Reset { profile: String },
    /// What runs, per profile
    Status,
    /// Exit 0 when every process of PROFILE is alive and ready
    Running {
        #[arg(default_value = "dev")]
        profile: String,
    },
    /// Stop one process (SIGTERM, drain, exit) and start it again, e.g. `restart ha customer-service-2`
    Restart { profile: String, instance: String },
    /// Run CMD against PROFILE: started for it and stopped after, or refreshed and left running if it ran
    Run {
        /// Stop another running profile for the command, start it again after (env: any value but 0/false/no/off)
        #[arg(long, env = "STACK_STOP_OTHERS", value_parser = clap::builder::FalseyValueParser::new())]
        stop_others: bool,
        profile: String,
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
}

fn main() -> ExitCode {
    // Nothing this process inherited (a caller's lock, a pipe) may reach
    // the long-lived processes it starts.
    close_fds::set_fds_cloexec(3, &[]);
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("stack: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, Error> {
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, Arc::clone(&interrupted))
            .map_err(|err| Error::Usage(format!("cannot handle signal {signal}: {err}")))?;
    }
    let root = match cli.root {
        Some(root) => root,
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."),
    };
    let root = root.canonicalize().map_err(Error::io(&root))?;
    let profiles_file = cli.profiles.map(|f| std::path::absolute(&f).unwrap_or(f));
    let profiles = match &profiles_file {
        Some(file) => Profiles::load(file)?,
        None => Profiles::committed()?,
    };
    let mut sets = BTreeMap::new();
    for set in cli.sets {
        let (name, value) = set
            .split_once('=')
            .ok_or_else(|| Error::Usage(format!("--set {set}: want NAME=VALUE")))?;
        sets.insert(name.to_owned(), value.to_owned());
    }
    let mut runner = Runner::new(root, profiles, profiles_file, sets, interrupted);
    let ok = |yes: bool| {
        if yes {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    };
    match cli.command {
        Cmd::Up { profile } => runner.up(&profile).map(|()| ExitCode::SUCCESS),
        Cmd::Down { profile } => runner.down(profile.as_deref()).map(|()| ExitCode::SUCCESS),
        Cmd::Reset { profile } => runner.reset(&profile).map(|()| ExitCode::SUCCESS),
        Cmd::Status => runner.status().map(|()| ExitCode::SUCCESS),
        Cmd::Running { profile } => runner.running(&profile).map(ok),
        Cmd::Restart { profile, instance } => runner
            .restart(&profile, &instance)
            .map(|()| ExitCode::SUCCESS),
        Cmd::Run {
            stop_others,
            profile,
            command,
        } => runner
            .run(&profile, stop_others, &command)
            .map(|code| ExitCode::from(u8::try_from(code).unwrap_or(1))),
    }
}
