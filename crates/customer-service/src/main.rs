//! `customer-service`: see `customer-service --help`.

fn main() -> std::process::ExitCode {
    service_runtime::run_main::<postgres_store::StoreArgs, _, _>(
        &customer_service::SPEC,
        customer_service::routes,
    )
}
