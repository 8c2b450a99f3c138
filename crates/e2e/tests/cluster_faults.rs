//! Faults on a Kubernetes cluster, through its gateway: a service pod
//! deleted under load, a rolling restart of both services (two replicas
//! each on PostgreSQL) under mixed reads and writes that must lose no
//! request and no acknowledged create, a rolling restart of the Envoy
//! Deployment under load, and PostgreSQL taken away and brought back under
//! mixed load (fail fast, reconnect without a restart, lose no write).
//! They change the cluster while they run, so `cargo test -p e2e` leaves
//! this file out (`test = false` in Cargo.toml); `just test-cluster` runs
//! them one at a time against the local cluster (`E2E_KUBE_CONTEXT`,
//! `E2E_GATEWAY` and `E2E_CLIENT_CIDR` from `k8s/local-cluster/cluster.sh
//! env`). docs/local-cluster.md has the figures.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{
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
    call, grpc_channel,
    load::{
        Addresses, Call, FAIL_FAST, Load, every_worker_succeeded, grpc_failure, is_unavailable,
        rest_result,
    },
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
/// The pods of both services: the label the cluster overlay gives them,
/// which k8s/postgres's NetworkPolicy admits to PostgreSQL.
const DATABASE_CLIENTS: &str = "envoy-poc/database-client=true";
/// PostgreSQL's StatefulSet (k8s/postgres) and its one pod.
const DATABASE: &str = "statefulset/postgres";
const DATABASE_SELECTOR: &str = "app.kubernetes.io/name=postgres";
/// How long PostgreSQL stays away once its pod is gone: long enough for
/// dozens of calls of the load, and for every pooled connection to have
/// been tried and found dead.
const DATABASE_DOWN_FOR: Duration = Duration::from_secs(5);
/// Clients of the mixed load while the database is down.
const DATABASE_LOAD_WORKERS: usize = 4;

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

/// `name restartCount` of every pod that `selector` picks in the services'
/// namespace, sorted: equal before and after a fault when no pod was
/// replaced and no container restarted.
async fn pods_and_restarts(selector: &str) -> Vec<String> {
    let mut pods: Vec<String> = pod_lines(
        selector,
        r#"{.metadata.name} {.status.containerStatuses[*].restartCount}"#,
    )
    .await
    .lines()
    .map(str::to_owned)
    .collect();
    pods.sort();
    pods
}

/// One line per pod that `selector` picks in the services' namespace, as
/// `fields` (a kubectl jsonpath of one pod) prints it.
async fn pod_lines(selector: &str, fields: &str) -> String {
    kubectl(&[
        "-n",
        SERVICES_NAMESPACE,
        "get",
        "pods",
        "-l",
        selector,
        "-o",
        &format!("jsonpath={{range .items[*]}}{fields}{{\"\\n\"}}{{end}}"),
    ])
    .await
}

/// The names of the Ready pods that `selector` picks in the services' namespace.
async fn ready_pods(selector: &str) -> Vec<String> {
    pod_lines(
        selector,
        r#"{.metadata.name} {.status.conditions[?(@.type=="Ready")].status}"#,
    )
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

/// One worker's clients, rebuilt whenever its address moves on (below the
/// per-client rate limit).
struct Clients {
    addresses: Addresses,
    http: reqwest::Client,
    grpc: Option<CustomerServiceClient<Channel>>,
}

impl Clients {
    fn new() -> Self {
        let addresses = Addresses::new();
        let http = rest_client(addresses.current());
        Self {
            addresses,
            http,
            grpc: None,
        }
    }

    fn next(&mut self) {
        let (ip, fresh) = self.addresses.for_next_call();
        if fresh {
            self.http = rest_client(ip);
            self.grpc = None;
        }
    }

    async fn grpc(&mut self) -> Result<&mut CustomerServiceClient<Channel>, String> {
        if self.grpc.is_none() {
            let channel = grpc_channel(self.addresses.current())
                .await
                .map_err(|e| e.to_string())?;
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
            let body = rest_result(
                clients
                    .http
                    .post(url("/customers"))
                    .json(&json!({"name": "Cluster Rolling Rest", "email": email}))
                    .send()
                    .await,
            )
            .await?;
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
                .map_err(|s| grpc_failure(&s))?;
            Ok(Some((created.into_inner().id, email)))
        }
        (2, Some((id, email))) => {
            let body = rest_result(
                clients
                    .http
                    .get(url(&format!("/customers/{id}")))
                    .send()
                    .await,
            )
            .await?;
            if body["email"] != email.as_str() {
                return Err(format!("{id}: read {body}, wrote {email}"));
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
            .map_err(|s| grpc_failure(&s)),
    }
}

/// A create the gateway acknowledged, and when (since the load started).
#[derive(Debug, Clone)]
struct Write {
    id: String,
    email: String,
    at: Duration,
}

/// Mixed reads and writes through the gateway ([`mixed_call`]) from
/// `workers` clients, every call recorded like [`Load`]'s and every
/// acknowledged create kept, to be read back afterwards.
struct MixedLoad {
    started: Instant,
    stop: Arc<AtomicBool>,
    calls: Arc<Mutex<Vec<Call>>>,
    acknowledged: Arc<Mutex<Vec<Write>>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl MixedLoad {
    fn start(workers: usize) -> Self {
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let workers = (0..workers)
            .map(|worker| {
                let (stop, calls, acknowledged) = (
                    Arc::clone(&stop),
                    Arc::clone(&calls),
                    Arc::clone(&acknowledged),
                );
                tokio::spawn(async move {
                    let mut clients = Clients::new();
                    // Workers start at different kinds of call.
                    let (mut n, mut last) = (worker as u32, None);
                    while !stop.load(Ordering::Relaxed) {
                        let sent = started.elapsed();
                        let t = Instant::now();
                        let result = mixed_call(&mut clients, n, last.as_ref()).await;
                        let latency = t.elapsed();
                        let failure = match result {
                            Ok(Some((id, email))) => {
                                last = Some((id.clone(), email.clone()));
                                acknowledged.lock().unwrap().push(Write {
                                    id,
                                    email,
                                    at: started.elapsed(),
                                });
                                None
                            }
                            Ok(None) => None,
                            Err(failure) => Some(failure),
                        };
                        calls.lock().unwrap().push(Call {
                            sent,
                            latency,
                            worker,
                            failure,
                        });
                        n += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                })
            })
            .collect();
        Self {
            started,
            stop,
            calls,
            acknowledged,
            workers,
        }
    }

    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// See [`Load::wait_for_success_after`].
    async fn wait_for_success_after(&self, since: Duration, limit: Duration) -> Option<Duration> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let calls = self.calls.lock().unwrap().clone();
            if let Some(first) = every_worker_succeeded(&calls, self.workers.len(), since) {
                return Some(first);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    async fn stop(self) -> (Vec<Call>, Vec<Write>) {
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers {
            worker.await.unwrap();
        }
        let calls = self.calls.lock().unwrap().clone();
        let acknowledged = self.acknowledged.lock().unwrap().clone();
        (calls, acknowledged)
    }
}

/// The acknowledged creates that do not read back, through the gateway,
/// whichever pod answers.
async fn lost_writes(acknowledged: &[Write]) -> Vec<String> {
    let mut clients = Clients::new();
    let mut lost = Vec::new();
    for Write { id, email, .. } in acknowledged {
        clients.next();
        let (status, body) = call(clients.http.get(url(&format!("/customers/{id}")))).await;
        if status != StatusCode::OK || body["email"] != email.as_str() {
            lost.push(format!("{id} {email}: {status} {body}"));
        }
    }
    lost
}

/// `kubectl rollout restart` of both services under mixed load (two
/// replicas, `maxUnavailable: 0`, readiness that drops at SIGTERM, the
/// preStop pause): with the records in PostgreSQL, every create
/// acknowledged before, during or after the restart is read back afterwards
/// through the gateway, whichever new pod answers, and no call fails.
#[tokio::test]
async fn rolling_restart_of_the_services_loses_no_request_and_no_write() {
    let load = MixedLoad::start(4);
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
            DATABASE_CLIENTS,
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
    let (calls, acknowledged) = load.stop().await;
    let failures: Vec<String> = failures(&calls)
        .iter()
        .map(|c| {
            format!(
                "{:?} worker {}: {}",
                c.sent,
                c.worker,
                c.failure.as_deref().unwrap_or_default()
            )
        })
        .collect();
    let slowest = calls.iter().map(|c| c.latency).max().unwrap_or_default();
    let calls = calls.len();
    let lost = lost_writes(&acknowledged).await;
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

/// PostgreSQL taken away under mixed load: `kubectl scale --replicas=0` of
/// its StatefulSet, held down for [`DATABASE_DOWN_FOR`] after its pod is
/// gone, then `--replicas=1`. A scale to zero rather than a pod delete: the
/// StatefulSet would recreate a deleted pod within a second or two, too
/// short to see the services answer a sustained outage and to be sure every
/// pooled connection died; the local scale profile's test
/// (scale_faults.rs) covers the SIGKILL and crash recovery. While it is
/// down every call fails fast with 503/UNAVAILABLE; when it is back the
/// same service pods (no restart) answer again, and no acknowledged create
/// is lost.
#[tokio::test]
async fn killed_database_fails_fast_then_the_services_reconnect() {
    let services = pods_and_restarts(DATABASE_CLIENTS).await;
    assert_eq!(services.len(), 2 * REPLICAS, "{services:?}");
    assert_eq!(ready_pods(DATABASE_SELECTOR).await.len(), 1);
    let load = MixedLoad::start(DATABASE_LOAD_WORKERS);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let killed = load.now();
    kubectl(&["-n", SERVICES_NAMESPACE, "scale", DATABASE, "--replicas=0"]).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    let database_pods = || pod_lines(DATABASE_SELECTOR, "{.metadata.name}");
    // No assert until PostgreSQL is scaled back: a failure here must not
    // leave it at zero for the tests after this one.
    let mut went = true;
    while !database_pods().await.trim().is_empty() {
        if Instant::now() > deadline {
            went = false;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let gone = load.now();
    if went {
        tokio::time::sleep(DATABASE_DOWN_FOR).await;
    }
    let restored = load.now();
    kubectl(&["-n", SERVICES_NAMESPACE, "scale", DATABASE, "--replicas=1"]).await;
    assert!(
        went,
        "the postgres pod still there 90 s after the scale to 0"
    );
    let deadline = Instant::now() + Duration::from_secs(180);
    while ready_pods(DATABASE_SELECTOR).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "postgres not Ready 180 s after scaling it back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = load.now();
    let recovered = load
        .wait_for_success_after(ready, Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let steady_from = load.now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (calls, acknowledged) = load.stop().await;
    let services_after = pods_and_restarts(DATABASE_CLIENTS).await;
    let lost = lost_writes(&acknowledged).await;

    let failed = failures(&calls);
    let while_down: Vec<&Call> = calls
        .iter()
        .filter(|c| c.sent >= killed && c.sent < ready)
        .collect();
    let first_failure = failed.iter().map(|c| c.sent + c.latency).min();
    // The first call that completed successfully after the outage; the
    // Ready condition is seen through kubectl polls (~0.1-0.3 s apart here),
    // so this may be a little before `ready`.
    let first_success = calls
        .iter()
        .filter(|c| c.failure.is_none() && c.sent >= gone)
        .map(|c| c.sent + c.latency)
        .min();
    let slowest_failure = failed.iter().map(|c| c.latency).max().unwrap_or_default();
    let before_kill = acknowledged.iter().filter(|w| w.at < killed).count();
    println!(
        "FIGURES database down (scale 0, {:.0} s, scale 1): {} calls in all; while down \
         (scale 0 to Ready, {:.1} s) {} of {} failed, slowest failure {:.0} ms; first failure \
         {} after the scale to 0 (pod gone after {:.1} s); PostgreSQL Ready {:.1} s after the \
         scale to 1, first success {} after Ready; {} acknowledged creates ({before_kill} \
         before the kill), {} lost; service pods and restart counts unchanged: {}",
        DATABASE_DOWN_FOR.as_secs_f64(),
        calls.len(),
        ms(ready - killed) / 1000.0,
        while_down.iter().filter(|c| c.failure.is_some()).count(),
        while_down.len(),
        ms(slowest_failure),
        first_failure.map_or("none".to_owned(), |t| format!(
            "{:.0} ms",
            ms(t.saturating_sub(killed))
        )),
        ms(gone - killed) / 1000.0,
        ms(ready - restored) / 1000.0,
        first_success.map_or("none".to_owned(), |t| format!(
            "{:+.0} ms",
            ms(t) - ms(ready)
        )),
        acknowledged.len(),
        lost.len(),
        services_after == services,
    );

    // What failed, by message (ids and addresses aside, the messages are
    // few): how often, and the slowest of each, with when it was sent.
    let mut kinds: std::collections::BTreeMap<String, (usize, Duration, Duration)> =
        std::collections::BTreeMap::new();
    for call in &failed {
        let message: String = call
            .failure
            .as_deref()
            .unwrap_or_default()
            .chars()
            .take(140)
            .collect();
        let kind = kinds.entry(message).or_default();
        kind.0 += 1;
        if call.latency > kind.1 {
            (kind.1, kind.2) = (call.latency, call.sent.saturating_sub(killed));
        }
    }
    for (message, (count, slowest, sent)) in &kinds {
        println!(
            "  {count} x, slowest {:.0} ms (sent {:.2} s after the scale to 0): {message}",
            ms(*slowest),
            sent.as_secs_f64()
        );
    }

    let before: Vec<&Call> = calls.iter().filter(|c| c.sent < killed).collect();
    assert!(
        !before.is_empty() && before.iter().all(|c| c.failure.is_none()),
        "calls failed before the kill: {:?}",
        failures(&calls).first()
    );
    for call in &failed {
        assert!(
            is_unavailable(call.failure.as_deref().unwrap()),
            "expected 503/UNAVAILABLE: {call:?}"
        );
        assert!(call.latency < FAIL_FAST, "slow failure: {call:?}");
    }
    // With no pod behind the postgres Service nothing can succeed: if
    // something did, the database was not down and this proved nothing.
    let down: Vec<&Call> = calls
        .iter()
        .filter(|c| c.sent >= gone && c.sent < restored)
        .collect();
    // Each worker keeps calling and each call fails within FAIL_FAST, so
    // each makes at least DATABASE_DOWN_FOR / FAIL_FAST calls while it is
    // down (the failures take 0.1-0.5 s; 45 to 150 calls in all seen).
    let per_worker = DATABASE_DOWN_FOR.as_millis() / FAIL_FAST.as_millis();
    let least = DATABASE_LOAD_WORKERS * usize::try_from(per_worker).unwrap_or(usize::MAX);
    assert!(
        down.len() >= least,
        "too few calls while down: {} (at least {least})",
        down.len()
    );
    assert!(
        down.iter().all(|c| c.failure.is_some()),
        "a call succeeded with PostgreSQL gone: {:?}",
        down.iter().find(|c| c.failure.is_none())
    );
    assert!(
        recovered.is_some(),
        "not every client succeeded within 30 s of PostgreSQL being Ready"
    );
    let steady: Vec<&Call> = calls.iter().filter(|c| c.sent >= steady_from).collect();
    assert!(
        !steady.is_empty() && steady.iter().all(|c| c.failure.is_none()),
        "calls still fail after the recovery: {:?}",
        steady.iter().find(|c| c.failure.is_some())
    );
    assert_eq!(
        services_after, services,
        "a service pod was replaced or restarted"
    );
    assert!(
        before_kill > 10,
        "too few writes before the kill: {before_kill}"
    );
    assert!(lost.is_empty(), "lost writes: {lost:#?}");
}
