//! `customer.v1.CustomerService` on the shared runtime: customers in memory
//! or in PostgreSQL (`--database-url`), seeded with sample customers when
//! the store is empty.
//!
//! In-process use (tests, benchmarks): open a store with [`open_store`],
//! then `RunningServer::start(&SPEC, config, api_routes(&config, store, key))`.

mod service;
pub mod store;

use std::sync::Arc;

use api::customer::v1::customer_service_server::CustomerServiceServer;
use postgres_store::{OpenError, StartError, StoreArgs};
use resource_store::{Store, paging::PageTokenKey};
use service_runtime::{ServerConfig, ServiceSpec};
use tonic::{server::NamedService, service::Routes};

pub use service::CustomerApi;
pub use store::Customers;

/// The binary's identity for the shared runtime (flags, env prefix, port,
/// the service name tonic generated).
pub const SPEC: ServiceSpec = ServiceSpec {
    binary: "customer-service",
    about: "customer.v1.CustomerService gRPC server (in memory, or PostgreSQL with --database-url)",
    env_prefix: "CUSTOMER",
    default_port: 50051,
    service_name: <CustomerServiceServer<CustomerApi> as NamedService>::NAME,
    descriptor_set: api::DESCRIPTOR_SET,
    whole_api: api::SERVICES,
};

/// The store `flags` select (`--database-url`, else memory), seeded per
/// `--empty` and `--synthetic-records` if it is empty.
pub async fn open_store(flags: &StoreArgs) -> Result<Arc<dyn Store<Customers>>, OpenError> {
    let seed = flags.seed;
    postgres_store::open::<Customers>(
        &flags.database,
        Box::new(move || seed.records(store::samples, store::synthetic).collect()),
    )
    .await
}

/// The API routes over `store`, with the configured message size limits;
/// page tokens are signed with `key` (every replica needs the same).
pub fn api_routes(
    config: &ServerConfig,
    store: Arc<dyn Store<Customers>>,
    key: PageTokenKey,
) -> Routes {
    let service = CustomerServiceServer::new(CustomerApi::new(store, key))
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
