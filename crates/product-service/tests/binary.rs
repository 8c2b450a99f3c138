//! The real `product-service` executable: `--help`, env names, SIGTERM.

use service_runtime::testing::{self, ChildServer};
use tonic_health::pb::health_check_response::ServingStatus;

const BIN: &str = env!("CARGO_BIN_EXE_product-service");

#[test]
fn help_documents_flags_env_names_and_defaults() {
    let out = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .expect("runs");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "PRODUCT_HOST",
        "PRODUCT_PORT",
        "[default: 50052]",
        "PRODUCT_LOG_FORMAT",
        "PRODUCT_REFLECT_WHOLE_API",
        "PRODUCT_EMPTY",
        "PRODUCT_SYNTHETIC_RECORDS",
        "PRODUCT_DRAIN_TIMEOUT",
        "[default: 10s]",
        "PRODUCT_REQUEST_TIMEOUT",
        "[default: 5s]",
        "PRODUCT_CONCURRENCY_LIMIT",
        "[default: 1024]",
        "PRODUCT_MAX_MESSAGE_BYTES",
        "[default: 4194304]",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}

#[test]
fn environment_configures_the_binary() {
    let out = std::process::Command::new(BIN)
        .env("PRODUCT_DRAIN_TIMEOUT", "not a duration")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("drain-timeout"));
}

#[tokio::test]
async fn serves_then_exits_zero_on_sigterm() {
    let server = ChildServer::start(BIN, &["--empty", "--drain-timeout", "30s"]).expect("starts");
    let channel = testing::channel(&server.endpoint())
        .await
        .expect("connects");
    let status = testing::health(channel, "product.v1.ProductService")
        .await
        .expect("health");
    assert_eq!(status, ServingStatus::Serving);
    // Keep the runtime (and so the client's connection) running while the
    // server drains: it closes the idle connection after GOAWAY, so the drain
    // ends long before the 30 s timeout.
    let started = std::time::Instant::now();
    let exit = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .expect("joins")
        .expect("terminates");
    assert!(exit.success(), "{exit:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}
