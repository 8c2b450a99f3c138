//! `customer-service`: see `customer-service --help`.

fn main() -> std::process::ExitCode {
    service_runtime::run_main(&customer_service::SPEC, customer_service::routes)
}
