//! `customer.v1.CustomerService` on the shared runtime: an in-memory store
//! seeded with sample customers.
//!
//! In-process use (tests, benchmarks):
//! `RunningServer::start(&SPEC, config, routes(&config))`.

mod error;
mod service;
pub mod store;

use std::sync::Arc;

use api::customer::v1::customer_service_server::CustomerServiceServer;
use service_runtime::{API_SERVICES, ServerConfig, ServiceSpec};
use tonic::service::Routes;

pub use error::CustomerError;
pub use service::CustomerApi;

/// The binary's identity for the shared runtime (flags, env prefix, port).
pub const SPEC: ServiceSpec = ServiceSpec {
    binary: "customer-service",
    about: "customer.v1.CustomerService gRPC server (in-memory)",
    env_prefix: "CUSTOMER",
    default_port: 50051,
    service_name: api::customer::v1::SERVICE_NAME,
    whole_api: API_SERVICES,
};

/// The API routes for `config`: a store seeded per `--empty` and
/// `--synthetic-records`, with the configured message size limits.
pub fn routes(config: &ServerConfig) -> Routes {
    let table = Arc::new(store::seeded(config.empty, config.synthetic_records));
    tracing::info!(records = table.len(), "customer store ready");
    let service = CustomerServiceServer::new(CustomerApi::new(table))
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(config.max_message_bytes);
    Routes::new(service_runtime::decode::DecodeErrorsAreInvalidArgument(
        service,
    ))
}
