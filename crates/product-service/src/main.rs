//! `product-service`: see `product-service --help`.

fn main() -> std::process::ExitCode {
    service_runtime::run_main::<postgres_store::StoreArgs, _, _>(
        &product_service::SPEC,
        product_service::routes,
    )
}
