//! Health, reflection and graceful shutdown of the real server.

use postgres_store::StoreArgs;
use service_runtime::{RunningServer, ServerConfig};
use service_testing as testing;
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

const OWN: &str = "customer.v1.CustomerService";
const OTHER: &str = "product.v1.ProductService";
const HEALTH: &str = "grpc.health.v1.Health";

async fn start_with(configure: impl FnOnce(&mut ServerConfig)) -> (RunningServer, Channel) {
    let store = customer_service::open_store(&StoreArgs::default())
        .await
        .expect("in-memory store");
    testing::start_connected(&customer_service::SPEC, configure, |config| {
        customer_service::api_routes(config, store, Default::default())
    })
    .await
    .expect("server starts")
}

async fn start(reflect_whole_api: bool) -> (RunningServer, Channel) {
    start_with(|config| config.reflect_whole_api = reflect_whole_api).await
}

#[tokio::test]
async fn health_is_serving_then_not_serving_once_shutdown_starts() {
    let (mut server, channel) = start(false).await;
    for service in ["", OWN] {
        assert_eq!(
            testing::health(channel.clone(), service)
                .await
                .expect("check"),
            ServingStatus::Serving
        );
    }
    let unknown = testing::health(channel.clone(), "nope.v1.Nope")
        .await
        .expect_err("unknown service");
    assert!(
        unknown.to_string().contains("NotFound") || unknown.to_string().contains("not found"),
        "{unknown}"
    );

    let mut overall = HealthClient::new(channel.clone())
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("watch")
        .into_inner();
    let mut own = HealthClient::new(channel)
        .watch(HealthCheckRequest {
            service: OWN.into(),
        })
        .await
        .expect("watch")
        .into_inner();
    for stream in [&mut overall, &mut own] {
        let first = stream.message().await.expect("stream").expect("status");
        assert_eq!(first.status(), ServingStatus::Serving);
    }

    server.trigger_shutdown();
    for stream in [&mut overall, &mut own] {
        let next = stream.message().await.expect("stream").expect("status");
        assert_eq!(next.status(), ServingStatus::NotServing);
    }
    drop((overall, own));
    server.shutdown().await.expect("drains and stops");
}

#[tokio::test]
async fn reflection_lists_own_service_over_v1_and_v1alpha() {
    let (server, channel) = start(false).await;
    let v1 = testing::reflection_services_v1(channel.clone())
        .await
        .expect("v1");
    assert_eq!(v1, [OWN, HEALTH, "grpc.reflection.v1.ServerReflection"]);
    let v1alpha = testing::reflection_services_v1alpha(channel)
        .await
        .expect("v1alpha");
    assert_eq!(
        v1alpha,
        [OWN, HEALTH, "grpc.reflection.v1alpha.ServerReflection"]
    );
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn reflect_whole_api_lists_both_api_services() {
    let (server, channel) = start(true).await;
    for services in [
        testing::reflection_services_v1(channel.clone())
            .await
            .expect("v1"),
        testing::reflection_services_v1alpha(channel)
            .await
            .expect("v1alpha"),
    ] {
        assert!(
            services.contains(&OWN.to_owned()) && services.contains(&OTHER.to_owned()),
            "{services:?}"
        );
    }
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn drain_is_bounded_by_the_drain_timeout() {
    let (server, channel) =
        start_with(|config| config.drain_timeout = std::time::Duration::from_millis(300)).await;
    // A Watch is an in-flight request that never ends on its own.
    let mut watch = HealthClient::new(channel)
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("watch")
        .into_inner();
    assert_eq!(
        watch
            .message()
            .await
            .expect("stream")
            .expect("status")
            .status(),
        ServingStatus::Serving
    );

    let started = std::time::Instant::now();
    server
        .shutdown()
        .await
        .expect("stops after the drain timeout");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= std::time::Duration::from_millis(300),
        "{elapsed:?}"
    );
    assert!(elapsed < std::time::Duration::from_secs(2), "{elapsed:?}");
    drop(watch);
}
