//! `product.v1.ProductService` on the shared runtime: an in-memory catalogue
//! seeded with sample products.
//!
//! In-process use (tests, benchmarks):
//! `RunningServer::start(&SPEC, config, routes(&config))`.

mod error;
mod service;
pub mod store;

use std::sync::Arc;

use api::product::v1::product_service_server::ProductServiceServer;
use service_runtime::{API_SERVICES, ServerConfig, ServiceSpec};
use tonic::service::Routes;

pub use error::ProductError;
pub use service::ProductApi;

/// The binary's identity for the shared runtime (flags, env prefix, port).
pub const SPEC: ServiceSpec = ServiceSpec {
    binary: "product-service",
    about: "product.v1.ProductService gRPC server (in-memory)",
    env_prefix: "PRODUCT",
    default_port: 50052,
    service_name: api::product::v1::SERVICE_NAME,
    whole_api: API_SERVICES,
};

/// The API routes for `config`: a store seeded per `--empty` and
/// `--synthetic-records`, with the configured message size limits.
pub fn routes(config: &ServerConfig) -> Routes {
    let table = Arc::new(store::seeded(config.empty, config.synthetic_records));
    tracing::info!(records = table.len(), "product store ready");
    let service = ProductServiceServer::new(ProductApi::new(table))
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(config.max_message_bytes);
    Routes::new(service_runtime::decode::DecodeErrorsAreInvalidArgument(
        service,
    ))
}
