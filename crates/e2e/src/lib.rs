//! Clients for the end-to-end tests: REST (reqwest) and gRPC (tonic) through
//! the gateway, each bound to its own loopback source address.
//!
//! The gateway's rate limits are per client IP. Every test that cares about
//! limits takes a fresh address from 127.0.0.0/8 ([`fresh_client_ip`]), so it
//! starts with full buckets whatever ran before it, in this run or the last.

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::{
        OnceLock,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use tonic::transport::{Channel, Endpoint};

pub use service_testing::TestError;

/// `kubectl --context $E2E_KUBE_CONTEXT ARGS` (the cluster under test, set
/// by `just test-cluster`): its stdout; panics with kubectl's own words when
/// it fails, failing the test that asked.
pub fn kubectl(args: &[&str]) -> String {
    let context = std::env::var("E2E_KUBE_CONTEXT").unwrap_or_else(|_| {
        panic!("E2E_KUBE_CONTEXT names the cluster's kubectl context (just test-cluster sets it)")
    });
    let output = std::process::Command::new("kubectl")
        .args(["--context", &context])
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("kubectl: {err}"));
    assert!(
        output.status.success(),
        "kubectl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Every value of the response header `name`, joined with ", " (the two
/// rate-limit tiers each add their `x-ratelimit-limit`).
pub fn header_values(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap_or_default())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where the gateway listens; `E2E_GATEWAY` overrides (e.g. a cluster's).
pub fn gateway_url() -> String {
    std::env::var("E2E_GATEWAY").unwrap_or_else(|_| "http://127.0.0.1:8080".to_owned())
}

/// The service table (envoy-ext/services.toml) the gateway objects are
/// rendered from, parsed once: the tests take names, limits and the Envoy
/// pod selector from it. Panics (failing the test that asked) if it does not
/// parse; `cargo test -p envoy-ext` says why.
pub fn service_table() -> &'static envoy_ext::services::ServiceTable {
    static TABLE: OnceLock<envoy_ext::services::ServiceTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        envoy_ext::services::ServiceTable::committed()
            .unwrap_or_else(|err| panic!("the committed service table: {err}"))
    })
}

/// Rate limits per minute, from the service table that
/// k8s/gateway/backend-traffic.yaml and k8s/auth are rendered from, so the
/// tests expect whatever the gateway is configured with.
pub mod limits {
    use envoy_ext::services::Service;

    use crate::service_table as table;

    /// The table's row of a service.
    pub fn service(name: &str) -> &'static Service {
        table()
            .service(name)
            .unwrap_or_else(|| panic!("no service {name} in envoy-ext/services.toml"))
    }

    /// Per client IP, REST and gRPC together, on /customers.
    pub fn customers_per_minute() -> u32 {
        service("customer-service").limit_per_minute
    }

    /// Each Envoy's own per-client limit on /customers where the global
    /// tier runs (the burst guard).
    pub fn customers_burst_guard_per_minute() -> u32 {
        service("customer-service").burst_guard_per_minute(&super::service_table().gateway)
    }

    /// Per client IP on /products.
    pub fn products_per_minute() -> u32 {
        service("product-service").limit_per_minute
    }

    /// Per authenticated user on /customers (with the auth layer).
    pub fn customers_per_user_per_minute() -> u32 {
        service("customer-service").user_limit_per_minute
    }

    /// The gateway-wide default, for routes without their own policy
    /// (reflection).
    pub fn gateway_default_per_minute() -> u32 {
        table().gateway.default_limit_per_minute
    }
}

/// A client address no other test has used in the last two minutes, in this
/// process or any other.
///
/// Each test process claims a block of addresses of its own ([`claim_block`]):
/// the suites run as separate processes, and two of them drawing from the
/// same block within a minute would share a rate-limit bucket. Locally a
/// block is 127.<block>.0.0/16 (all of 127.0.0.0/8 is the host's own).
/// Against the local Kubernetes cluster loopback sources cannot leave the
/// host, so `E2E_CLIENT_CIDR` names a /16 the host answers on as its own
/// (`k8s/local-cluster/cluster.sh` routes 10.245.0.0/16 to lo), and a block
/// is <a>.<b>.<block>.0/24.
pub fn fresh_client_ip() -> IpAddr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static BLOCK: OnceLock<u8> = OnceLock::new();
    let block =
        *BLOCK.get_or_init(|| claim_block(&std::env::temp_dir().join("envoy-poc-e2e-clients")));
    client_ip(
        client_network(),
        block,
        NEXT.fetch_add(1, Ordering::Relaxed),
    )
}

/// Blocks 2..=251: never 127.0.x.x or 127.1.x.x (127.0.0.1 is the humans').
const BLOCKS: std::ops::RangeInclusive<u8> = 2..=251;
/// A claim older than this has refilled every bucket its addresses used.
const CLAIM_EXPIRES: Duration = Duration::from_secs(120);

/// Claims a block for this process with a marker file that only one process
/// can create, taking over claims that have expired.
fn claim_block(dir: &std::path::Path) -> u8 {
    std::fs::create_dir_all(dir).unwrap_or_else(|err| panic!("{}: {err}", dir.display()));
    let start = std::process::id() as usize % BLOCKS.len();
    for block in BLOCKS.cycle().skip(start).take(BLOCKS.len()) {
        let marker = dir.join(block.to_string());
        let expired = std::fs::metadata(&marker)
            .and_then(|meta| meta.modified())
            .is_ok_and(|at| at.elapsed().is_ok_and(|age| age > CLAIM_EXPIRES));
        if expired {
            // Another process may take it over at the same time: only one
            // create_new below succeeds.
            let _ = std::fs::remove_file(&marker);
        }
        if std::fs::File::create_new(&marker).is_ok() {
            return block;
        }
    }
    panic!("every client address block in {} is claimed", dir.display())
}

/// The `n`th client address of `block`; the last octet is never .0 or .255.
/// In a /16 network a block has 254 addresses, reused from the first after
/// that (a test process uses a few dozen).
fn client_ip(network: Option<[u8; 2]>, block: u8, n: u32) -> IpAddr {
    let hi = n / 254;
    let lo = (n % 254 + 1) as u8;
    match network {
        Some([a, b]) => IpAddr::V4(Ipv4Addr::new(a, b, block, lo)),
        None => IpAddr::V4(Ipv4Addr::new(127, block, (hi % 256) as u8, lo)),
    }
}

/// The first two octets of `E2E_CLIENT_CIDR` (a /16), if set.
fn client_network() -> Option<[u8; 2]> {
    let cidr = std::env::var("E2E_CLIENT_CIDR").ok()?;
    let network = parse_client_cidr(&cidr)
        .unwrap_or_else(|| panic!("E2E_CLIENT_CIDR={cidr:?}: want a /16 such as 10.245.0.0/16"));
    Some(network)
}

fn parse_client_cidr(cidr: &str) -> Option<[u8; 2]> {
    let (addr, len) = cidr.split_once('/')?;
    let addr: Ipv4Addr = addr.parse().ok()?;
    let [a, b, 0, 0] = addr.octets() else {
        return None;
    };
    (len == "16").then_some([a, b])
}

/// A REST client whose requests come from `ip`.
pub fn rest_client(ip: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_else(|err| panic!("building the HTTP client failed: {err}"))
}

/// A gRPC channel to the gateway whose calls come from `ip`.
pub async fn grpc_channel(ip: IpAddr) -> Result<Channel, TestError> {
    let endpoint = Endpoint::from_shared(gateway_url())?
        .local_address(Some(ip))
        .timeout(Duration::from_secs(10));
    endpoint.connect().await.map_err(|err| {
        format!(
            "cannot reach the gateway at {}: {err} (is the stack up? `just up`)",
            gateway_url()
        )
        .into()
    })
}

/// Sends a REST request; returns the status and the parsed JSON body. Every
/// answer through the gateway must be JSON, errors included.
pub async fn call(request: reqwest::RequestBuilder) -> (reqwest::StatusCode, serde_json::Value) {
    let response = request
        .send()
        .await
        .unwrap_or_else(|err| panic!("the gateway does not answer: {err}"));
    let status = response.status();
    let content_type = content_type(&response);
    let text = response
        .text()
        .await
        .unwrap_or_else(|err| panic!("{status}: unreadable body: {err}"));
    assert!(
        content_type.starts_with("application/json"),
        "{status}: content-type {content_type:?}, body {text:.300}"
    );
    let body =
        serde_json::from_str(&text).unwrap_or_else(|err| panic!("{status}: {err}: {text:.300}"));
    (status, body)
}

/// The response's content-type, or "" without one.
pub fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Asserts a google.rpc.Status-shaped JSON error body with this gRPC code.
pub fn assert_error(body: &serde_json::Value, grpc_code: i64) {
    assert_eq!(body["code"], grpc_code, "{body:.300}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body:.300}"
    );
    assert!(body["details"].is_array(), "{body:.300}");
}

/// `path` on the gateway, e.g. `/customers`.
pub fn url(path: &str) -> String {
    format!("{}{path}", gateway_url())
}

/// A value unique to this call, for emails and SKUs that must not collide
/// with earlier runs against the same long-running stack.
pub fn unique_suffix() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{nanos:x}{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The most requests a token bucket of `per_minute` may admit within
/// `elapsed` starting full: Envoy refills continuously (one token every
/// 60/per_minute seconds), so a burst that takes time earns a few more.
pub fn max_admitted(per_minute: u32, elapsed: Duration) -> u32 {
    let refilled = (elapsed.as_secs_f64() * f64::from(per_minute) / 60.0).ceil() as u32;
    per_minute + refilled + 1
}

/// The rate-limit tier that refuses a client first on the gateway under
/// test, from `E2E_RATE_LIMIT_TIER` (`local` unless set; `just
/// test-cluster` sets `global`: the cluster overlay runs k8s/global-limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Each Envoy's token bucket, refilled continuously.
    Local,
    /// Envoy's rate-limit service, fixed windows aligned to the minute.
    Global,
}

pub fn tier() -> Tier {
    match std::env::var("E2E_RATE_LIMIT_TIER").as_deref() {
        Err(_) | Ok("local") => Tier::Local,
        Ok("global") => Tier::Global,
        Ok(other) => panic!("E2E_RATE_LIMIT_TIER={other:?}: expected local or global"),
    }
}

/// A burst of calls from one fresh client address against a service's
/// limit, timed to bound what the tier may admit.
pub struct Burst {
    started: Instant,
    started_at: SystemTime,
}

impl Burst {
    pub fn start() -> Self {
        Self {
            started: Instant::now(),
            started_at: SystemTime::now(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// How many calls the service's tier may admit by now: at least the
    /// limit, plus the local tier's refill ([`max_admitted`]) or, for the
    /// global tier, a whole limit more for each window boundary the burst
    /// crossed (its counter starts again from zero there).
    pub fn admits(&self, per_minute: u32) -> std::ops::RangeInclusive<u32> {
        match tier() {
            Tier::Local => per_minute..=max_admitted(per_minute, self.elapsed()),
            Tier::Global => {
                let windows = windows_touched(self.started_at, SystemTime::now());
                per_minute..=per_minute * windows
            }
        }
    }
}

/// How many minute-aligned windows `from..=to` touches (1 within one).
fn windows_touched(from: SystemTime, to: SystemTime) -> u32 {
    let minute = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() / 60)
            .unwrap_or(0)
    };
    u32::try_from(minute(to).saturating_sub(minute(from)) + 1).unwrap_or(u32::MAX)
}

/// The local stack as the stack runner (crates/stack) runs it, for the
/// fault tests that kill and restart service instances (`just test-faults`
/// runs them under `cargo stack run ha`). `stack run` tells the command
/// where the stack is: `STACK_PROFILE`, `STACK_STATE_DIR`, `STACK_BIN`.
pub mod load;

/// Waits until the current minute has at least `needed` left: the global
/// rate-limit tier counts in fixed windows aligned to the minute, so a test
/// that starts early in one and ends inside it sees exact counts.
pub async fn start_of_a_window(needed: Duration) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let into = Duration::from_millis(u64::try_from(now.as_millis() % 60_000).unwrap_or(0));
    // A second of margin on both sides for clocks and in-flight calls.
    if into < Duration::from_secs(1) || into + needed > Duration::from_secs(59) {
        let wait = Duration::from_secs(61).saturating_sub(into);
        println!(
            "waiting {:.1} s for a fresh rate-limit window",
            wait.as_secs_f64()
        );
        tokio::time::sleep(wait).await;
    }
}

pub mod stack {
    use std::{
        path::{Path, PathBuf},
        process::Command,
    };

    use super::TestError;

    fn repo_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// The profile the tests run against (`dev` unless `stack run` says).
    pub fn profile() -> String {
        std::env::var("STACK_PROFILE").unwrap_or_else(|_| "dev".to_owned())
    }

    /// Where the stack keeps its pid files and logs.
    pub fn state_dir() -> PathBuf {
        std::env::var_os("STACK_STATE_DIR").map_or_else(
            || repo_root().join(".local/stack").join(profile()),
            PathBuf::from,
        )
    }

    /// The log file of a process the stack runs, e.g. `customer-service`
    /// or `envoy-gateway` (which includes Envoy's access log).
    pub fn log_file(name: &str) -> PathBuf {
        state_dir().join("logs").join(format!("{name}.log"))
    }

    /// The pid of a running instance, e.g. `customer-service-2`. A pid file
    /// holds `<pid> <start time>`.
    pub fn pid(name: &str) -> Result<u32, TestError> {
        let file = state_dir().join("pids").join(format!("{name}.pid"));
        let text = std::fs::read_to_string(&file)
            .map_err(|err| format!("{}: {err} (is the stack up?)", file.display()))?;
        let pid = text
            .split_whitespace()
            .next()
            .ok_or_else(|| format!("{}: empty", file.display()))?;
        Ok(pid.parse()?)
    }

    /// Sends `signal` (`KILL`, `TERM`) to the instance's process group, as
    /// the runner's own stop does, without waiting.
    pub fn signal(name: &str, signal: &str) -> Result<(), TestError> {
        let group = format!("-{}", pid(name)?);
        let status = Command::new("kill")
            .args(["-s", signal, "--", &group])
            .status()?;
        if !status.success() {
            return Err(format!("kill -s {signal} {name}: {status}").into());
        }
        Ok(())
    }

    /// `stack restart PROFILE NAME`: SIGTERM, wait for the drain and the
    /// exit, start again, wait until it listens. Blocks; use `spawn_blocking`.
    pub fn restart(name: &str) -> Result<(), TestError> {
        // The binary `stack run` runs as (cargo would wait for the build
        // lock the running `cargo test` holds).
        let bin = std::env::var_os("STACK_BIN")
            .map_or_else(|| repo_root().join("target/debug/stack"), PathBuf::from);
        let output = Command::new(&bin)
            .args(["restart", &profile(), name])
            .output()
            .map_err(|err| format!("{}: {err} (build it: cargo build -p stack)", bin.display()))?;
        if !output.status.success() {
            return Err(format!(
                "{} restart {} {name}: {}\n{}",
                bin.display(),
                profile(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_within_a_minute_touches_one_window_and_each_boundary_adds_one() {
        let at = |secs| UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(windows_touched(at(120), at(179)), 1);
        assert_eq!(windows_touched(at(179), at(180)), 2);
        assert_eq!(windows_touched(at(150), at(250)), 3);
        assert_eq!(windows_touched(at(200), at(100)), 1, "a clock step back");
    }

    #[test]
    fn each_process_claims_a_block_of_its_own() {
        let dir = std::env::temp_dir().join(format!("e2e-claim-test-{}", std::process::id()));
        let first = claim_block(&dir);
        let second = claim_block(&dir);
        assert_ne!(first, second);
        assert!(BLOCKS.contains(&first) && BLOCKS.contains(&second));
        // An expired claim is taken over.
        let marker = std::fs::File::options()
            .write(true)
            .open(dir.join(first.to_string()))
            .unwrap();
        marker
            .set_modified(SystemTime::now() - 2 * CLAIM_EXPIRES)
            .unwrap();
        let dirs_blocks: Vec<u8> = (0..BLOCKS.len() - 2).map(|_| claim_block(&dir)).collect();
        assert!(
            dirs_blocks.contains(&first),
            "the expired block was not reused"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn client_cidr_must_be_a_slash_16() {
        assert_eq!(parse_client_cidr("10.245.0.0/16"), Some([10, 245]));
        assert_eq!(parse_client_cidr("10.245.0.0/24"), None);
        assert_eq!(parse_client_cidr("10.245.1.0/16"), None);
        assert_eq!(parse_client_cidr("not-an-address/16"), None);
    }

    /// The YAML document of the BackendTrafficPolicy named `name`.
    fn policy(name: &str) -> String {
        let yaml = include_str!("../../../k8s/gateway/backend-traffic.yaml");
        yaml.split("\n---\n")
            .find(|doc| doc.contains(&format!("\n  name: {name}\n")))
            .unwrap_or_else(|| panic!("no policy {name}"))
            .to_owned()
    }

    #[test]
    fn limits_match_the_gateway_config() {
        for (name, per_minute) in [
            ("customer-service", limits::customers_per_minute()),
            ("product-service", limits::products_per_minute()),
            ("gateway-wide", limits::gateway_default_per_minute()),
        ] {
            let doc = policy(name);
            assert!(
                doc.contains(&format!("requests: {per_minute}\n")) && doc.contains("unit: Minute"),
                "{name}: expected {per_minute}/minute in\n{doc}"
            );
        }
    }

    fn assert_distinct(ips: &[IpAddr]) {
        let mut unique = ips.to_vec();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ips.len());
    }

    #[test]
    fn fresh_ips_are_distinct_loopback_and_never_the_default() {
        let ips: Vec<IpAddr> = (0..300).map(|n| client_ip(None, 2, n)).collect();
        for ip in &ips {
            assert!(ip.is_loopback());
            assert_ne!(*ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        assert_distinct(&ips);
    }

    #[test]
    fn fresh_ips_stay_in_the_client_network() {
        let ips: Vec<IpAddr> = (0..254)
            .map(|n| client_ip(Some([10, 245]), 251, n))
            .collect();
        for ip in &ips {
            let IpAddr::V4(v4) = ip else {
                panic!("{ip} is not IPv4")
            };
            assert_eq!(v4.octets()[..2], [10, 245], "{ip}");
            assert!(!matches!(v4.octets()[3], 0 | 255), "{ip}");
        }
        assert_distinct(&ips);
    }
}
