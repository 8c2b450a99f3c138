//! The real `product-service` executable: `--help`, env names, plain logs, SIGTERM.

use postgres_store::StoreArgs;
use service_testing as testing;

const BIN: &str = env!("CARGO_BIN_EXE_product-service");

#[test]
fn help_documents_flags_env_names_and_defaults() {
    testing::check_help::<StoreArgs>(BIN, &product_service::SPEC).expect("help");
    // The service's own flags keep their environment names.
    let help = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .expect("runs")
        .stdout;
    let help = String::from_utf8_lossy(&help);
    for env in [
        "PRODUCT_EMPTY",
        "PRODUCT_SYNTHETIC_RECORDS",
        "PRODUCT_DATABASE_URL",
        "PRODUCT_DATABASE_POOL_SIZE",
        "PRODUCT_DATABASE_CONNECT_TIMEOUT",
        "PRODUCT_DATABASE_OPERATION_TIMEOUT",
    ] {
        assert!(help.contains(env), "{env} missing from --help");
    }
}

#[test]
fn environment_configures_the_binary() {
    testing::check_env_is_read(BIN, &product_service::SPEC).expect("env");
}

#[test]
fn piped_logs_have_no_colour_codes() {
    testing::check_plain_logs_when_piped(BIN).expect("plain logs");
}

#[tokio::test]
async fn serves_then_exits_zero_on_sigterm() {
    testing::check_serves_then_exits_zero_on_sigterm(BIN, &product_service::SPEC)
        .await
        .expect("sigterm");
}
