//! Faults through the gateway: services killed, stopped and restarted under
//! load.
//!
//! The tests need the local stack with two instances of each service (the
//! `ha` profile) and change it while they run, so `cargo test -p e2e` leaves
//! this file out (`test = false` in Cargo.toml) and only `just test-faults`
//! runs it: it brings that stack up, runs this file one test at a time and
//! stops it again. docs/reliability-faults.md has the figures.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use e2e::{
    load::{Call, FAIL_FAST, Load, is_unavailable},
    stack,
};
use service_testing::{self as testing, ServingStatus};
use tokio::task::JoinHandle;

const CUSTOMERS: &str = api::customer::v1::SERVICE_NAME;
/// After an instance is back, how long Envoy may take to route to it again:
/// one active health check (1 s interval) plus margin.
const SETTLE: Duration = Duration::from_secs(3);

async fn restart(name: &'static str) {
    tokio::task::spawn_blocking(move || stack::restart(name))
        .await
        .unwrap()
        .unwrap_or_else(|err| panic!("{err}"));
}

/// Watches the instance on `port` directly (not through the gateway) and
/// returns when it reports NOT_SERVING for its service, with the time.
async fn watch_for_not_serving(port: u16) -> JoinHandle<Instant> {
    let channel = testing::channel(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap();
    let mut watch = testing::health_watch(channel, CUSTOMERS).await.unwrap();
    let first = watch.message().await.unwrap().expect("a status");
    assert_eq!(
        first.status(),
        ServingStatus::Serving,
        "instance on :{port}"
    );
    tokio::spawn(async move {
        loop {
            let next = watch.message().await.unwrap().expect("a status change");
            if next.status() == ServingStatus::NotServing {
                // Dropping the watch here lets the instance finish its drain.
                return Instant::now();
            }
        }
    })
}

#[tokio::test]
async fn killed_service_fails_fast_with_503_and_unavailable_then_recovers() {
    let load = Load::start(4);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let killed = load.now();
    for name in ["customer-service", "customer-service-2"] {
        stack::signal(name, "KILL").unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let restarting = load.now();
    for name in ["customer-service", "customer-service-2"] {
        restart(name).await;
    }
    let restarted = load.now();
    let recovered = load
        .wait_for_success_after(restarted, Duration::from_secs(10))
        .await
        .expect("calls succeed again within 10 s of the restart");
    // Keep going a little: success must stay, not flicker.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let steady_from = load.now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let calls = load.stop().await;

    // Every call answered before the kill succeeded; a call still in flight
    // at the SIGKILL belongs to the outage (a CI run saw one fail).
    let before: Vec<&Call> = calls
        .iter()
        .filter(|c| c.sent + c.latency < killed)
        .collect();
    assert!(!before.is_empty(), "no call was answered before the kill");
    if let Some(call) = before.iter().find(|c| c.failure.is_some()) {
        panic!("a call answered before the kill failed: {call:?}");
    }
    let failed: Vec<&Call> = calls.iter().filter(|c| c.failure.is_some()).collect();
    assert!(
        !failed.is_empty(),
        "no call failed while both instances were dead"
    );
    for call in &failed {
        let failure = call.failure.as_deref().unwrap();
        assert!(
            call.sent + call.latency >= killed && call.sent < recovered,
            "failure outside the outage: {call:?}"
        );
        assert!(
            is_unavailable(failure),
            "expected 503/UNAVAILABLE: {call:?}"
        );
        assert!(call.latency < FAIL_FAST, "slow failure: {call:?}");
    }
    let first_failure = failed
        .iter()
        .map(|c| c.sent + c.latency)
        .min()
        .unwrap()
        .saturating_sub(killed);
    assert!(
        first_failure < FAIL_FAST,
        "first failure {first_failure:?} after the kill"
    );
    let steady: Vec<&Call> = calls.iter().filter(|c| c.sent >= steady_from).collect();
    assert!(!steady.is_empty() && steady.iter().all(|c| c.failure.is_none()));

    let max_latency = failed.iter().map(|c| c.latency).max().unwrap();
    println!(
        "FIGURES kill: {} calls, {} failed (all 503/UNAVAILABLE), first failure {:.0} ms after SIGKILL, \
         slowest failure {:.1} ms; restart took {:.2} s, first success {:.0} ms after the restart finished",
        calls.len(),
        failed.len(),
        first_failure.as_secs_f64() * 1000.0,
        max_latency.as_secs_f64() * 1000.0,
        (restarted - restarting).as_secs_f64(),
        recovered.saturating_sub(restarted).as_secs_f64() * 1000.0,
    );
}

#[tokio::test]
async fn rolling_restart_under_load_loses_no_request() {
    // Whatever ran before (a kill), Envoy's health checks see both up first.
    tokio::time::sleep(SETTLE).await;
    let load = Load::start(4);
    tokio::time::sleep(Duration::from_secs(1)).await;

    // One instance after the other, each drained by SIGTERM while the other
    // serves, as a Deployment's rolling update does.
    let mut drains = Vec::new();
    for (name, port) in [("customer-service-2", 50061), ("customer-service", 50051)] {
        let not_serving = watch_for_not_serving(port).await;
        let t = Instant::now();
        restart(name).await;
        let seen = tokio::time::timeout(Duration::from_secs(5), not_serving)
            .await
            .unwrap_or_else(|_| panic!("{name} never reported NOT_SERVING"))
            .unwrap();
        drains.push((name, seen - t, t.elapsed()));
        tokio::time::sleep(SETTLE).await;
    }
    let calls = load.stop().await;

    let failed: Vec<&Call> = calls.iter().filter(|c| c.failure.is_some()).collect();
    assert!(
        calls.len() > 200,
        "too little load to show anything: {}",
        calls.len()
    );
    assert!(
        failed.is_empty(),
        "{} of {} calls failed during the rolling restart: {:#?}",
        failed.len(),
        calls.len(),
        &failed[..failed.len().min(10)]
    );
    let slowest = calls.iter().map(|c| c.latency).max().unwrap();
    println!(
        "FIGURES rolling restart: 0 of {} calls failed (4 clients, REST + gRPC), slowest {:.1} ms; {}",
        calls.len(),
        slowest.as_secs_f64() * 1000.0,
        drains
            .iter()
            .map(|(name, not_serving, total)| format!(
                "{name}: NOT_SERVING after {:.0} ms, stop+start {:.2} s",
                not_serving.as_secs_f64() * 1000.0,
                total.as_secs_f64()
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
}
