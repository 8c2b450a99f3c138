//! The service on its own (release binary, private port): memory with large
//! stores, the cost of a List page deep into a large store, and the time from
//! process start to health SERVING.

use std::{
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use api::customer::v1::{ListCustomersRequest, customer_service_client::CustomerServiceClient};
use serde_json::{Value, json};
use service_testing as testing;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;

use crate::{
    load::{Error, round3},
    procs::{round1, rss_kib},
};

/// Records every fresh store starts with (the samples).
pub const SAMPLES: usize = 5;

fn free_port() -> Result<u16, Error> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

struct Server {
    child: Child,
    port: u16,
    /// From spawn to health SERVING.
    ready: Duration,
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.child.kill());
        drop(self.child.wait());
    }
}

impl Server {
    /// Spawns `bin` with `synthetic` extra records and polls health as fast as
    /// it can until SERVING.
    async fn start(bin: &Path, synthetic: usize) -> Result<Self, Error> {
        let port = free_port()?;
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let child = Command::new(bin)
            .args([
                "--port",
                &port.to_string(),
                "--synthetic-records",
                &synthetic.to_string(),
            ])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        let mut server = Self {
            child,
            port,
            ready: Duration::ZERO,
        };
        let deadline = started + Duration::from_secs(60);
        loop {
            if let Ok(channel) = Endpoint::from_shared(url.clone())?.connect().await
                && let Ok(status) = testing::health(channel, "").await
                && status == ServingStatus::Serving
            {
                server.ready = started.elapsed();
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(
                    format!("{} exited with {status} before SERVING", bin.display()).into(),
                );
            }
            if Instant::now() > deadline {
                return Err(format!("{} not SERVING after 60 s", bin.display()).into());
            }
            // Connection refused comes back at once: poll again almost at once.
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }

    async fn channel(&self) -> Result<Channel, Error> {
        Ok(
            Endpoint::from_shared(format!("http://127.0.0.1:{}", self.port))?
                .connect()
                .await?,
        )
    }

    fn rss_mib(&self) -> f64 {
        rss_kib(self.child.id()).map_or(0.0, |k| k as f64 / 1024.0)
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

/// Settings of the service measurements.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub rss_records: Vec<usize>,
    pub list_records: usize,
    pub small_records: usize,
    pub start_reps: usize,
    pub list_calls: usize,
}

pub async fn measure(bin: &Path, cfg: &ServiceConfig) -> Result<Value, Error> {
    // Start to SERVING: a fresh process each time (sample data only, and the
    // first RSS size), median of `start_reps`.
    let mut starts = serde_json::Map::new();
    let mut rss = serde_json::Map::new();
    let mut start_sizes = vec![0];
    start_sizes.extend(cfg.rss_records.first().copied());
    for &n in &start_sizes {
        let mut ms = Vec::new();
        for _ in 0..cfg.start_reps {
            let server = Server::start(bin, n).await?;
            ms.push(server.ready.as_secs_f64() * 1000.0);
        }
        let all = ms.iter().map(|x| round3(*x)).collect::<Vec<_>>();
        starts.insert(
            (n + SAMPLES).to_string(),
            json!({"median_ms": round3(median(&mut ms)), "runs_ms": all}),
        );
        eprintln!(
            "  start to SERVING, {} records: {:.1} ms (median of {})",
            n + SAMPLES,
            median(&mut ms),
            cfg.start_reps
        );
    }

    // Memory: RSS once SERVING and settled.
    let mut sizes = vec![0];
    sizes.extend(&cfg.rss_records);
    let mut list = Value::Null;
    for &n in &sizes {
        let server = Server::start(bin, n).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mib = server.rss_mib();
        rss.insert((n + SAMPLES).to_string(), json!(round1(mib)));
        eprintln!(
            "  RSS with {} records: {mib:.1} MiB (ready in {:.0} ms)",
            n + SAMPLES,
            server.ready.as_secs_f64() * 1000.0
        );
        if n == cfg.list_records {
            list = list_cost(server.channel().await?, n + SAMPLES, cfg.list_calls).await?;
        }
    }
    if list.is_null() {
        let server = Server::start(bin, cfg.list_records).await?;
        list = list_cost(
            server.channel().await?,
            cfg.list_records + SAMPLES,
            cfg.list_calls,
        )
        .await?;
    }
    // The same page on a small store, for comparison.
    let small = Server::start(bin, cfg.small_records).await?;
    let mut client = CustomerServiceClient::new(small.channel().await?);
    let small_page = time_page(&mut client, "", cfg.list_calls).await?;
    eprintln!(
        "  List page of 20, {} records: median {:.0} µs",
        cfg.small_records + SAMPLES,
        small_page.0
    );

    Ok(json!({
        "start_to_serving": starts,
        "rss_mib": rss,
        "list_page_20": {
            "large_store": list,
            "small_store": {"records": cfg.small_records + SAMPLES, "median_us": round1(small_page.0), "p99_us": round1(small_page.1)},
            "calls_per_position": cfg.list_calls,
        },
    }))
}

/// Median and p99 (µs) of `calls` sequential ListCustomers(page_size 20) from `token`.
async fn time_page(
    client: &mut CustomerServiceClient<Channel>,
    token: &str,
    calls: usize,
) -> Result<(f64, f64), Error> {
    let request = || ListCustomersRequest {
        page_size: 20,
        page_token: token.to_owned(),
    };
    for _ in 0..calls.min(50) {
        client.list_customers(request()).await?;
    }
    let mut us = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        let page = client.list_customers(request()).await?.into_inner();
        us.push(t.elapsed().as_secs_f64() * 1e6);
        if page.customers.is_empty() {
            return Err("ListCustomers returned an empty page".into());
        }
    }
    let p99 = percentile(&mut us, 0.99);
    Ok((median(&mut us), p99))
}

/// Walks the store behind `channel` (a service, or the gateway) with the
/// service's own page tokens and times `calls` pages of 20 at
/// the start, the middle and near the end.
pub async fn list_cost(channel: Channel, total: usize, calls: usize) -> Result<Value, Error> {
    let mut client = CustomerServiceClient::new(channel);
    // Tokens every `walk` records: 1000 on 100k, finer on a small store so
    // its middle and end are still distinct positions.
    let walk = (total / 100).clamp(20, 1000);
    let mut tokens = vec![(0usize, String::new())];
    let mut after = 0;
    let mut token = String::new();
    loop {
        let page = client
            .list_customers(ListCustomersRequest {
                page_size: i32::try_from(walk)?,
                page_token: token.clone(),
            })
            .await?
            .into_inner();
        after += page.customers.len();
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        tokens.push((after, token.clone()));
    }
    if after != total {
        return Err(format!("walked {after} records, expected {total}").into());
    }
    let pick = |target: usize| {
        tokens
            .iter()
            .min_by_key(|(a, _)| a.abs_diff(target))
            .cloned()
            .unwrap_or_default()
    };
    let mut out = serde_json::Map::new();
    out.insert("records".into(), json!(total));
    for (label, target) in [
        ("start", 0),
        ("middle", total / 2),
        ("end", total.saturating_sub(walk)),
    ] {
        let (skipped, token) = pick(target);
        let (med, p99) = time_page(&mut client, &token, calls).await?;
        eprintln!(
            "  List page of 20 at {label} (after {skipped} of {total}): median {med:.0} µs, p99 {p99:.0} µs"
        );
        out.insert(
            label.into(),
            json!({"after": skipped, "median_us": round1(med), "p99_us": round1(p99)}),
        );
    }
    Ok(Value::Object(out))
}
