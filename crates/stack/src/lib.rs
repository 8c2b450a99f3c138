//! The local stack's process runner: profiles (crates/stack/profiles.toml)
//! say which processes run, how each starts and when it is ready; the
//! runner starts them in dependency order, records what it started under
//! .local/stack/<profile>/, and stops exactly that.

mod error;
pub mod expand;
pub mod graph;
pub mod pidfile;
pub mod procs;
pub mod profile;
pub mod ready;
pub mod runner;
pub mod steps;

pub use error::Error;
