//! `customer-service`: see `customer-service --help`.

fn main() -> std::process::ExitCode {
    service_runtime::run_main::<resource_store::SeedArgs>(
        &customer_service::SPEC,
        customer_service::routes,
    )
}
