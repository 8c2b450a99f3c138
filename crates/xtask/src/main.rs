//! `cargo xtask <task>`: the logic behind the justfile's recipes. Each
//! recipe is a one-liner that calls a task here, so the deciding code (which
//! tool version, what a check accepts, which order) is Rust with tests.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xtask::{pins::Pins, tools};

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
    // ---- kubernetes (src/k8s) ----
    #[command(flatten)]
    K8s(xtask::k8s::Task),
}

fn main() -> ExitCode {
    match run(Cli::parse().task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

type Error = Box<dyn std::error::Error>;

fn run(task: Task) -> Result<(), Error> {
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
        Task::K8s(task) => xtask::k8s::run(task, &pins)?,
    }
    Ok(())
}
