//! The per-request log line: a real server on 127.0.0.1:0, a real tonic
//! client that sends `x-request-id` as Envoy does, and the log output
//! captured, in both formats.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{
    convert::Infallible,
    future::Future,
    io::Write,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use service_runtime::{LogFormat, RunningServer, ServerConfig, ServiceSpec, telemetry};
use tonic::{Status, body::Body, metadata::MetadataValue, server::NamedService, service::Routes};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

const SPEC: ServiceSpec = ServiceSpec {
    binary: "test-service",
    about: "a stand-in API service",
    env_prefix: "REQUEST_LOG_TEST",
    default_port: 0,
    service_name: "test.v1.TestService",
    descriptor_set: &[],
    whole_api: &[],
};

/// The API route the server needs; the test calls health, which passes
/// through the same layers.
#[derive(Clone)]
struct StandIn;

impl NamedService for StandIn {
    const NAME: &'static str = "test.v1.TestService";
}

impl tower::Service<http::Request<Body>> for StandIn {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Request<Body>) -> Self::Future {
        Box::pin(async { Ok(Status::unimplemented("stand-in").into_http()) })
    }
}

/// Log output collected in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).expect("utf-8 logs")
    }

    /// Waits (briefly) for the line with `needle`: the `finished` event is
    /// written as the response leaves the handler.
    async fn line_with(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(line) = self.text().lines().find(|l| l.contains(needle)) {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no line with {needle:?} in:\n{}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Serves with logs captured in `format` (no colours: as in a log file),
/// checks health with `x-request-id: id`, returns the captured output.
async fn request_log(format: LogFormat, id: Option<&str>) -> (Captured, String) {
    let captured = Captured::default();
    let writer = captured.clone();
    // The default (current-thread) test runtime runs the server's tasks on
    // this thread, so a thread-local subscriber sees all of them.
    let _logs = tracing::subscriber::set_default(telemetry::subscriber(format, false, move || {
        writer.clone()
    }));
    let server = RunningServer::start(&SPEC, ServerConfig::for_tests(&SPEC), Routes::new(StandIn))
        .await
        .expect("server starts");
    let channel = tonic::transport::Channel::from_shared(server.endpoint())
        .expect("endpoint")
        .connect()
        .await
        .expect("connects");
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    if let Some(id) = id {
        request
            .metadata_mut()
            .insert("x-request-id", MetadataValue::try_from(id).expect("ascii"));
    }
    HealthClient::new(channel)
        .check(request)
        .await
        .expect("health answers");
    let line = captured.line_with("finished").await;
    server.shutdown().await.expect("stops");
    (captured, line)
}

const ID: &str = "8f2c1a9e-3b7d-4c55-9e61-0d4b2f7a1c33";

#[tokio::test]
async fn human_log_line_carries_the_request_id() {
    let (_, line) = request_log(LogFormat::Human, Some(ID)).await;
    assert!(line.contains(&format!("request_id={ID}")), "{line}");
    assert!(
        line.contains("method=/grpc.health.v1.Health/Check"),
        "{line}"
    );
    assert!(line.contains("code=Ok"), "{line}");
}

#[tokio::test]
async fn json_log_line_carries_the_request_id_in_the_span() {
    let (_, line) = request_log(LogFormat::Json, Some(ID)).await;
    let json: serde_json::Value = serde_json::from_str(&line).expect("one JSON object per line");
    assert_eq!(json["message"], "finished", "{line}");
    assert_eq!(json["span"]["request_id"], ID, "{line}");
    assert_eq!(
        json["span"]["method"], "/grpc.health.v1.Health/Check",
        "{line}"
    );
}

#[tokio::test]
async fn without_a_request_id_the_field_is_left_out() {
    let (_, line) = request_log(LogFormat::Human, None).await;
    assert!(!line.contains("request_id"), "{line}");
}

#[tokio::test]
async fn an_oversized_request_id_is_not_logged() {
    let huge = "x".repeat(4096);
    let (_, line) = request_log(LogFormat::Human, Some(&huge)).await;
    assert!(!line.contains("request_id"), "{line}");
}

#[tokio::test]
async fn plain_output_has_no_escape_codes() {
    let (captured, _) = request_log(LogFormat::Human, Some(ID)).await;
    let text = captured.text();
    assert!(text.contains("listening"), "{text}");
    assert!(!text.contains('\u{1b}'), "ANSI escape in {text:?}");
}
