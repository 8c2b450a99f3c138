//! The server's request timeout and concurrency limit, on a real server with a
//! real tonic client. The API service is replaced by a stand-in that takes as
//! long as it is told to, so the limits can be hit on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use service_runtime::{RunningServer, ServerConfig, ServiceSpec};
use tonic::{Code, Status, body::Body, server::NamedService, service::Routes, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

const SLOW: &str = "test.v1.SlowService";

const SPEC: ServiceSpec = ServiceSpec {
    binary: "slow-service",
    about: "a stand-in that answers slowly",
    env_prefix: "SLOW",
    default_port: 0,
    service_name: SLOW,
    descriptor_set: &[],
    whole_api: &[SLOW],
};

/// Answers every call with NOT_FOUND after `delay`, counting how many calls
/// it is serving at once (and the most it ever served at once).
#[derive(Clone)]
struct Slow {
    delay: Duration,
    now: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl NamedService for Slow {
    const NAME: &'static str = SLOW;
}

impl tower::Service<http::Request<Body>> for Slow {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let serving = this.now.fetch_add(1, Ordering::SeqCst) + 1;
            this.peak.fetch_max(serving, Ordering::SeqCst);
            tokio::time::sleep(this.delay).await;
            this.now.fetch_sub(1, Ordering::SeqCst);
            Ok(Status::not_found("slow answer").into_http())
        })
    }
}

async fn start(config: ServerConfig, delay: Duration) -> (RunningServer, Slow) {
    let slow = Slow {
        delay,
        now: Arc::default(),
        peak: Arc::default(),
    };
    let server = RunningServer::start(&SPEC, config, Routes::new(slow.clone()))
        .await
        .expect("server starts");
    (server, slow)
}

async fn channel(server: &RunningServer) -> Channel {
    Channel::from_shared(server.endpoint())
        .expect("endpoint")
        .connect()
        .await
        .expect("connects")
}

/// A unary call to the stand-in with an empty message, through tonic's
/// generic client (the stand-in has no generated one).
async fn call(server: &RunningServer) -> Status {
    let mut grpc = tonic::client::Grpc::new(channel(server).await);
    grpc.ready().await.expect("ready");
    let path = http::uri::PathAndQuery::from_static("/test.v1.SlowService/Call");
    grpc.unary(
        tonic::Request::new(()),
        path,
        tonic_prost::ProstCodec::<(), ()>::default(),
    )
    .await
    .expect_err("the stand-in never succeeds")
}

#[tokio::test]
async fn a_call_over_the_request_timeout_gets_deadline_exceeded() {
    let mut config = ServerConfig::for_tests(&SPEC);
    config.request_timeout = Duration::from_millis(200);
    let (server, _) = start(config, Duration::from_secs(30)).await;

    let started = Instant::now();
    let status = call(&server).await;
    let elapsed = started.elapsed();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        status.message().contains("200ms"),
        "the message names the timeout: {status:?}"
    );
    assert!(
        (Duration::from_millis(200)..Duration::from_secs(2)).contains(&elapsed),
        "answered after {elapsed:?}"
    );
    server.shutdown().await.expect("stops");
}

#[tokio::test]
async fn calls_within_the_timeout_are_untouched() {
    let (server, _) = start(ServerConfig::for_tests(&SPEC), Duration::from_millis(10)).await;
    assert_eq!(call(&server).await.code(), Code::NotFound);
    server.shutdown().await.expect("stops");
}

#[tokio::test]
async fn the_concurrency_limit_queues_calls_beyond_it() {
    let mut config = ServerConfig::for_tests(&SPEC);
    config.concurrency_limit = 2;
    let delay = Duration::from_millis(150);
    let (server, slow) = start(config, delay).await;
    let server = Arc::new(server);

    let started = Instant::now();
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let server = Arc::clone(&server);
            tokio::spawn(async move { call(&server).await.code() })
        })
        .collect();
    for handle in calls {
        assert_eq!(
            handle.await.expect("task"),
            Code::NotFound,
            "served, not shed"
        );
    }
    let elapsed = started.elapsed();
    assert_eq!(
        slow.peak.load(Ordering::SeqCst),
        2,
        "never more than the limit at once"
    );
    // Six calls, two at a time: at least three rounds of `delay`.
    assert!(elapsed >= delay * 3, "took {elapsed:?}");
    Arc::into_inner(server)
        .expect("last reference")
        .shutdown()
        .await
        .expect("stops");
}

#[tokio::test]
async fn shutdown_delay_keeps_serving_while_not_serving() {
    let mut config = ServerConfig::for_tests(&SPEC);
    config.shutdown_delay = Duration::from_millis(400);
    let (mut server, _) = start(config, Duration::from_millis(1)).await;
    let mut watch = HealthClient::new(channel(&server).await)
        .watch(HealthCheckRequest {
            service: SLOW.into(),
        })
        .await
        .expect("watch")
        .into_inner();
    let first = watch.message().await.expect("stream").expect("status");
    assert_eq!(first.status(), ServingStatus::Serving);

    let started = Instant::now();
    server.trigger_shutdown();
    let next = watch.message().await.expect("stream").expect("status");
    assert_eq!(next.status(), ServingStatus::NotServing);
    drop(watch);
    // A new connection and call during the delay are still served.
    assert_eq!(call(&server).await.code(), Code::NotFound);
    assert!(started.elapsed() < Duration::from_millis(400));
    server.shutdown().await.expect("stops");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "closed before the delay"
    );
}
