//! The shared server runtime of the service binaries: [`config`] (the fixed
//! CLI/env contract, plus the flags a service adds), [`telemetry`] (logs,
//! per-request span), [`server`] (health, reflection, layers, graceful
//! shutdown; [`server::RunningServer`] starts one in-process) and [`decode`]
//! (undecodable requests are INVALID_ARGUMENT).
//!
//! It knows nothing of the API or of resources: a service passes in its
//! name, its descriptor set and its routes ([`ServiceSpec`]).

pub mod config;
pub mod decode;
pub mod server;
pub mod telemetry;

pub use config::{LogFormat, NoFlags, ServerConfig, ServiceSpec};
pub use server::{RunningServer, ServeError, run_main, serve_with_listener};
