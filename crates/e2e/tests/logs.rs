//! Logs through the real gateway: Envoy's access log line and the service's
//! request log line for one request share the id Envoy gives it
//! (`x-request-id`), so one can be found from the other. Reads the log
//! files of the local stack (`just up`; `STATE_DIR` moves them).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{
    path::Path,
    time::{Duration, Instant},
};

use e2e::{call, fresh_client_ip, rest_client, stack, unique_suffix, url};
use reqwest::StatusCode;

/// The first line of `file` that `matches`, waiting for it to appear: Envoy
/// flushes its access log about once a second.
async fn wait_for_line(file: &Path, matches: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        // Lossy: a log may hold anything a client sent.
        let text = std::fs::read(file)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_else(|err| panic!("{}: {err} (is the stack up? `just up`)", file.display()));
        if let Some(line) = text.lines().find(|line| matches(line)) {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no matching line in {} after 15 s",
            file.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_access_log_line_joins_the_service_log_line_by_request_id() {
    // A path no other request uses finds this request's access log line.
    let marker = format!("log-join-{}", unique_suffix());
    let (status, body) =
        call(rest_client(fresh_client_ip()).get(url(&format!("/customers/{marker}")))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Envoy Gateway's default access log: one JSON object per line, the
    // request id under "x-request-id".
    let access = wait_for_line(&stack::log_file("envoy-gateway"), |line| {
        line.starts_with('{') && line.contains(&marker)
    })
    .await;
    let access: serde_json::Value = serde_json::from_str(&access).expect("a JSON access log line");
    let id = access["x-request-id"]
        .as_str()
        .filter(|id| !id.is_empty() && *id != "-")
        .unwrap_or_else(|| panic!("no request id in the access log line {access}"))
        .to_owned();
    assert_eq!(access["response_code"], 404, "{access}");

    // The service's request span records the same id.
    let service = wait_for_line(&stack::log_file("customer-service"), |line| {
        line.contains(&id)
    })
    .await;
    assert!(
        service.contains("/customer.v1.CustomerService/GetCustomer")
            && service.contains("NotFound"),
        "the line with {id} is not this request's: {service}"
    );
    assert!(
        !service.contains('\u{1b}'),
        "colour codes in the log file: {service:?}"
    );
}
