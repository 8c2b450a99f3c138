//! The real `product-service` executable: `--help`, env names, plain logs, SIGTERM.

use api::product::v1::{ListProductsRequest, product_service_client::ProductServiceClient};
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

#[tokio::test]
async fn two_processes_on_one_database_share_records_and_seed_once() {
    let url = tokio::task::spawn_blocking(|| {
        testing::postgres::shared()
            .expect("PostgreSQL starts")
            .create_database()
            .expect("database")
    })
    .await
    .expect("task");
    let first = testing::ChildServer::start(BIN, &["--database-url", &url]).expect("first starts");
    let second =
        testing::ChildServer::start(BIN, &["--database-url", &url]).expect("second starts");
    for server in [&first, &second] {
        let channel = testing::channel(&server.endpoint())
            .await
            .expect("connects");
        let listed = ProductServiceClient::new(channel)
            .list_products(ListProductsRequest::default())
            .await
            .expect("list")
            .into_inner();
        assert_eq!(listed.products.len(), 8, "the samples, seeded once");
    }
    assert!(first.terminate().expect("exits").success());
    assert!(second.terminate().expect("exits").success());
}

#[test]
fn an_unreachable_database_fails_the_start_fast() {
    let started = std::time::Instant::now();
    let out = std::process::Command::new(BIN)
        .args(["--port", "0", "--database-url"])
        .arg("host=/nonexistent-socket-dir user=postgres dbname=x")
        .output()
        .expect("runs");
    assert!(!out.status.success(), "must not serve without its database");
    let logs = String::from_utf8_lossy(&out.stdout);
    assert!(logs.contains("cannot start the service"), "{logs}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
