//! Rate limits at the gateway: per service, per client IP, shared by REST and
//! gRPC, answered with 429 + JSON on REST and RESOURCE_EXHAUSTED on gRPC.
//!
//! Each test starts from its own client address, so its buckets are full.
//! Envoy refills a bucket continuously, so a burst that takes a while earns
//! a token or two: the bounds allow for exactly the refill that the elapsed
//! time explains (`max_admitted`), nothing more. Where the global tier runs
//! (the cluster) the per-service limits are its fixed windows instead, and
//! the bounds are exact unless a burst crosses a minute (`Burst::admits`).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Instant;

use api::{
    customer::v1::{ListCustomersRequest, customer_service_client::CustomerServiceClient},
    product::v1::{ListProductsRequest, product_service_client::ProductServiceClient},
};
use e2e::{
    Burst, Tier, fresh_client_ip, grpc_channel, limits, max_admitted, rest_client, tier, url,
};
use reqwest::StatusCode;
use serde_json::Value;
use service_testing::reflection_services_v1;
use tonic::Code;

#[tokio::test]
async fn rest_over_the_limit_gets_429_with_headers_and_json() {
    let http = rest_client(fresh_client_ip());
    let burst = Burst::start();
    let mut admitted = 0;
    let limited = loop {
        let response = http
            .get(url("/customers?page_size=1"))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            break response;
        }
        assert_eq!(response.status(), StatusCode::OK);
        admitted += 1;
        assert!(
            admitted <= 2 * limits::customers_per_minute(),
            "never limited"
        );
    };
    let allowed = burst.admits(limits::customers_per_minute());
    assert!(
        allowed.contains(&admitted),
        "admitted {admitted}, expected {allowed:?}"
    );

    let header = |name: &str| {
        limited
            .headers()
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    // The global tier's header also names its window (`100, 100;w=60`).
    let limit_header = e2e::header_values(&limited, "x-ratelimit-limit");
    let expected = match tier() {
        Tier::Local => limits::customers_per_minute().to_string(),
        Tier::Global => format!("{};w=60", limits::customers_per_minute()),
    };
    assert!(
        limit_header.split(", ").any(|v| v == expected),
        "x-ratelimit-limit {limit_header:?}, expected {expected:?} among them"
    );
    assert_eq!(header("x-ratelimit-remaining"), "0");
    assert!(header("x-ratelimit-reset").parse::<u64>().is_ok());
    assert!(header("content-type").starts_with("application/json"));
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["code"], 8, "RESOURCE_EXHAUSTED in the body: {body}");
}

#[tokio::test]
async fn grpc_over_the_limit_gets_resource_exhausted() {
    let mut customers = CustomerServiceClient::new(grpc_channel(fresh_client_ip()).await.unwrap());
    let burst = Burst::start();
    let mut admitted = 0;
    let status = loop {
        match customers
            .list_customers(ListCustomersRequest {
                page_size: 1,
                ..Default::default()
            })
            .await
        {
            Ok(_) => admitted += 1,
            Err(status) => break status,
        }
        assert!(
            admitted <= 2 * limits::customers_per_minute(),
            "never limited"
        );
    };
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let allowed = burst.admits(limits::customers_per_minute());
    assert!(
        allowed.contains(&admitted),
        "admitted {admitted}, expected {allowed:?}"
    );
}

#[tokio::test]
async fn rest_and_grpc_share_a_bucket_and_services_are_independent() {
    let ip = fresh_client_ip();
    let http = rest_client(ip);
    let channel = grpc_channel(ip).await.unwrap();
    let mut customers = CustomerServiceClient::new(channel.clone());
    let burst = Burst::start();

    // Alternate REST and gRPC until the customers bucket runs dry.
    let (mut rest_ok, mut grpc_ok) = (0, 0);
    loop {
        let rest = http
            .get(url("/customers?page_size=1"))
            .send()
            .await
            .unwrap();
        if rest.status() == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        assert_eq!(rest.status(), StatusCode::OK);
        rest_ok += 1;
        match customers
            .list_customers(ListCustomersRequest {
                page_size: 1,
                ..Default::default()
            })
            .await
        {
            Ok(_) => grpc_ok += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted);
                break;
            }
        }
        assert!(rest_ok <= limits::customers_per_minute(), "never limited");
    }
    let admitted = rest_ok + grpc_ok;
    let allowed = burst.admits(limits::customers_per_minute());
    assert!(
        allowed.contains(&admitted),
        "one bucket: admitted {rest_ok} REST + {grpc_ok} gRPC, expected {allowed:?} in all"
    );
    assert!(
        rest_ok >= limits::customers_per_minute() / 2 - 1
            && grpc_ok >= limits::customers_per_minute() / 2 - 1
    );

    // The same client still reaches products: its bucket is untouched.
    let rest = http.get(url("/products?page_size=1")).send().await.unwrap();
    assert_eq!(rest.status(), StatusCode::OK);
    ProductServiceClient::new(channel)
        .list_products(ListProductsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn routes_without_their_own_policy_get_the_gateway_default() {
    // Reflection has no policy of its own: the gateway-wide default applies,
    // a local rule only, whatever tier the services have.
    let channel = grpc_channel(fresh_client_ip()).await.unwrap();
    let started = Instant::now();
    let mut admitted = 0;
    let status = loop {
        match reflection_services_v1(channel.clone()).await {
            Ok(_) => admitted += 1,
            Err(err) => {
                let status = err.downcast::<tonic::Status>().expect("a gRPC status");
                break *status;
            }
        }
        assert!(
            admitted <= 2 * limits::gateway_default_per_minute(),
            "never limited"
        );
    };
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let bound = max_admitted(limits::gateway_default_per_minute(), started.elapsed());
    assert!(
        (limits::gateway_default_per_minute()..=bound).contains(&admitted),
        "admitted {admitted}"
    );
}
