//! Logs through the real gateway: Envoy's access log line and the service's
//! request log line for one request share the id Envoy gives it
//! (`x-request-id`), so one can be found from the other. Reads the log
//! files of the local stack (`just up`; `STACK_STATE_DIR` moves them), or, with
//! `E2E_KUBE_CONTEXT` set, the pods' logs on that cluster (`just test-cluster`).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use e2e::{call, fresh_client_ip, rest_client, stack, unique_suffix, url};
use reqwest::StatusCode;

/// Where a component's log is read from.
enum Log {
    /// Envoy's access log (inside Envoy Gateway's log on the local stack).
    Gateway,
    CustomerService,
}

impl Log {
    /// The whole log so far. Lossy: a log may hold anything a client sent.
    fn read(&self) -> String {
        match std::env::var_os("E2E_KUBE_CONTEXT") {
            Some(_) => self.read_from_cluster(),
            None => {
                let file = stack::log_file(match self {
                    Log::Gateway => "envoy-gateway",
                    Log::CustomerService => "customer-service",
                });
                let bytes = std::fs::read(&file).unwrap_or_else(|err| {
                    panic!("{}: {err} (is the stack up? `just up`)", file.display())
                });
                String::from_utf8_lossy(&bytes).into_owned()
            }
        }
    }

    fn read_from_cluster(&self) -> String {
        let (namespace, selector, container) = match self {
            Log::Gateway => (
                "envoy-gateway-system",
                e2e::service_table().envoy_selector(),
                "envoy",
            ),
            Log::CustomerService => (
                "envoy-poc",
                "app.kubernetes.io/name=customer-service".to_owned(),
                "customer-service",
            ),
        };
        e2e::kubectl(&[
            "-n",
            namespace,
            "logs",
            "-l",
            &selector,
            "-c",
            container,
            "--tail=-1",
            "--max-log-requests=10",
        ])
    }
}

async fn wait_for_line(log: Log, matches: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(line) = log.read().lines().find(|line| matches(line)) {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no matching line in the log after 15 s"
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
    let access = wait_for_line(Log::Gateway, |line| {
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
    let service = wait_for_line(Log::CustomerService, |line| line.contains(&id)).await;
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

/// The `x-request-id` a caller gets back, REST or gRPC, is the id the
/// service logged the call under.
#[tokio::test]
async fn the_request_id_returned_is_the_one_the_service_logs() {
    use api::customer::v1::{GetCustomerRequest, customer_service_client::CustomerServiceClient};

    let marker = format!("rid-rest-{}", unique_suffix());
    let response = rest_client(fresh_client_ip())
        .get(url(&format!("/customers/{marker}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let id = e2e::header_values(&response, "x-request-id");
    assert!(!id.is_empty(), "no x-request-id: {:?}", response.headers());
    let line = wait_for_line(Log::CustomerService, |line| line.contains(&id)).await;
    assert!(line.contains("GetCustomer"), "{id}: {line}");

    let mut grpc = CustomerServiceClient::new(e2e::grpc_channel(fresh_client_ip()).await.unwrap());
    let status = grpc
        .get_customer(GetCustomerRequest {
            id: format!("rid-grpc-{}", unique_suffix()),
        })
        .await
        .unwrap_err();
    let id = status
        .metadata()
        .get("x-request-id")
        .and_then(|id| id.to_str().ok())
        .unwrap_or_else(|| panic!("no x-request-id: {:?}", status.metadata()))
        .to_owned();
    let line = wait_for_line(Log::CustomerService, |line| line.contains(&id)).await;
    assert!(line.contains("GetCustomer"), "{id}: {line}");
}
