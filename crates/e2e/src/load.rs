//! Steady load on the customers route through the gateway, with every call
//! recorded: what the fault suites (local stack and cluster) measure with.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use api::customer::v1::{ListCustomersRequest, customer_service_client::CustomerServiceClient};
use serde_json::Value;
use tokio::task::JoinHandle;
use tonic::Code;

use crate::{content_type, fresh_client_ip, grpc_channel, rest_client, url};

/// A failed call must come back within this (it does in milliseconds: Envoy
/// sees the refused connection at once); a hang would blow it.
pub const FAIL_FAST: Duration = Duration::from_secs(1);
/// Calls per client address before a worker moves to a fresh one, below the
/// customers limit (100/min), so the load never meets the rate limiter.
pub const CALLS_PER_ADDRESS: u32 = 80;
/// One call of the load.
#[derive(Debug, Clone)]
pub struct Call {
    /// When it was sent, since the load started.
    pub sent: Duration,
    pub latency: Duration,
    pub worker: usize,
    /// `None` on success, else what the caller saw.
    pub failure: Option<String>,
}

/// Steady load on the customers route from `workers` concurrent clients,
/// alternately REST (`GET /customers`) and gRPC (`ListCustomers`), each
/// paced a little so the machine's two cores also serve the stack.
pub struct Load {
    started: Instant,
    calls: Arc<Mutex<Vec<Call>>>,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl Load {
    pub fn start(workers: usize) -> Self {
        let started = Instant::now();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..workers)
            .map(|worker| {
                let (calls, stop) = (Arc::clone(&calls), Arc::clone(&stop));
                tokio::spawn(async move {
                    let rest = worker % 2 == 0;
                    let mut ip = fresh_client_ip();
                    let mut http = rest_client(ip);
                    let mut grpc = None;
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        if n > 0 && n % CALLS_PER_ADDRESS == 0 {
                            ip = fresh_client_ip();
                            http = rest_client(ip);
                            grpc = None;
                        }
                        n += 1;
                        let sent = started.elapsed();
                        let t = Instant::now();
                        let failure = if rest {
                            rest_call(&http).await
                        } else {
                            grpc_call(&mut grpc, ip).await
                        };
                        calls.lock().unwrap().push(Call {
                            sent,
                            latency: t.elapsed(),
                            worker,
                            failure,
                        });
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
            })
            .collect();
        Self {
            started,
            calls,
            stop,
            workers,
        }
    }

    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Waits until every worker has succeeded at least once after `since`;
    /// returns when the first of those successes was sent.
    pub async fn wait_for_success_after(
        &self,
        since: Duration,
        limit: Duration,
    ) -> Option<Duration> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(first) = every_worker_succeeded(&self.calls(), self.workers.len(), since) {
                return Some(first);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    pub async fn stop(self) -> Vec<Call> {
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers {
            worker.await.unwrap();
        }
        Arc::try_unwrap(self.calls).unwrap().into_inner().unwrap()
    }
}

async fn rest_call(http: &reqwest::Client) -> Option<String> {
    rest_result(http.get(url("/customers?page_size=1")).send().await)
        .await
        .err()
}

async fn grpc_call(
    client: &mut Option<CustomerServiceClient<tonic::transport::Channel>>,
    ip: IpAddr,
) -> Option<String> {
    if client.is_none() {
        match grpc_channel(ip).await {
            Ok(channel) => *client = Some(CustomerServiceClient::new(channel)),
            Err(err) => return Some(format!("gRPC connect: {err}")),
        }
    }
    let result = client
        .as_mut()
        .unwrap()
        .list_customers(ListCustomersRequest {
            page_size: 1,
            ..Default::default()
        })
        .await;
    result.err().map(|status| grpc_failure(&status))
}

/// When the first of the successes was sent, once each of `workers` has
/// succeeded with a call sent at `since` or later; `None` until then.
pub fn every_worker_succeeded(calls: &[Call], workers: usize, since: Duration) -> Option<Duration> {
    let ok: Vec<&Call> = calls
        .iter()
        .filter(|c| c.sent >= since && c.failure.is_none())
        .collect();
    (0..workers)
        .all(|w| ok.iter().any(|c| c.worker == w))
        .then(|| ok.iter().map(|c| c.sent).min())
        .flatten()
}

/// A REST answer: the JSON body of a success, or the failure as
/// [`is_unavailable`] reads it (`REST <status> <content-type> <body>`, or
/// the transport error).
pub async fn rest_result(
    response: Result<reqwest::Response, reqwest::Error>,
) -> Result<Value, String> {
    match response {
        // 200 for reads, 201 for creates (rest.rs checks which answers which).
        Ok(r) if r.status().is_success() => {
            let status = r.status();
            r.json()
                .await
                .map_err(|e| format!("REST {status} with an unreadable body: {e}"))
        }
        Ok(r) => {
            let status = r.status();
            let content_type = content_type(&r);
            let body = r.text().await.unwrap_or_default();
            Err(format!("REST {} {content_type} {body}", status.as_u16()))
        }
        Err(err) => Err(format!("REST transport error: {err}")),
    }
}

/// A gRPC failure as [`is_unavailable`] reads it.
pub fn grpc_failure(status: &tonic::Status) -> String {
    format!("gRPC {:?} {}", status.code(), status.message())
}

/// "OK", or the failure: for tests that only classify answers.
pub async fn rest_answer(response: Result<reqwest::Response, reqwest::Error>) -> String {
    rest_result(response)
        .await
        .err()
        .unwrap_or_else(|| "OK".to_owned())
}

/// "OK", or the failure: for tests that only classify answers.
pub fn grpc_answer<T>(result: Result<T, tonic::Status>) -> String {
    result.map_or_else(|status| grpc_failure(&status), |_| "OK".to_owned())
}

/// Client addresses that move on before the rate limit is near: a fresh
/// one every [`CALLS_PER_ADDRESS`] calls.
pub struct Addresses {
    ip: IpAddr,
    used: u32,
}

impl Addresses {
    pub fn new() -> Self {
        Self {
            ip: fresh_client_ip(),
            used: 0,
        }
    }

    /// The address for the next call, and whether it is a fresh one (so
    /// clients bound to the old one must be rebuilt).
    pub fn for_next_call(&mut self) -> (IpAddr, bool) {
        self.used += 1;
        if self.used > CALLS_PER_ADDRESS {
            self.ip = fresh_client_ip();
            self.used = 1;
            return (self.ip, true);
        }
        (self.ip, false)
    }

    /// The address the last call used.
    pub fn current(&self) -> IpAddr {
        self.ip
    }
}

impl Default for Addresses {
    fn default() -> Self {
        Self::new()
    }
}

/// The failure a dead service must produce: REST 503 with the JSON error
/// body (UNAVAILABLE = 14), gRPC UNAVAILABLE.
pub fn is_unavailable(failure: &str) -> bool {
    if let Some(rest) = failure.strip_prefix("REST 503 application/json ") {
        serde_json::from_str::<Value>(rest).is_ok_and(|body| body["code"] == 14)
    } else {
        failure.starts_with(&format!("gRPC {:?} ", Code::Unavailable))
    }
}
