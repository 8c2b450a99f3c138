//! Load runs: ghz for gRPC (direct and through the gateway), vegeta for REST
//! through the gateway's transcoder. Each run is one tool invocation; its
//! JSON summary is parsed into a [`RunResult`].

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::{Value, json};

use crate::procs::{Sampler, Usage, Watched, round1};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The customer every Get asks for (present in every store: a sample record).
pub const GET_ID: &str = "cus_000002";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path3 {
    /// gRPC straight to customer-service.
    Direct,
    /// gRPC through Envoy (GRPCRoute).
    Gateway,
    /// REST through Envoy (gRPC-JSON transcoder, then the same GRPCRoute).
    Rest,
}

impl Path3 {
    pub const ALL: [Path3; 3] = [Path3::Direct, Path3::Gateway, Path3::Rest];
    pub fn label(self) -> &'static str {
        match self {
            Path3::Direct => "direct gRPC",
            Path3::Gateway => "gateway gRPC",
            Path3::Rest => "gateway REST",
        }
    }
    pub fn key(self) -> &'static str {
        match self {
            Path3::Direct => "direct_grpc",
            Path3::Gateway => "gateway_grpc",
            Path3::Rest => "gateway_rest",
        }
    }
}

/// A path by its key (`--paths gateway_grpc,gateway_rest`).
impl std::str::FromStr for Path3 {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Path3::ALL
            .into_iter()
            .find(|p| p.key() == s)
            .ok_or_else(|| {
                let keys: Vec<&str> = Path3::ALL.iter().map(|p| p.key()).collect();
                format!("unknown path {s:?} (one of {})", keys.join(", "))
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    List,
    Create,
}

impl Method {
    pub const ALL: [Method; 3] = [Method::Get, Method::List, Method::Create];
    pub fn label(self) -> &'static str {
        match self {
            Method::Get => "GetCustomer",
            Method::List => "ListCustomers(20)",
            Method::Create => "CreateCustomer",
        }
    }
    fn rpc(self) -> &'static str {
        match self {
            Method::Get => "customer.v1.CustomerService/GetCustomer",
            Method::List => "customer.v1.CustomerService/ListCustomers",
            Method::Create => "customer.v1.CustomerService/CreateCustomer",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Fixed concurrency, as fast as it goes.
    Max,
    /// A fixed request rate (open loop).
    Rate,
}

impl Mode {
    pub fn key(self) -> &'static str {
        match self {
            Mode::Max => "max",
            Mode::Rate => "rate",
        }
    }
}

/// Settings shared by every run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub duration: Duration,
    pub rate: u32,
    pub concurrency: u32,
    pub connections: u32,
    /// Cores the load tool may use (GOMAXPROCS), so the servers keep the rest.
    pub tool_cpus: u32,
    pub direct: String,
    pub gateway: String,
    pub protoset: PathBuf,
    pub work: PathBuf,
    /// Unique per bench invocation, so Create never collides with an earlier run.
    pub tag: String,
}

#[derive(Debug, Clone)]
pub struct RunResult {
    pub path: Path3,
    pub method: Method,
    pub mode: Mode,
    pub tool: &'static str,
    pub requests: u64,
    pub ok: u64,
    /// Requests in flight when the load tool stopped (client-side cut, not errors).
    pub cut: u64,
    /// Successful requests per second.
    pub rps: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub errors: Value,
    pub usage: Vec<Usage>,
}

impl RunResult {
    pub fn errors_count(&self) -> u64 {
        self.requests
            .saturating_sub(self.ok)
            .saturating_sub(self.cut)
    }
    pub fn to_json(&self) -> Value {
        json!({
            "path": self.path.key(), "method": self.method.label(), "mode": self.mode.key(),
            "tool": self.tool, "requests": self.requests, "ok": self.ok,
            "errors": self.errors_count(), "cut_at_end": self.cut, "error_detail": self.errors,
            "rps": round1(self.rps),
            "latency_ms": {"p50": round3(self.p50_ms), "p90": round3(self.p90_ms), "p99": round3(self.p99_ms)},
            "processes": self.usage.iter().map(Usage::to_json).collect::<Vec<_>>(),
        })
    }
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Runs one (path, method, mode) and samples `watched` meanwhile.
pub fn run(
    cfg: &LoadConfig,
    path: Path3,
    method: Method,
    mode: Mode,
    watched: &[Watched],
) -> Result<RunResult, Error> {
    let name = format!(
        "{}-{}-{}",
        path.key(),
        mode.key(),
        method.rpc().rsplit('/').next().unwrap_or("m")
    );
    match path {
        Path3::Direct | Path3::Gateway => {
            let addr = if path == Path3::Direct {
                &cfg.direct
            } else {
                &cfg.gateway
            };
            ghz(cfg, addr, path, method, mode, watched, &name)
        }
        Path3::Rest => vegeta(cfg, method, mode, watched, &name),
    }
}

fn ns_to_ms(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0) / 1e6
}

fn ghz(
    cfg: &LoadConfig,
    addr: &str,
    path: Path3,
    method: Method,
    mode: Mode,
    watched: &[Watched],
    name: &str,
) -> Result<RunResult, Error> {
    let data = match method {
        Method::Get => format!(r#"{{"id":"{GET_ID}"}}"#),
        Method::List => r#"{"page_size":20}"#.to_owned(),
        // {{.RequestNumber}} is unique per request within the run.
        Method::Create => format!(
            r#"{{"customer":{{"name":"Bench User","email":"bench-{}-{}-{}-{{{{.RequestNumber}}}}@example.com"}}}}"#,
            cfg.tag,
            path.key(),
            mode.key()
        ),
    };
    let out_file = cfg.work.join(format!("{name}.json"));
    let mut cmd = Command::new("ghz");
    cmd.args(["--insecure", "--protoset"])
        .arg(&cfg.protoset)
        .args(["--call", method.rpc(), "-d", &data])
        .args(["-c", &cfg.concurrency.to_string()])
        .args(["--connections", &cfg.connections.to_string()])
        .args(["-z", &format!("{}ms", cfg.duration.as_millis())])
        .args(["-O", "json", "-o"])
        .arg(&out_file);
    if mode == Mode::Rate {
        cmd.args(["-r", &cfg.rate.to_string()]);
    }
    cmd.args(["--cpus", &cfg.tool_cpus.to_string()]);
    cmd.arg(addr).stdout(Stdio::null()).stderr(Stdio::piped());
    let child = cmd
        .spawn()
        .map_err(|e| format!("ghz: {e} (installed by `just bench`)"))?;
    let mut watch = watched.to_vec();
    watch.push(Watched {
        name: "ghz".into(),
        pid: child.id(),
    });
    let sampler = Sampler::start(watch);
    let output = child.wait_with_output()?;
    let usage = sampler.finish();
    if !output.status.success() {
        return Err(format!(
            "ghz {name} failed: {} {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let report: Value = serde_json::from_slice(&std::fs::read(&out_file)?)
        .map_err(|e| format!("ghz {name}: bad JSON in {}: {e}", out_file.display()))?;
    let requests = report["count"].as_u64().unwrap_or(0);
    let ok = report["statusCodeDistribution"]["OK"].as_u64().unwrap_or(0);
    // When the duration is up ghz closes its connections with requests in
    // flight; those fail on the client side and say nothing about the server.
    let cut = report["errorDistribution"].as_object().map_or(0, |m| {
        m.iter()
            .filter(|(msg, _)| {
                msg.contains("use of closed network connection")
                    || msg.contains("the client connection is closing")
            })
            .filter_map(|(_, n)| n.as_u64())
            .sum()
    });
    let total_s = report["total"].as_f64().unwrap_or(0.0) / 1e9;
    let pct = |p: u64| {
        report["latencyDistribution"]
            .as_array()
            .and_then(|d| d.iter().find(|e| e["percentage"].as_u64() == Some(p)))
            .map_or(0.0, |e| ns_to_ms(&e["latency"]))
    };
    let mut errors = report["statusCodeDistribution"].clone();
    if let Some(map) = errors.as_object_mut() {
        map.remove("OK");
    }
    if let Some(messages) = report["errorDistribution"].as_object() {
        let some: Vec<Value> = messages
            .iter()
            .take(3)
            .map(|(m, n)| json!({"message": short(m), "count": n}))
            .collect();
        errors = json!({"codes": errors, "messages": some, "distinct_messages": messages.len()});
    }
    Ok(RunResult {
        path,
        method,
        mode,
        tool: "ghz",
        requests,
        ok,
        cut,
        rps: if total_s > 0.0 {
            ok as f64 / total_s
        } else {
            0.0
        },
        p50_ms: pct(50),
        p90_ms: pct(90),
        p99_ms: pct(99),
        errors,
        usage,
    })
}

/// An error message cut to a readable length.
fn short(message: &str) -> String {
    message.chars().take(160).collect()
}

/// A vegeta JSON target for request number `i`.
fn rest_target(cfg: &LoadConfig, method: Method, mode: Mode, i: u64) -> String {
    let base = format!("http://{}", cfg.gateway);
    match method {
        Method::Get => format!(r#"{{"method":"GET","url":"{base}/customers/{GET_ID}"}}"#),
        Method::List => format!(r#"{{"method":"GET","url":"{base}/customers?page_size=20"}}"#),
        Method::Create => {
            let body = format!(
                r#"{{"name":"Bench User","email":"bench-{}-rest-{}-{i}@example.com"}}"#,
                cfg.tag,
                mode.key()
            );
            format!(
                r#"{{"method":"POST","url":"{base}/customers","body":"{}","header":{{"Content-Type":["application/json"]}}}}"#,
                STANDARD.encode(body)
            )
        }
    }
}

fn vegeta(
    cfg: &LoadConfig,
    method: Method,
    mode: Mode,
    watched: &[Watched],
    name: &str,
) -> Result<RunResult, Error> {
    let bin = cfg.work.join(format!("{name}.bin"));
    let mut cmd = Command::new("vegeta");
    cmd.args([
        "attack",
        "-format=json",
        "-lazy",
        "-timeout=10s",
        "-keepalive=true",
    ])
    .arg(format!("-duration={}ms", cfg.duration.as_millis()))
    .arg(format!("-output={}", bin.display()));
    match mode {
        Mode::Max => cmd.args([
            "-rate=0".to_owned(),
            format!("-workers={}", cfg.concurrency),
            format!("-max-workers={}", cfg.concurrency),
        ]),
        Mode::Rate => cmd.arg(format!("-rate={}/1s", cfg.rate)),
    };
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("vegeta: {e} (installed by `just bench`)"))?;
    let stdin = child.stdin.take().ok_or("vegeta: no stdin")?;
    // Targets are generated lazily (unique e-mails for Create) until vegeta
    // stops reading; the write then fails and the thread ends.
    let gen_cfg = cfg.clone();
    let feeder = std::thread::spawn(move || {
        let mut w = std::io::BufWriter::with_capacity(64 * 1024, stdin);
        let mut i = 0u64;
        loop {
            if writeln!(w, "{}", rest_target(&gen_cfg, method, mode, i)).is_err() {
                break;
            }
            i += 1;
        }
    });
    let mut watch = watched.to_vec();
    watch.push(Watched {
        name: "vegeta".into(),
        pid: child.id(),
    });
    let sampler = Sampler::start(watch);
    let output = child.wait_with_output()?;
    let usage = sampler.finish();
    drop(feeder.join());
    if !output.status.success() {
        return Err(format!(
            "vegeta {name} failed: {} {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let out = Command::new("vegeta")
        .args(["report", "-type=json"])
        .arg(&bin)
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "vegeta report {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    std::fs::write(cfg.work.join(format!("{name}.json")), &out.stdout)?;
    // The raw results are large (tens of MB per run); the summary is kept.
    drop(std::fs::remove_file(&bin));
    let report: Value = serde_json::from_slice(&out.stdout)?;
    let requests = report["requests"].as_u64().unwrap_or(0);
    let success = report["success"].as_f64().unwrap_or(0.0);
    let ok = (requests as f64 * success).round() as u64;
    let lat = &report["latencies"];
    let mut codes = report["status_codes"].clone();
    if let Some(map) = codes.as_object_mut() {
        map.retain(|code, _| !code.starts_with('2'));
    }
    let messages: Vec<Value> = report["errors"]
        .as_array()
        .map(|m| {
            m.iter()
                .take(3)
                .map(|e| json!(short(e.as_str().unwrap_or(""))))
                .collect()
        })
        .unwrap_or_default();
    Ok(RunResult {
        path: Path3::Rest,
        method,
        mode,
        tool: "vegeta",
        requests,
        ok,
        cut: 0,
        rps: report["throughput"].as_f64().unwrap_or(0.0),
        p50_ms: ns_to_ms(&lat["50th"]),
        p90_ms: ns_to_ms(&lat["90th"]),
        p99_ms: ns_to_ms(&lat["99th"]),
        errors: json!({"codes": codes, "messages": messages}),
        usage,
    })
}

/// Writes the API descriptor set (what ghz needs instead of reflection).
pub fn write_protoset(dir: &Path) -> Result<PathBuf, Error> {
    let path = dir.join("api.protoset");
    std::fs::write(&path, api::DESCRIPTOR_SET)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_from_their_keys_and_nothing_else() {
        for path in Path3::ALL {
            assert_eq!(path.key().parse::<Path3>(), Ok(path));
        }
        let err = "gateway".parse::<Path3>().unwrap_err();
        assert!(
            err.contains("direct_grpc, gateway_grpc, gateway_rest"),
            "{err}"
        );
    }
}
