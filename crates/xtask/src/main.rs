//! `cargo xtask <task>`: the logic behind the justfile's recipes. Each
//! recipe is a one-liner that calls a task here, so the deciding code (which
//! tool version, what a check accepts, which order) is Rust with tests.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "The tasks behind the justfile")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Print the tasks (the justfile is the user's entry point)
    List,
}

fn main() -> ExitCode {
    match Cli::parse().task {
        Task::List => {
            println!("see `just --list`");
            ExitCode::SUCCESS
        }
    }
}
