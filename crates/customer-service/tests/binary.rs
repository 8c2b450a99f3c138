//! The real `customer-service` executable: `--help`, env names, SIGTERM.

use service_runtime::testing::{self, ChildServer};
use tonic_health::pb::health_check_response::ServingStatus;

const BIN: &str = env!("CARGO_BIN_EXE_customer-service");

#[test]
fn help_documents_flags_env_names_and_defaults() {
    let out = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .expect("runs");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "CUSTOMER_HOST",
        "CUSTOMER_PORT",
        "[default: 50051]",
        "CUSTOMER_LOG_FORMAT",
        "CUSTOMER_REFLECT_WHOLE_API",
        "CUSTOMER_EMPTY",
        "CUSTOMER_SYNTHETIC_RECORDS",
        "CUSTOMER_DRAIN_TIMEOUT",
        "[default: 10s]",
        "CUSTOMER_REQUEST_TIMEOUT",
        "[default: 5s]",
        "CUSTOMER_CONCURRENCY_LIMIT",
        "[default: 1024]",
        "CUSTOMER_MAX_MESSAGE_BYTES",
        "[default: 4194304]",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}

#[test]
fn environment_configures_the_binary() {
    let out = std::process::Command::new(BIN)
        .env("CUSTOMER_DRAIN_TIMEOUT", "not a duration")
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
    let status = testing::health(channel, "customer.v1.CustomerService")
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
