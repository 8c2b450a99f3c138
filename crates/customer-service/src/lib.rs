//! `customer.v1.CustomerService` on the shared runtime: an in-memory store
//! seeded with sample customers.
//!
//! In-process use (tests, benchmarks):
//! `RunningServer::start(&SPEC, config, routes(&config, &SeedArgs::default()))`.

mod service;
pub mod store;

use std::sync::Arc;

use api::customer::v1::customer_service_server::CustomerServiceServer;
use resource_store::SeedArgs;
use service_runtime::{ServerConfig, ServiceSpec};
use tonic::{server::NamedService, service::Routes};

pub use service::CustomerApi;

/// The binary's identity for the shared runtime (flags, env prefix, port,
/// the service name tonic generated).
pub const SPEC: ServiceSpec = ServiceSpec {
    binary: "customer-service",
    about: "customer.v1.CustomerService gRPC server (in-memory)",
    env_prefix: "CUSTOMER",
    default_port: 50051,
    service_name: <CustomerServiceServer<CustomerApi> as NamedService>::NAME,
    descriptor_set: api::DESCRIPTOR_SET,
    whole_api: api::SERVICES,
};

/// The API routes for `config`: a store seeded per `seed` (`--empty`,
/// `--synthetic-records`, this service's own flags), with the configured
/// message size limits.
pub fn routes(config: &ServerConfig, seed: &SeedArgs) -> Routes {
    let table = Arc::new(store::seeded(seed));
    tracing::info!(records = table.len(), "customer store ready");
    let service = CustomerServiceServer::new(CustomerApi::new(table))
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(config.max_message_bytes);
    Routes::new(service_runtime::decode::DecodeErrorsAreInvalidArgument(
        service,
    ))
}
