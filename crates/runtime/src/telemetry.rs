//! Logging setup and the per-request tracing layer.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use tower::{Layer, Service};
use tracing::{Instrument, field};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber: compact human lines or JSON, filtered by
/// `RUST_LOG` (default `info`). Safe to call more than once (later calls are no-ops).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = match format {
        LogFormat::Human => builder.compact().try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    // An error only means a subscriber is already installed (tests start many servers).
    drop(result);
}

/// Tower layer that opens one span per request with the gRPC method and,
/// when the response headers are known, the resulting gRPC status code.
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
            code = field::Empty,
        );
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
