//! Faults on a Kubernetes cluster, through its gateway: a service pod
//! deleted under load, and a rolling restart of the Envoy Deployment under
//! load. They change the cluster while they run, so `cargo test -p e2e`
//! leaves this file out (`test = false` in Cargo.toml); `just test-cluster` runs them one at a time against the local cluster
//! (`E2E_KUBE_CONTEXT`, `E2E_GATEWAY` and `E2E_CLIENT_CIDR` from
//! `k8s/local-cluster/cluster.sh env`). docs/local-cluster.md has the figures.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{process::Command, time::Duration};

use e2e::load::{Call, FAIL_FAST, Load, is_unavailable};

const SERVICES_NAMESPACE: &str = "envoy-poc";
const CUSTOMER_SELECTOR: &str = "app.kubernetes.io/name=customer-service";
const GATEWAY_NAMESPACE: &str = "envoy-gateway-system";

/// `kubectl --context $E2E_KUBE_CONTEXT ARGS`, off the async runtime; panics
/// with kubectl's own words when it fails.
async fn kubectl(args: &[&str]) -> String {
    let context = std::env::var("E2E_KUBE_CONTEXT")
        .expect("E2E_KUBE_CONTEXT names the cluster's kubectl context (just test-cluster sets it)");
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let output = Command::new("kubectl")
            .arg("--context")
            .arg(&context)
            .args(&args)
            .output()
            .unwrap_or_else(|err| panic!("kubectl: {err}"));
        assert!(
            output.status.success(),
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    })
    .await
    .unwrap()
}

/// The names of the Ready pods that `selector` picks in the services' namespace.
async fn ready_pods(selector: &str) -> Vec<String> {
    let jsonpath = r#"{range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#;
    kubectl(&[
        "-n",
        SERVICES_NAMESPACE,
        "get",
        "pods",
        "-l",
        selector,
        "-o",
        &format!("jsonpath={jsonpath}"),
    ])
    .await
    .lines()
    .filter_map(|line| line.strip_suffix(" True"))
    .map(str::to_owned)
    .collect()
}

fn failures(calls: &[Call]) -> Vec<&Call> {
    calls.iter().filter(|c| c.failure.is_some()).collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::test]
async fn deleted_service_pod_fails_fast_then_the_deployment_replaces_it() {
    let load = Load::start(4);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let old = ready_pods(CUSTOMER_SELECTOR).await;
    assert_eq!(old.len(), 1, "one Ready customer-service pod: {old:?}");
    // A crash, as the gateway sees it: the pod is gone from the API at once,
    // its endpoint with it, before the Deployment's replacement is Ready.
    let deleted = load.now();
    kubectl(&[
        "-n",
        SERVICES_NAMESPACE,
        "delete",
        "pod",
        &old[0],
        "--grace-period=0",
        "--force",
        "--wait=false",
    ])
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while ready_pods(CUSTOMER_SELECTOR)
        .await
        .iter()
        .all(|p| *p == old[0])
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no replacement Ready in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let replaced = load.now();
    let recovered = load
        .wait_for_success_after(replaced, Duration::from_secs(30))
        .await
        .expect("calls succeed again within 30 s of the replacement being Ready");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let steady_from = load.now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let calls = load.stop().await;

    let before: Vec<&Call> = calls.iter().filter(|c| c.sent < deleted).collect();
    assert!(!before.is_empty() && before.iter().all(|c| c.failure.is_none()));
    let failed = failures(&calls);
    for call in &failed {
        assert!(
            is_unavailable(call.failure.as_deref().unwrap()),
            "expected 503/UNAVAILABLE: {call:?}"
        );
        assert!(call.latency < FAIL_FAST, "slow failure: {call:?}");
    }
    let steady: Vec<&Call> = calls.iter().filter(|c| c.sent >= steady_from).collect();
    assert!(!steady.is_empty() && steady.iter().all(|c| c.failure.is_none()));

    let first_failure = failed.iter().map(|c| c.sent + c.latency).min();
    println!(
        "FIGURES pod delete: {} calls, {} failed (all 503/UNAVAILABLE), first failure {}, slowest failure {:.1} ms; \
         replacement Ready {:.1} s after the delete, calls succeed {:.0} ms after that",
        calls.len(),
        failed.len(),
        first_failure.map_or("none".to_owned(), |t| format!(
            "{:.0} ms after the delete",
            ms(t.saturating_sub(deleted))
        )),
        failed.iter().map(|c| ms(c.latency)).fold(0.0, f64::max),
        (replaced - deleted).as_secs_f64(),
        ms(recovered.saturating_sub(replaced)),
    );
}

#[tokio::test]
async fn envoy_rollout_restart_under_load() {
    let load = Load::start(4);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let restarted = load.now();
    let envoy = kubectl(&[
        "-n",
        GATEWAY_NAMESPACE,
        "get",
        "deployment",
        "-l",
        &e2e::service_table().envoy_selector(),
        "-o",
        "name",
    ])
    .await;
    let envoy = envoy.trim();
    assert!(
        envoy.starts_with("deployment"),
        "no Envoy Deployment: {envoy:?}"
    );
    kubectl(&["-n", GATEWAY_NAMESPACE, "rollout", "restart", envoy]).await;
    kubectl(&[
        "-n",
        GATEWAY_NAMESPACE,
        "rollout",
        "status",
        envoy,
        "--timeout=180s",
    ])
    .await;
    let rolled = load.now();
    let recovered = load
        .wait_for_success_after(rolled, Duration::from_secs(30))
        .await
        .expect("calls succeed again within 30 s of the rollout");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let calls = load.stop().await;

    let failed = failures(&calls);
    for call in &failed {
        // Whatever fails must fail, not hang: the load's clients give up
        // after 10 s, and a connection refused or reset comes back at once.
        assert!(
            call.latency < Duration::from_secs(10),
            "hung call: {call:?}"
        );
    }
    let mut kinds: Vec<String> = failed
        .iter()
        .map(|c| c.failure.as_deref().unwrap().chars().take(60).collect())
        .collect();
    kinds.sort();
    kinds.dedup();
    println!(
        "FIGURES envoy rollout restart: {} calls, {} failed{}; rollout took {:.1} s, \
         calls succeed {:.0} ms after it",
        calls.len(),
        failed.len(),
        if kinds.is_empty() {
            String::new()
        } else {
            format!(" ({})", kinds.join(" | "))
        },
        (rolled - restarted).as_secs_f64(),
        ms(recovered.saturating_sub(rolled)),
    );
}
