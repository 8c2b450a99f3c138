//! `product-service`: see `product-service --help`.

fn main() -> std::process::ExitCode {
    service_runtime::run_main::<resource_store::SeedArgs>(
        &product_service::SPEC,
        product_service::routes,
    )
}
