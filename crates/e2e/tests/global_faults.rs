//! The global tier when its parts restart or fail, on the stack's `scale`
//! profile (`just test-scale`): the counter lives in Redis, not in Envoy, and
//! when Redis is down the gateway fails open with the local tier still
//! bounding each client. docs/rate-limiting.md has the figures.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use e2e::{fresh_client_ip, limits, max_admitted, rest_client, stack, start_of_a_window, url};
use reqwest::StatusCode;

/// `n` sequential calls from `ip`: (admitted, refused, slowest call).
async fn calls(ip: IpAddr, n: u32) -> (u32, Vec<String>, Duration) {
    let http = rest_client(ip);
    let (mut admitted, mut refused, mut slowest) = (0, Vec::new(), Duration::ZERO);
    for _ in 0..n {
        let started = Instant::now();
        let response = http
            .get(url("/customers?page_size=1"))
            .send()
            .await
            .unwrap();
        slowest = slowest.max(started.elapsed());
        match response.status() {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                let body: serde_json::Value = response.json().await.unwrap();
                refused.push(body["message"].as_str().unwrap_or_default().to_owned());
            }
            other => panic!("unexpected {other}"),
        }
    }
    (admitted, refused, slowest)
}

async fn blocking(f: impl FnOnce() -> Result<(), e2e::TestError> + Send + 'static) {
    tokio::task::spawn_blocking(f).await.unwrap().unwrap();
}

#[tokio::test]
async fn the_count_survives_an_envoy_restart() {
    let limit = limits::customers_per_minute();
    start_of_a_window(Duration::from_secs(40)).await;
    let ip = fresh_client_ip();
    let before = limit * 3 / 5;
    let (admitted, refused, _) = calls(ip, before).await;
    assert_eq!((admitted, refused.len()), (before, 0));
    let started = Instant::now();
    // Envoy Gateway's Host infrastructure runs Envoy as its child: a restart
    // of it is a new Envoy with empty local buckets.
    blocking(|| stack::restart("envoy-gateway")).await;
    println!(
        "envoy-gateway restarted in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (admitted, refused, _) = calls(ip, limit).await;
    println!(
        "FIGURES global limit across an Envoy restart: {before} before, {admitted} after (limit {limit})"
    );
    assert_eq!(
        before + admitted,
        limit,
        "the window's count restarted with Envoy"
    );
    assert!(
        refused.iter().all(|m| m == "request_rate_limited"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn with_redis_down_the_gateway_fails_open_and_the_local_tier_still_bounds() {
    let limit = limits::customers_burst_guard_per_minute();
    blocking(|| stack::signal("redis", "KILL")).await;
    let ip = fresh_client_ip();
    // Everything passes the global tier (fail open) until the local tier,
    // per Envoy, refuses past its own limit. Each call now waits for the
    // rate-limit service's timeout, so 50 clients spend the local bucket
    // before its refill matters.
    let started = Instant::now();
    let total = limit + limit / 2;
    let spent = Arc::new(AtomicU32::new(0));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let spent = Arc::clone(&spent);
            tokio::spawn(async move {
                let mut own = (0, Vec::new(), Duration::ZERO);
                while spent.fetch_add(1, Ordering::SeqCst) < total {
                    let (admitted, refused, slowest) = calls(ip, 1).await;
                    own.0 += admitted;
                    own.1.extend(refused);
                    own.2 = own.2.max(slowest);
                }
                own
            })
        })
        .collect();
    let (mut admitted, mut refused, mut slowest) = (0, Vec::new(), Duration::ZERO);
    for task in tasks {
        let (a, r, s) = task.await.unwrap();
        admitted += a;
        refused.extend(r);
        slowest = slowest.max(s);
    }
    let bound = max_admitted(limit, started.elapsed());
    let log = std::fs::read_to_string(stack::log_file("ratelimit")).unwrap();
    let operator_line = log
        .lines()
        .rev()
        .find(|l| l.contains("redis") && l.contains("error"))
        .map(str::to_owned);
    println!(
        "FIGURES redis down: {total} calls in {:.1} s, admitted {admitted} (burst guard {limit}, \
         bound with refill {bound}), slowest call {:.0} ms; rate-limit service logs: {operator_line:?}",
        started.elapsed().as_secs_f64(),
        slowest.as_secs_f64() * 1000.0
    );
    // Bring Redis back before asserting, so a failure leaves a working stack.
    blocking(|| stack::restart("redis")).await;
    assert!(
        operator_line.is_some(),
        "no Redis error in the rate-limit service's log"
    );
    assert!(
        (limit..=bound).contains(&admitted),
        "admitted {admitted}: want the local tier's {limit}..={bound}"
    );
    assert!(
        !refused.is_empty() && refused.iter().all(|m| m == "local_rate_limited"),
        "the local tier did not answer: {refused:?}"
    );
    // Bounded: each call waits at most the rate-limit timeout (250 ms).
    assert!(slowest < Duration::from_secs(1), "a call took {slowest:?}");

    // Recovery without a restart: a fresh address is counted again.
    let limit = limits::customers_per_minute();
    let deadline = Instant::now() + Duration::from_secs(20);
    start_of_a_window(Duration::from_secs(25)).await;
    loop {
        let ip = fresh_client_ip();
        let (admitted, refused, _) = calls(ip, limit + 1).await;
        if admitted == limit && refused == ["request_rate_limited"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the global tier did not come back: admitted {admitted}, refused {refused:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
