//! Server lifecycle: health, reflection, tower layers, graceful shutdown.

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    process::ExitCode,
    task::{Context, Poll},
    time::Duration,
};

use clap::{Args, FromArgMatches};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{Status, service::Routes, transport::server::TcpIncoming};
use tonic_health::{ServingStatus, server::HealthReporter};
use tonic_reflection::server::Builder as ReflectionBuilder;
use tower::{Layer, Service, limit::GlobalConcurrencyLimitLayer};

use crate::{
    config::{ServerConfig, ServiceSpec},
    telemetry::{self, GrpcTraceLayer},
};

const HEALTH_SERVICE: &str = "grpc.health.v1.Health";
const REFLECTION_V1: &str = "grpc.reflection.v1.ServerReflection";
const REFLECTION_V1ALPHA: &str = "grpc.reflection.v1alpha.ServerReflection";

/// Why a server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("reflection descriptors: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The service could not build its routes (e.g. its database is unreachable).
    #[error("cannot start the service: {0}")]
    Startup(String),
}

/// The services this binary reflects: its own API service (or the whole API
/// with `--reflect-whole-api`), health, and the reflection service itself.
/// Every symbol in the spec's descriptor set resolves either way.
fn reflection(
    spec: &ServiceSpec,
    whole_api: bool,
    reflection_name: &str,
) -> ReflectionBuilder<'static> {
    let mut builder = ReflectionBuilder::configure()
        .register_encoded_file_descriptor_set(spec.descriptor_set)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        // google.rpc error details, so grpcurl can print BadRequest & co.
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET);
    let own = [spec.service_name];
    let advertised: &[&str] = if whole_api { spec.whole_api } else { &own };
    for name in advertised.iter().chain([&HEALTH_SERVICE, &reflection_name]) {
        builder = builder.with_service_name(*name);
    }
    builder
}

/// Serves `routes` (the API service, already wrapped with its message size
/// limits) plus health and reflection on `listener` until `shutdown`
/// completes, then drains in-flight requests for at most
/// `config.drain_timeout`.
///
/// Health is SERVING for `""` and `spec.service_name` while listening and
/// NOT_SERVING for both as soon as `shutdown` completes. With a
/// `config.shutdown_delay` the server keeps accepting and serving for that
/// long before it closes the listener and drains.
pub async fn serve_with_listener(
    spec: &ServiceSpec,
    config: &ServerConfig,
    routes: Routes,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let (reporter, health_service) = tonic_health::server::health_reporter();
    set_health(&reporter, spec, ServingStatus::Serving).await;
    let reflection_v1 = reflection(spec, config.reflect_whole_api, REFLECTION_V1).build_v1()?;
    let reflection_v1alpha =
        reflection(spec, config.reflect_whole_api, REFLECTION_V1ALPHA).build_v1alpha()?;

    let routes = routes
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);

    let addr = listener.local_addr()?;
    let (draining_tx, draining_rx) = oneshot::channel::<()>();
    let signal = {
        let spec = *spec;
        let delay = config.shutdown_delay;
        async move {
            shutdown.await;
            set_health(&reporter, &spec, ServingStatus::NotServing).await;
            if !delay.is_zero() {
                // Still serving: the load balancer's next health check sees
                // NOT_SERVING and stops sending before the listener closes.
                tracing::info!(?delay, "shutdown requested: health NOT_SERVING, serving on");
                tokio::time::sleep(delay).await;
            }
            tracing::info!("shutdown requested: health NOT_SERVING, draining");
            // The receiver only goes away when serving already ended.
            let _ = draining_tx.send(());
        }
    };

    // Small unary responses must not wait for Nagle + delayed ACK (~40 ms).
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let concurrency = usize::try_from(config.concurrency_limit).unwrap_or(usize::MAX);
    // The deadline sits inside the trace span (which then logs
    // DEADLINE_EXCEEDED). As with tonic's own `Server::timeout`, the clock
    // starts once the concurrency limit grants a slot (readiness), so it bounds
    // the handler, not the queueing.
    let server = tonic::transport::Server::builder()
        .layer(GrpcTraceLayer)
        .layer(DeadlineLayer::new(config.request_timeout))
        .layer(GlobalConcurrencyLimitLayer::new(concurrency))
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, signal);
    tokio::pin!(server);

    tracing::info!(%addr, service = spec.service_name, "listening");
    tokio::select! {
        result = &mut server => result?,
        _ = draining_rx => {
            match tokio::time::timeout(config.drain_timeout, &mut server).await {
                Ok(result) => result?,
                Err(_) => tracing::warn!(
                    timeout = ?config.drain_timeout,
                    "drain timeout elapsed; dropping remaining connections"
                ),
            }
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// Ends a call that is not answered within the request timeout (or the
/// caller's shorter `grpc-timeout`) with DEADLINE_EXCEEDED.
///
/// tonic's `Server::timeout` does the same timing but answers CANCELLED
/// ("Timeout expired"), which tells a caller that somebody gave up on purpose;
/// its error is converted inside tonic, out of reach of any layer, hence this
/// replacement. Like tonic's, it bounds the time to the response headers, not
/// a stream's body.
#[derive(Debug, Clone, Copy)]
pub struct DeadlineLayer {
    timeout: Duration,
}

impl DeadlineLayer {
    pub fn new(timeout: Duration) -> Self {
        Self { timeout }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Deadline {
            inner,
            timeout: self.timeout,
        }
    }
}

/// Service produced by [`DeadlineLayer`].
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    timeout: Duration,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqB, ResB> Service<http::Request<ReqB>> for Deadline<S>
where
    S: Service<http::Request<ReqB>, Response = http::Response<ResB>>,
    S::Future: Send + 'static,
    ResB: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqB>) -> Self::Future {
        let timeout = req
            .headers()
            .get("grpc-timeout")
            .and_then(parse_grpc_timeout)
            .map_or(self.timeout, |caller| caller.min(self.timeout));
        let future = self.inner.call(req);
        Box::pin(async move {
            match tokio::time::timeout(timeout, future).await {
                Ok(result) => result,
                Err(_) => Ok(Status::deadline_exceeded(format!(
                    "not answered within {}",
                    humantime::format_duration(timeout)
                ))
                .into_http()),
            }
        })
    }
}

/// The `grpc-timeout` header: 1 to 8 digits and a unit (H, M, S, m, u, n).
fn parse_grpc_timeout(value: &http::HeaderValue) -> Option<Duration> {
    let value = value.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

async fn set_health(reporter: &HealthReporter, spec: &ServiceSpec, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    reporter.set_service_status(spec.service_name, status).await;
}

/// Binds `config.host:config.port` (port 0 picks a free port).
pub async fn bind(config: &ServerConfig) -> Result<TcpListener, ServeError> {
    let addr = SocketAddr::new(config.host, config.port);
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// A server running on a background task, e.g. in tests.
#[derive(Debug)]
pub struct RunningServer {
    /// The bound address (the real port when started on port 0).
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServeError>>,
}

impl RunningServer {
    /// Binds per `config` and serves on a spawned task. The server is listening
    /// when this returns.
    pub async fn start(
        spec: &ServiceSpec,
        config: ServerConfig,
        routes: Routes,
    ) -> Result<Self, ServeError> {
        let listener = bind(&config).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let spec = *spec;
        let task = tokio::spawn(async move {
            let shutdown = async {
                // A dropped sender also means "shut down".
                drop(rx.await);
            };
            serve_with_listener(&spec, &config, routes, listener, shutdown).await
        });
        Ok(Self {
            addr,
            shutdown: Some(tx),
            task,
        })
    }

    /// `http://addr`, for tonic clients.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Starts the graceful shutdown without waiting for it.
    pub fn trigger_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Triggers shutdown and waits until the server has drained and stopped.
    pub async fn shutdown(mut self) -> Result<(), ServeError> {
        self.trigger_shutdown();
        match self.task.await {
            Ok(result) => result,
            Err(join) => Err(ServeError::Io(std::io::Error::other(join))),
        }
    }
}

/// Completes on SIGTERM or SIGINT (Ctrl-C). The handlers are installed when
/// this is called, not when the future is first polled: call it before
/// binding, so a SIGTERM that arrives while the server starts (a pod deleted
/// at once) is a graceful stop, not the default action's non-zero exit.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        )
    };
    async move {
        #[cfg(unix)]
        {
            async fn received(
                signal: std::io::Result<tokio::signal::unix::Signal>,
                name: &'static str,
            ) -> &'static str {
                match signal {
                    Ok(mut signal) => {
                        signal.recv().await;
                    }
                    Err(err) => {
                        tracing::error!(%err, "cannot listen for {name}");
                        std::future::pending::<()>().await;
                    }
                }
                name
            }
            let (terminate, interrupt) = signals;
            let name = tokio::select! {
                name = received(terminate, "SIGTERM") => name,
                name = received(interrupt, "SIGINT") => name,
            };
            tracing::info!("received {name}");
        }
        #[cfg(not(unix))]
        {
            if let Err(err) = tokio::signal::ctrl_c().await {
                tracing::error!(%err, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
            tracing::info!("received Ctrl-C");
        }
    }
}

/// The whole `main` of a service binary: parse the server's flags and the
/// service's own (`F`), set up logging, build the API routes with `build`
/// (async, so a service can connect to its database first; an error ends
/// the process non-zero), serve until SIGTERM/SIGINT, drain, exit.
pub fn run_main<F, Fut, E>(
    spec: &ServiceSpec,
    build: impl FnOnce(ServerConfig, F) -> Fut,
) -> ExitCode
where
    F: Args + FromArgMatches,
    Fut: Future<Output = Result<Routes, E>>,
    E: std::fmt::Display,
{
    let (config, flags) = ServerConfig::parse::<F>(spec);
    telemetry::init(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(%err, "cannot start the tokio runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = shutdown_signal();
        let routes = build(config.clone(), flags)
            .await
            .map_err(|err| ServeError::Startup(err.to_string()))?;
        let listener = bind(&config).await?;
        serve_with_listener(spec, &config, routes, listener, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(%err, "server failed");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_header_parses_per_the_spec() {
        let parse = |s: &str| parse_grpc_timeout(&http::HeaderValue::from_str(s).expect("header"));
        assert_eq!(parse("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse("99999999u"), Some(Duration::from_micros(99_999_999)));
        assert_eq!(parse("1n"), Some(Duration::from_nanos(1)));
        for bad in ["", "S", "123456789S", "5s", "5", "-5S", "5 S"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
