//! Logging setup and the per-request tracing layer.

use std::{
    future::Future,
    io::IsTerminal,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use tower::{Layer, Service};
use tracing::{Instrument, Subscriber, field};
use tracing_subscriber::{EnvFilter, fmt::MakeWriter, util::SubscriberInitExt};

use crate::config::LogFormat;

/// The request header whose value the request span records as `request_id`.
/// Envoy sets it on every request it forwards (generating one when the
/// client sent none) and prints it in its access log, so a gateway log line
/// and a service log line can be joined on it.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Longest `x-request-id` recorded. Envoy's are 36-character UUIDs; a direct
/// caller could send anything, and a log line is no place for kilobytes.
const MAX_REQUEST_ID_LEN: usize = 128;

/// Installs the global subscriber on stdout: compact human lines or JSON,
/// filtered by `RUST_LOG` (default `info`). Colours only when stdout is a
/// terminal: a log file or pipe gets plain text. Safe to call more than once
/// (later calls are no-ops).
pub fn init(format: LogFormat) {
    let ansi = std::io::stdout().is_terminal();
    // An error only means a subscriber is already installed (tests start many servers).
    drop(subscriber(format, ansi, std::io::stdout).try_init());
}

/// The subscriber [`init`] installs, writing to `writer`; with `ansi` false
/// no escape codes are written. Tests capture logs with it.
pub fn subscriber<W>(format: LogFormat, ansi: bool, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    match format {
        LogFormat::Human => Box::new(builder.compact().finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
    }
}

/// The request's `x-request-id`, if it is printable and of sane length.
fn request_id(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(REQUEST_ID_HEADER)?.to_str().ok()?;
    (!value.is_empty() && value.len() <= MAX_REQUEST_ID_LEN).then_some(value)
}

/// Tower layer that opens one span per request with the gRPC method, the
/// gateway's request id (`request_id`, from `x-request-id`) and, when the
/// response headers are known, the resulting gRPC status code.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcTraceLayer;

impl<S> Layer<S> for GrpcTraceLayer {
    type Service = GrpcTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcTrace { inner }
    }
}

/// Service produced by [`GrpcTraceLayer`].
#[derive(Debug, Clone)]
pub struct GrpcTrace<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqB, ResB> Service<http::Request<ReqB>> for GrpcTrace<S>
where
    S: Service<http::Request<ReqB>, Response = http::Response<ResB>>,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqB>) -> Self::Future {
        let span = tracing::info_span!(
            "grpc",
            method = %req.uri().path(),
            request_id = field::Empty,
            code = field::Empty,
        );
        if let Some(id) = request_id(req.headers()) {
            span.record("request_id", field::display(id));
        }
        let started = Instant::now();
        let future = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        Box::pin(
            async move {
                let result = future.await;
                let span = tracing::Span::current();
                let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
                match &result {
                    Ok(response) => {
                        // Errors are "trailers-only" responses: the status is in the
                        // headers. Otherwise the call succeeded (unary) or the status
                        // follows in the trailers (streams); we log it as OK then.
                        let code = response
                            .headers()
                            .get("grpc-status")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<i32>().ok())
                            .map_or(tonic::Code::Ok, tonic::Code::from_i32);
                        span.record("code", field::debug(code));
                        if code == tonic::Code::Ok {
                            tracing::info!(elapsed_ms, "finished");
                        } else {
                            tracing::warn!(elapsed_ms, "finished");
                        }
                    }
                    Err(err) => tracing::error!(elapsed_ms, error = %err, "failed"),
                }
                result
            }
            .instrument(span),
        )
    }
}
