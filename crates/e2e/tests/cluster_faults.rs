//! Faults on a Kubernetes cluster, through its gateway: a service pod
//! deleted under load, a rolling restart of both services (two replicas
//! each on PostgreSQL) under mixed reads and writes that must lose no
//! request and no acknowledged create, and a rolling restart of the Envoy
//! Deployment under load. They change the cluster while they run, so `cargo test -p e2e`
//! leaves this file out (`test = false` in Cargo.toml); `just test-cluster` runs them one at a time against the local cluster
//! (`E2E_KUBE_CONTEXT`, `E2E_GATEWAY` and `E2E_CLIENT_CIDR` from
//! `k8s/local-cluster/cluster.sh env`). docs/local-cluster.md has the figures.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use api::customer::v1::{
    CreateCustomerRequest, Customer, ListCustomersRequest,
    customer_service_client::CustomerServiceClient,
};
use e2e::{
    call, fresh_client_ip, grpc_channel,
    load::{CALLS_PER_ADDRESS, Call, FAIL_FAST, Load, is_unavailable},
    rest_client, unique_suffix, url,
};
use reqwest::StatusCode;
use serde_json::json;
use tonic::transport::Channel;

const SERVICES_NAMESPACE: &str = "envoy-poc";
const CUSTOMER_SELECTOR: &str = "app.kubernetes.io/name=customer-service";
/// The cluster overlay's replicas per service.
const REPLICAS: usize = 2;
/// The Deployments a rolling restart goes through.
const SERVICE_DEPLOYMENTS: [&str; 2] =
    ["deployment/customer-service", "deployment/product-service"];
const GATEWAY_NAMESPACE: &str = "envoy-gateway-system";

/// [`e2e::kubectl`] off the async runtime.
async fn kubectl(args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        e2e::kubectl(&args)
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
    assert_eq!(
        old.len(),
        REPLICAS,
        "{REPLICAS} Ready customer-service pods: {old:?}"
    );
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
    // Replaced: as many Ready pods as before, the deleted one not among them.
    while ready_pods(CUSTOMER_SELECTOR)
        .await
        .iter()
        .filter(|p| **p != old[0])
        .count()
        < REPLICAS
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
        "FIGURES pod delete (1 of {REPLICAS}): {} calls, {} failed (all 503/UNAVAILABLE), first failure {}, slowest failure {:.1} ms; \
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

/// One worker's clients; a fresh client address every CALLS_PER_ADDRESS
/// calls keeps each address below the per-client rate limit.
struct Clients {
    ip: IpAddr,
    used: u32,
    http: reqwest::Client,
    grpc: Option<CustomerServiceClient<Channel>>,
}

impl Clients {
    fn new() -> Self {
        let ip = fresh_client_ip();
        Self {
            ip,
            used: 0,
            http: rest_client(ip),
            grpc: None,
        }
    }

    fn next(&mut self) {
        self.used += 1;
        if self.used > CALLS_PER_ADDRESS {
            *self = Self::new();
            self.used = 1;
        }
    }

    async fn grpc(&mut self) -> Result<&mut CustomerServiceClient<Channel>, String> {
        if self.grpc.is_none() {
            let channel = grpc_channel(self.ip).await.map_err(|e| e.to_string())?;
            self.grpc = Some(CustomerServiceClient::new(channel));
        }
        self.grpc.as_mut().ok_or_else(|| "no channel".to_owned())
    }
}

/// The `n`th call of a worker: REST create, gRPC create, REST read of the
/// worker's last acknowledged create (from whichever pod Envoy picks), gRPC
/// list. Returns the acknowledged create (id, email), if it was one.
async fn mixed_call(
    clients: &mut Clients,
    n: u32,
    last: Option<&(String, String)>,
) -> Result<Option<(String, String)>, String> {
    clients.next();
    let email = format!("cluster-roll-{}@example.com", unique_suffix());
    match (n % 4, last) {
        (0, _) => {
            let response = clients
                .http
                .post(url("/customers"))
                .json(&json!({"name": "Cluster Rolling Rest", "email": email}))
                .send()
                .await
                .map_err(|e| format!("REST transport error: {e}"))?;
            let status = response.status();
            let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
            if status != StatusCode::CREATED {
                return Err(format!("REST {status} {body}"));
            }
            let id = body["id"].as_str().ok_or("no id")?.to_owned();
            Ok(Some((id, email)))
        }
        (1, _) => {
            let created = clients
                .grpc()
                .await?
                .create_customer(CreateCustomerRequest {
                    customer: Some(Customer {
                        name: "Cluster Rolling Grpc".into(),
                        email: email.clone(),
                        ..Default::default()
                    }),
                })
                .await
                .map_err(|s| format!("gRPC {:?} {}", s.code(), s.message()))?;
            Ok(Some((created.into_inner().id, email)))
        }
        (2, Some((id, email))) => {
            let response = clients
                .http
                .get(url(&format!("/customers/{id}")))
                .send()
                .await
                .map_err(|e| format!("REST transport error: {e}"))?;
            let status = response.status();
            let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
            if status != StatusCode::OK || body["email"] != email.as_str() {
                return Err(format!("{id}: read {status} {body}, wrote {email}"));
            }
            Ok(None)
        }
        _ => clients
            .grpc()
            .await?
            .list_customers(ListCustomersRequest {
                page_size: 5,
                ..Default::default()
            })
            .await
            .map(|_| None)
            .map_err(|s| format!("gRPC {:?} {}", s.code(), s.message())),
    }
}

/// `kubectl rollout restart` of both services under mixed load (two
/// replicas, `maxUnavailable: 0`, readiness that drops at SIGTERM, the
/// preStop pause): with the records in PostgreSQL, every create
/// acknowledged before, during or after the restart is read back afterwards
/// through the gateway, whichever new pod answers, and no call fails.
#[tokio::test]
async fn rolling_restart_of_the_services_loses_no_request_and_no_write() {
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (stop, acknowledged, failures) = (
                Arc::clone(&stop),
                Arc::clone(&acknowledged),
                Arc::clone(&failures),
            );
            tokio::spawn(async move {
                let mut clients = Clients::new();
                let (mut n, mut slowest, mut last) = (w as u32, Duration::ZERO, None);
                let mut calls = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let result = mixed_call(&mut clients, n, last.as_ref()).await;
                    slowest = slowest.max(t.elapsed());
                    match result {
                        Ok(Some(write)) => {
                            last = Some(write.clone());
                            acknowledged.lock().unwrap().push(write);
                        }
                        Ok(None) => {}
                        Err(failure) => failures
                            .lock()
                            .unwrap()
                            .push(format!("{:?} worker {w}: {failure}", started.elapsed())),
                    }
                    n += 1;
                    calls += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                (calls, slowest)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let restarted = Instant::now();
    let mut restart = vec!["-n", SERVICES_NAMESPACE, "rollout", "restart"];
    restart.extend(SERVICE_DEPLOYMENTS);
    kubectl(&restart).await;
    for deployment in SERVICE_DEPLOYMENTS {
        kubectl(&[
            "-n",
            SERVICES_NAMESPACE,
            "rollout",
            "status",
            deployment,
            "--timeout=300s",
        ])
        .await;
    }
    let rolled = restarted.elapsed();
    // "Rolled out" while the old pods still drain; keep the load on until
    // they are gone, so their shutdown is covered too.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let terminating = kubectl(&[
            "-n",
            SERVICES_NAMESPACE,
            "get",
            "pods",
            "-l",
            "envoy-poc/database-client=true",
            "-o",
            "jsonpath={.items[?(@.metadata.deletionTimestamp)].metadata.name}",
        ])
        .await;
        if terminating.trim().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "old pods still there: {terminating}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut calls, mut slowest) = (0, Duration::ZERO);
    for worker in workers {
        let (n, s) = worker.await.unwrap();
        calls += n;
        slowest = slowest.max(s);
    }
    let failures = failures.lock().unwrap().clone();
    let acknowledged = acknowledged.lock().unwrap().clone();

    // Every acknowledged create is there, whichever pod answers.
    let mut clients = Clients::new();
    let mut lost = Vec::new();
    for (id, email) in &acknowledged {
        clients.next();
        let (status, body) = call(clients.http.get(url(&format!("/customers/{id}")))).await;
        if status != StatusCode::OK || body["email"] != email.as_str() {
            lost.push(format!("{id} {email}: {status} {body}"));
        }
    }
    println!(
        "FIGURES cluster rolling restart ({REPLICAS} replicas each, PostgreSQL): {calls} calls \
         (4 clients, REST + gRPC creates, reads, lists), {} failed, {} acknowledged creates, \
         {} lost; slowest call {:.0} ms; rollout took {:.1} s",
        failures.len(),
        acknowledged.len(),
        lost.len(),
        slowest.as_secs_f64() * 1000.0,
        rolled.as_secs_f64(),
    );
    assert!(calls > 200, "too little load to show anything: {calls}");
    assert!(
        acknowledged.len() > 50,
        "too few writes: {}",
        acknowledged.len()
    );
    // This was 3-4 calls of ~2000, each hung until the caller's 10 s
    // timeout, until the health checks got an :authority they accept
    // (k8s/gateway/health-checks.yaml): with every check failing, Envoy
    // routed to draining pods too.
    assert!(
        failures.is_empty(),
        "{} calls failed: {:#?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(lost.is_empty(), "lost writes: {lost:#?}");
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
