//! The global rate-limit tier (k8s/global-limits): a limit per client and
//! per service counted by Envoy's rate-limit service in Redis, so it holds
//! across every Envoy replica and across Envoy restarts. Needs a gateway with
//! that tier: the stack's `scale` profile (`just test-scale`) or the cluster
//! (`just test-cluster`, two Envoy replicas). Not part of `just test-e2e`:
//! the dev stack has only the local tier.
//!
//! The rate-limit service counts in fixed windows aligned to the minute, so
//! each test starts early in a window and finishes inside it; the counts are
//! then exact, with no refill to allow for.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use e2e::{fresh_client_ip, limits, rest_client, start_of_a_window, url};
use reqwest::StatusCode;

/// What a refused call says about the tier that refused it.
struct Refusal {
    limit_header: String,
    message: String,
}

impl Refusal {
    fn is_global(&self) -> bool {
        // The global tier's draft-03 header names its window (`w=60`); the
        // JSON body carries Envoy's details for the refusal.
        self.limit_header.contains("w=60") && self.message == "request_rate_limited"
    }
}

/// Calls GET /customers from `ip` with `clients` concurrent connections
/// until the first refusal (every client stops at its first one).
async fn spend(ip: IpAddr, clients: usize, at_most: u32) -> (u32, Option<Refusal>) {
    let admitted = Arc::new(AtomicU32::new(0));
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let admitted = Arc::clone(&admitted);
            let http = rest_client(ip);
            tokio::spawn(async move {
                loop {
                    if admitted.load(Ordering::SeqCst) >= at_most {
                        return None;
                    }
                    let response = http
                        .get(url("/customers?page_size=1"))
                        .send()
                        .await
                        .unwrap();
                    match response.status() {
                        StatusCode::OK => {
                            admitted.fetch_add(1, Ordering::SeqCst);
                        }
                        StatusCode::TOO_MANY_REQUESTS => {
                            let limit_header = e2e::header_values(&response, "x-ratelimit-limit");
                            let body: serde_json::Value = response.json().await.unwrap();
                            return Some(Refusal {
                                limit_header,
                                message: body["message"].as_str().unwrap_or_default().to_owned(),
                            });
                        }
                        other => panic!("unexpected {other}"),
                    }
                }
            })
        })
        .collect();
    let mut refusal = None;
    for task in tasks {
        if let Some(r) = task.await.unwrap() {
            refusal = Some(r);
        }
    }
    (admitted.load(Ordering::SeqCst), refusal)
}

#[tokio::test]
async fn fifty_clients_on_one_address_get_exactly_the_global_limit() {
    let limit = limits::customers_per_minute();
    start_of_a_window(Duration::from_secs(20)).await;
    let ip = fresh_client_ip();
    let started = Instant::now();
    let (admitted, refusal) = spend(ip, 50, 2 * limit).await;
    let refusal = refusal.expect("never refused");
    println!(
        "FIGURES global limit: 50 clients on {ip} admitted {admitted} of limit {limit} in {:.0} ms; \
         refused with x-ratelimit-limit {:?}, message {:?}",
        started.elapsed().as_secs_f64() * 1000.0,
        refusal.limit_header,
        refusal.message
    );
    assert!(
        refusal.is_global(),
        "refused by the local tier: {:?} {:?}",
        refusal.limit_header,
        refusal.message
    );
    assert_eq!(
        admitted, limit,
        "admitted {admitted}, the global limit is {limit}"
    );
    if std::env::var_os("E2E_KUBE_CONTEXT").is_some() {
        across_replicas(ip, admitted).await;
    }
}

/// On a cluster: the admitted calls went through more than one Envoy
/// replica, each of which alone would have let the client have its limit.
async fn across_replicas(ip: IpAddr, admitted: u32) {
    let kubectl = |args: &[&str]| {
        let mut all = vec!["-n", "envoy-gateway-system"];
        all.extend_from_slice(args);
        e2e::kubectl(&all)
    };
    let selector = e2e::service_table().envoy_selector();
    let pods = kubectl(&["get", "pods", "-l", &selector, "-o", "name"]);
    let pods: Vec<&str> = pods.split_whitespace().collect();
    // The access log (JSON) names the client and the status of every call.
    let client = format!("{ip}:");
    let served_by = |pod: &str| {
        kubectl(&["logs", pod, "-c", "envoy", "--tail=-1"])
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|entry| {
                entry["downstream_remote_address"]
                    .as_str()
                    .is_some_and(|a| a.starts_with(&client))
                    && entry["response_code"] == 200
            })
            .count() as u32
    };
    // Envoy flushes its access log every second or so.
    let deadline = Instant::now() + Duration::from_secs(15);
    let counts = loop {
        let counts: Vec<u32> = pods.iter().map(|pod| served_by(pod)).collect();
        if counts.iter().sum::<u32>() >= admitted || Instant::now() > deadline {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let local_only = limits::customers_per_minute() * u32::try_from(pods.len()).unwrap();
    println!(
        "FIGURES global limit across {} Envoy replicas: {admitted} admitted, per replica {counts:?}; \
         with the local tier alone each replica would have admitted up to {} (up to {local_only} in all)",
        pods.len(),
        limits::customers_per_minute()
    );
    assert!(pods.len() >= 2, "one Envoy replica: {pods:?}");
    assert_eq!(
        counts.iter().sum::<u32>(),
        admitted,
        "access logs of {pods:?}: {counts:?}"
    );
    assert!(
        counts.iter().all(|&n| n > 0),
        "a replica served none of the calls: {counts:?}"
    );
}

#[tokio::test]
async fn grpc_and_rest_share_the_global_count() {
    let limit = limits::customers_per_minute();
    start_of_a_window(Duration::from_secs(20)).await;
    let ip = fresh_client_ip();
    // Half the window's allowance over gRPC, the rest must be exactly what
    // REST still gets.
    let half = limit / 2;
    let channel = e2e::grpc_channel(ip).await.unwrap();
    let mut client =
        api::customer::v1::customer_service_client::CustomerServiceClient::new(channel);
    for _ in 0..half {
        client
            .list_customers(api::customer::v1::ListCustomersRequest {
                page_size: 1,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let (admitted, refusal) = spend(ip, 4, limit).await;
    assert!(refusal.expect("never refused").is_global());
    assert_eq!(admitted, limit - half, "REST after {half} gRPC calls");
    let status = client
        .list_customers(api::customer::v1::ListCustomersRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
}
