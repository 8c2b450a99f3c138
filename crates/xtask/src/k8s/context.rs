//! Which cluster the current kubectl context is, and what that changes.

use super::{Error, Result, cmd::cmd};

/// The context `k8s/local-cluster/cluster.sh up` creates.
pub const LOCAL_CLUSTER: &str = "envoy-poc-local";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cluster {
    /// kind (`kind-<name>`): images are loaded into its nodes, no
    /// LoadBalancer addresses (port-forward).
    Kind { name: String },
    /// The local CI cluster: reaches no registry, so Envoy Gateway's chart
    /// comes from its Go module and every image is built on the machine.
    Local,
    /// Docker Desktop and any other cluster: pulls what it needs.
    Other,
}

pub fn classify(context: &str) -> Cluster {
    if context == LOCAL_CLUSTER {
        Cluster::Local
    } else if let Some(name) = context.strip_prefix("kind-") {
        Cluster::Kind {
            name: name.to_owned(),
        }
    } else {
        Cluster::Other
    }
}

/// The current context. Without one, kubectl would fall back to
/// localhost:8080, where the local stack's gateway may listen: refuse.
pub fn current() -> Result<String> {
    let context = cmd("kubectl")
        .args(["config", "current-context"])
        .read()
        .unwrap_or_default();
    let context = context.trim();
    if context.is_empty() {
        return Err(Error::Check(
            "no kubectl context: enable Kubernetes in Docker Desktop or 'kind create cluster' \
             (docs/setup-guide.md)"
                .to_owned(),
        ));
    }
    Ok(context.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_map_to_clusters() {
        assert_eq!(classify("envoy-poc-local"), Cluster::Local);
        assert_eq!(
            classify("kind-dev"),
            Cluster::Kind {
                name: "dev".to_owned()
            }
        );
        assert_eq!(classify("docker-desktop"), Cluster::Other);
        // Only the exact local context and the kind- prefix count.
        assert_eq!(classify("envoy-poc-local-2"), Cluster::Other);
        assert_eq!(classify("my-kind-cluster"), Cluster::Other);
    }
}
