//! Test utilities for the services: client-side helpers for tests against a
//! running server (ours or through the gateway: error details, health and
//! reflection over both protocols), servers started in-process or as child
//! processes, and the checks every service binary passes.

pub mod postgres;

use clap::Args;
use service_runtime::{RunningServer, ServerConfig, ServiceSpec};
use tonic::{Status, service::Routes, transport::Channel};

use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
pub use tonic_health::pb::{HealthCheckResponse, health_check_response::ServingStatus};
use tonic_types::StatusExt;

/// Boxed error for test helpers.
pub type TestError = Box<dyn std::error::Error + Send + Sync>;

/// The `BadRequest` field paths of `status`, in order.
pub fn violation_fields(status: &Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|br| br.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// Starts `spec`'s server in-process (as [`ServerConfig::for_tests`] and
/// `configure` make it) with the routes `routes` builds from that config, and
/// connects a channel to it.
pub async fn start_connected(
    spec: &ServiceSpec,
    configure: impl FnOnce(&mut ServerConfig),
    routes: impl FnOnce(&ServerConfig) -> Routes,
) -> Result<(RunningServer, Channel), TestError> {
    let mut config = ServerConfig::for_tests(spec);
    configure(&mut config);
    let routes = routes(&config);
    let server = RunningServer::start(spec, config, routes).await?;
    let channel = channel(&server.endpoint()).await?;
    Ok((server, channel))
}

/// Asserts INVALID_ARGUMENT whose `BadRequest` names exactly `fields`.
pub fn assert_invalid(status: &Status, fields: &[&str]) {
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(violation_fields(status), fields, "{status:?}");
}

/// Connects a channel to `endpoint` (e.g. `http://127.0.0.1:1234`).
pub async fn channel(endpoint: &str) -> Result<Channel, TestError> {
    Ok(Channel::from_shared(endpoint.to_owned())?.connect().await?)
}

/// `grpc.health.v1.Health/Check` for `service` (`""` is the whole server).
pub async fn health(channel: Channel, service: &str) -> Result<ServingStatus, TestError> {
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await?
        .into_inner();
    Ok(response.status())
}

/// `grpc.health.v1.Health/Watch` for `service`: the current status first,
/// then every change (e.g. NOT_SERVING once a shutdown starts). Drop the
/// stream when done: an open watch holds up the server's drain.
pub async fn health_watch(
    channel: Channel,
    service: &str,
) -> Result<tonic::Streaming<HealthCheckResponse>, TestError> {
    Ok(HealthClient::new(channel)
        .watch(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await?
        .into_inner())
}

macro_rules! list_services {
    ($name:ident, $pb:path, $doc:literal) => {
        #[doc = $doc]
        pub async fn $name(channel: Channel) -> Result<Vec<String>, TestError> {
            use pb::{
                ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
                server_reflection_request::MessageRequest,
                server_reflection_response::MessageResponse,
            };
            use $pb as pb;
            let request = ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            };
            let mut stream = ServerReflectionClient::new(channel)
                .server_reflection_info(tokio_stream::iter([request]))
                .await?
                .into_inner();
            let response = stream.message().await?.ok_or("no reflection response")?;
            match response.message_response {
                Some(MessageResponse::ListServicesResponse(list)) => {
                    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
                    names.sort();
                    Ok(names)
                }
                other => Err(format!("unexpected reflection response {other:?}").into()),
            }
        }
    };
}

list_services!(
    reflection_services_v1,
    tonic_reflection::pb::v1,
    "Services listed by `grpc.reflection.v1` (sorted)."
);
list_services!(
    reflection_services_v1alpha,
    tonic_reflection::pb::v1alpha,
    "Services listed by `grpc.reflection.v1alpha` (sorted; older grpcurl speaks only this)."
);

/// A service binary started as a child process on a free port (for tests of
/// the real executable: flags, logs, signals).
#[derive(Debug)]
pub struct ChildServer {
    child: std::process::Child,
    /// The address from the `listening` log line.
    pub addr: std::net::SocketAddr,
}

impl ChildServer {
    /// Runs `binary --port 0 --log-format json ARGS…` and waits for its
    /// `listening` log line (a readiness check, not a sleep).
    pub fn start(binary: &str, args: &[&str]) -> Result<Self, TestError> {
        use std::io::BufRead;
        let mut child = std::process::Command::new(binary)
            .args(["--port", "0", "--log-format", "json"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = std::io::BufReader::new(stdout).lines();
        let addr = loop {
            let Some(line) = lines.next() else {
                drop(child.kill());
                return Err("exited before listening".into());
            };
            let line = line?;
            if line.contains("\"message\":\"listening\"") {
                let addr = line
                    .split("\"addr\":\"")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .ok_or("no addr in the listening line")?;
                break addr.parse()?;
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Self { child, addr })
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> Result<std::process::ExitStatus, TestError> {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        if !status.success() {
            return Err("kill -TERM failed".into());
        }
        Ok(self.child.wait()?)
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            drop(self.child.kill());
            drop(self.child.wait());
        }
    }
}

/// Checks that `binary --help` documents every flag's `PREFIX_*` environment
/// name (the server's and the service's own flags `F`) and the contract's
/// defaults (the container image check runs `--help`).
pub fn check_help<F: Args>(binary: &str, spec: &ServiceSpec) -> Result<(), TestError> {
    let out = std::process::Command::new(binary).arg("--help").output()?;
    if !out.status.success() {
        return Err(format!("--help exited with {:?}", out.status).into());
    }
    let help = String::from_utf8_lossy(&out.stdout);
    let port = format!("[default: {}]", spec.default_port);
    let mut needles = ServerConfig::env_names::<F>(spec);
    needles.extend(
        [
            port.as_str(),
            "[default: 127.0.0.1]",
            "[default: 10s]",
            "[default: 5s]",
            "[default: 1024]",
            "[default: 4194304]",
        ]
        .map(str::to_owned),
    );
    match needles.iter().find(|n| !help.contains(n.as_str())) {
        Some(missing) => Err(format!("{missing} missing from --help:\n{help}").into()),
        None => Ok(()),
    }
}

/// Checks that `binary`'s human log lines carry no ANSI escape codes when
/// stdout is a pipe (as for a log file): starts it, reads up to its
/// `listening` line, stops it.
pub fn check_plain_logs_when_piped(binary: &str) -> Result<(), TestError> {
    use std::io::BufRead;
    let mut child = std::process::Command::new(binary)
        .args(["--port", "0", "--log-format", "human"])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut seen = Vec::new();
    let mut listening = false;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line?;
        listening = line.contains("listening");
        seen.push(line);
        if listening {
            break;
        }
    }
    drop(child.kill());
    drop(child.wait());
    if !listening {
        return Err(format!("exited before listening: {seen:?}").into());
    }
    match seen.iter().find(|line| line.contains('\u{1b}')) {
        Some(line) => Err(format!("ANSI escape in a piped log line: {line:?}").into()),
        None => Ok(()),
    }
}

/// Checks that a bad `PREFIX_DRAIN_TIMEOUT` is rejected with a usage error.
pub fn check_env_is_read(binary: &str, spec: &ServiceSpec) -> Result<(), TestError> {
    let out = std::process::Command::new(binary)
        .env(
            format!("{}_DRAIN_TIMEOUT", spec.env_prefix),
            "not a duration",
        )
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || !stderr.contains("drain-timeout") {
        return Err(format!("bad env value accepted: {:?} {stderr}", out.status).into());
    }
    Ok(())
}

/// Starts `binary`, checks health SERVING for its service, sends SIGTERM and
/// checks it exits 0 well before its (30 s) drain timeout once idle
/// connections close.
pub async fn check_serves_then_exits_zero_on_sigterm(
    binary: &str,
    spec: &ServiceSpec,
) -> Result<(), TestError> {
    let server = ChildServer::start(binary, &["--drain-timeout", "30s"])?;
    let status = health(channel(&server.endpoint()).await?, spec.service_name).await?;
    if status != ServingStatus::Serving {
        return Err(format!("health is {status:?}").into());
    }
    // Keep this runtime (and so the client's connection) running while the
    // server drains: the client closes the idle connection after GOAWAY.
    let started = std::time::Instant::now();
    let exit = tokio::task::spawn_blocking(move || server.terminate()).await??;
    let elapsed = started.elapsed();
    if !exit.success() || elapsed > std::time::Duration::from_secs(10) {
        return Err(format!("exit {exit:?} after {elapsed:?}").into());
    }
    Ok(())
}
