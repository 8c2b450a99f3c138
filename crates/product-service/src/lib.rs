//! `product.v1.ProductService` on the shared runtime: an in-memory catalogue
//! seeded with sample products.
//!
//! In-process use (tests, benchmarks):
//! `RunningServer::start(&SPEC, config, routes(&config, &SeedArgs::default()))`.

mod service;
pub mod store;

use std::sync::Arc;

use api::product::v1::product_service_server::ProductServiceServer;
use resource_store::SeedArgs;
use service_runtime::{ServerConfig, ServiceSpec};
use tonic::{server::NamedService, service::Routes};

pub use service::ProductApi;

/// The binary's identity for the shared runtime (flags, env prefix, port,
/// the service name tonic generated).
pub const SPEC: ServiceSpec = ServiceSpec {
    binary: "product-service",
    about: "product.v1.ProductService gRPC server (in-memory)",
    env_prefix: "PRODUCT",
    default_port: 50052,
    service_name: <ProductServiceServer<ProductApi> as NamedService>::NAME,
    descriptor_set: api::DESCRIPTOR_SET,
    whole_api: api::SERVICES,
};

/// The API routes for `config`: a store seeded per `seed` (`--empty`,
/// `--synthetic-records`, this service's own flags), with the configured
/// message size limits.
pub fn routes(config: &ServerConfig, seed: &SeedArgs) -> Routes {
    let table = Arc::new(store::seeded(seed));
    tracing::info!(records = table.len(), "product store ready");
    let service = ProductServiceServer::new(ProductApi::new(table))
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(config.max_message_bytes);
    Routes::new(service_runtime::decode::DecodeErrorsAreInvalidArgument(
        service,
    ))
}
