//! The Kubernetes path: service images, the offline checks of the manifests
//! (`test-k8s`, `check-auth`), and deploy / smoke / undeploy against the
//! current kubectl context. The local cluster itself stays bash
//! (k8s/local-cluster); everything here works against any cluster.

pub mod address;
pub mod auth;
pub mod cluster;
pub mod cmd;
pub mod context;
pub mod deploy;
pub mod image;
pub mod image_check;
pub mod kustomize;
pub mod offline;
pub mod smoke;
mod task;
pub mod translate;

pub use task::{Task, run};

use std::{
    io,
    path::{Path, PathBuf},
    process::ExitStatus,
    sync::LazyLock,
    thread,
    time::{Duration, Instant},
};

use envoy_ext::services::ServiceTable;

/// The service table (envoy-ext/services.toml), compiled in.
#[allow(clippy::expect_used)] // compiled in and checked by envoy-ext's own tests
pub fn table() -> &'static ServiceTable {
    static TABLE: LazyLock<ServiceTable> = LazyLock::new(|| {
        ServiceTable::committed().expect("envoy-ext/services.toml is valid (envoy-ext's tests)")
    });
    &TABLE
}

/// The services of the table, each an image, a Deployment and a GRPCRoute
/// of the same name.
pub static SERVICES: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| table().services.iter().map(|s| s.name.as_str()).collect());
/// Where the services, the Gateway and its policies live.
pub const NAMESPACE: &str = "envoy-poc";
/// Where the Envoy Gateway helm release (and the Envoy pods it creates) live.
pub const EG_NAMESPACE: &str = "envoy-gateway-system";
/// The Gateway's name (k8s/gateway/gateway.yaml).
pub const GATEWAY: &str = "eg";
/// Every pod of ours carries this label (k8s/base).
pub const APP_SELECTOR: &str = "app.kubernetes.io/part-of=envoy-poc";

/// Envoy Gateway labels the Envoy Deployment and Service it creates for a
/// Gateway with the Gateway's name and namespace: the one way to find them.
pub fn envoy_selector() -> String {
    format!(
        "gateway.envoyproxy.io/owning-gateway-name={GATEWAY},\
         gateway.envoyproxy.io/owning-gateway-namespace={NAMESPACE}"
    )
}

/// The gRPC service a service crate serves, from its row: `customer-service`
/// -> `customer.v1.CustomerService`. A name outside the table yields a
/// name no server has, so the check that uses it fails and says so.
pub fn grpc_service(service: &str) -> String {
    table().service(service).map_or_else(
        || format!("<{service} is not in envoy-ext/services.toml>"),
        |row| row.grpc_path_prefix(),
    )
}

/// The repository root (the xtask crate is crates/xtask).
pub fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .unwrap_or(manifest)
        .to_path_buf()
}

/// Local state of the Kubernetes tasks (rendered manifests, the deploy
/// overlay, the recorded gateway address); ignored by git.
pub fn work_dir() -> PathBuf {
    root().join(".local/k8s")
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot run {command}: {source} (tools: `just tools`)")]
    Spawn { command: String, source: io::Error },
    #[error("{command}: {status}{}", if .stderr.is_empty() { String::new() } else { format!("\n{}", .stderr.trim_end()) })]
    Failed {
        command: String,
        status: ExitStatus,
        stderr: String,
    },
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{what}: {message}")]
    Parse { what: String, message: String },
    #[error("timed out after {}s waiting for {what}", .after.as_secs())]
    Timeout { what: String, after: Duration },
    /// A check found something wrong; the message says what.
    #[error("FAIL: {0}")]
    Check(String),
    #[error(transparent)]
    Pins(#[from] crate::pins::PinError),
    #[error(transparent)]
    Tools(#[from] crate::tools::ToolError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn parse(what: impl Into<String>, message: impl ToString) -> Self {
        Self::Parse {
            what: what.into(),
            message: message.to_string(),
        }
    }
}

/// Fails with `Error::Check` unless `ok`.
pub fn ensure(ok: bool, message: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::Check(message()))
    }
}

/// Polls `ready` every `interval` until it says yes or `timeout` passes:
/// the one loop behind every "wait until it exists / is gone / answers".
pub fn wait_until(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut ready: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let start = Instant::now();
    loop {
        if ready()? {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(Error::Timeout {
                what: what.to_owned(),
                after: timeout,
            });
        }
        thread::sleep(interval);
    }
}

pub fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

pub fn write(path: &Path, contents: impl AsRef<[u8]>) -> Result<()> {
    if let Some(parent) = path.parent() {
        create_dir(parent)?;
    }
    std::fs::write(path, contents).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

pub fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

/// A fresh, empty directory (what an earlier run left is removed).
pub fn fresh_dir(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(Error::Io {
                path: path.to_owned(),
                source,
            });
        }
    }
    create_dir(path)
}

pub fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_service_names_follow_the_protos() {
        assert_eq!(
            grpc_service("customer-service"),
            "customer.v1.CustomerService"
        );
        assert_eq!(grpc_service("product-service"), "product.v1.ProductService");
    }

    #[test]
    fn the_constants_are_the_service_tables() {
        assert_eq!(NAMESPACE, table().gateway.namespace);
        assert_eq!(GATEWAY, table().gateway.name);
        assert_eq!(envoy_selector(), table().envoy_selector());
        assert!(SERVICES.contains(&"customer-service"));
    }

    #[test]
    fn envoy_selector_names_gateway_and_namespace() {
        assert_eq!(
            envoy_selector(),
            "gateway.envoyproxy.io/owning-gateway-name=eg,\
             gateway.envoyproxy.io/owning-gateway-namespace=envoy-poc"
        );
    }

    #[test]
    fn root_holds_the_workspace() {
        assert!(root().join("Cargo.toml").is_file());
        assert!(root().join("k8s/overlays/cluster").is_dir());
    }

    #[test]
    fn wait_until_polls_and_times_out() {
        let mut calls = 0;
        wait_until("third call", Duration::from_secs(5), Duration::ZERO, || {
            calls += 1;
            Ok(calls == 3)
        })
        .unwrap();
        assert_eq!(calls, 3);
        let err = wait_until(
            "never",
            Duration::from_millis(20),
            Duration::from_millis(5),
            || Ok(false),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
    }
}
