//! `product.v1.ProductService` on the shared runtime: a catalogue in memory
//! or in PostgreSQL (`--database-url`), seeded with sample products when
//! the store is empty.
//!
//! In-process use (tests, benchmarks): open a store with [`open_store`],
//! then `RunningServer::start(&SPEC, config, api_routes(&config, store, key))`.

mod service;
pub mod store;

use std::sync::Arc;

use api::product::v1::product_service_server::ProductServiceServer;
use postgres_store::{OpenError, StartError, StoreArgs};
use resource_store::{Store, paging::PageTokenKey};
use service_runtime::{ServerConfig, ServiceSpec};
use tonic::{server::NamedService, service::Routes};

pub use service::ProductApi;
pub use store::Products;

/// The binary's identity for the shared runtime (flags, env prefix, port,
/// the service name tonic generated).
pub const SPEC: ServiceSpec = ServiceSpec {
    binary: "product-service",
    about: "product.v1.ProductService gRPC server (in memory, or PostgreSQL with --database-url)",
    env_prefix: "PRODUCT",
    default_port: 50052,
    service_name: <ProductServiceServer<ProductApi> as NamedService>::NAME,
    descriptor_set: api::DESCRIPTOR_SET,
    whole_api: api::SERVICES,
};

/// The store `flags` select (`--database-url`, else memory), seeded per
/// `--empty` and `--synthetic-records` if it is empty.
pub async fn open_store(flags: &StoreArgs) -> Result<Arc<dyn Store<Products>>, OpenError> {
    let seed = flags.seed;
    postgres_store::open::<Products>(
        &flags.database,
        Box::new(move || seed.records(store::samples, store::synthetic).collect()),
    )
    .await
}

/// The API routes over `store`, with the configured message size limits;
/// page tokens are signed with `key` (every replica needs the same).
pub fn api_routes(
    config: &ServerConfig,
    store: Arc<dyn Store<Products>>,
    key: PageTokenKey,
) -> Routes {
    let service = ProductServiceServer::new(ProductApi::new(store, key))
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(config.max_message_bytes);
    Routes::new(service_runtime::decode::DecodeErrorsAreInvalidArgument(
        service,
    ))
}

/// The binary's routes: the page-token key (first: a bad key file fails
/// before any database work), [`open_store`], then [`api_routes`].
pub async fn routes(config: ServerConfig, flags: StoreArgs) -> Result<Routes, StartError> {
    let key = flags.page_token_key()?;
    let store = open_store(&flags).await?;
    Ok(api_routes(&config, store, key))
}
