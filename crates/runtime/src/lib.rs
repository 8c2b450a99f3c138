//! The shared server runtime of the service binaries, and the resource
//! helpers both services use.
//!
//! Server side: [`config`] (the fixed CLI/env contract), [`telemetry`]
//! (logs, per-request span), [`server`] (health, reflection, layers, graceful
//! shutdown; [`server::RunningServer`] starts one in-process).
//!
//! Resource side: [`store`] (ordered in-memory table with unique and group
//! indexes), [`paging`] (page sizes, page tokens), [`mask`] (update masks),
//! [`validate`] (field checks) and [`status`] (error details).

pub mod config;
pub mod crud;
pub mod decode;
pub mod mask;
pub mod paging;
pub mod server;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod testing;
pub mod validate;

pub use config::{LogFormat, ServerConfig, ServiceSpec};
pub use server::{RunningServer, ServeError, run_main, serve_with_listener};

/// Every API service in [`api::DESCRIPTOR_SET`].
pub const API_SERVICES: &[&str] = &[
    api::customer::v1::SERVICE_NAME,
    api::product::v1::SERVICE_NAME,
];
