//! The Kubernetes subcommands of `cargo xtask`; each is one recipe of the
//! justfile's Kubernetes section.

use clap::Subcommand;

use super::{
    Result, address, auth, cluster, deploy, image, image_check, offline, root, smoke, work_dir,
};
use crate::{pins::Pins, tools};

/// Kubernetes schema version kubectl-validate checks built-in kinds against:
/// the newest its built-in schemas cover, so it moves with the
/// kubectl-validate pin (pins.toml), not on its own.
const K8S_SCHEMA: &str = "1.30";

#[derive(Subcommand)]
pub enum Task {
    /// Build both service images, tagged <version>-<git sha> and <version> (Docker; else the local cluster's buildah)
    Images,
    /// Print the image tag: workspace version + short git sha (+ -dirty)
    ImageTag,
    /// The runtime image without Docker: static binaries, scratch image via buildah, a real start from it
    ImageCheck,
    /// Offline Kubernetes checks (overlays build, schemas with unknown fields rejected, egctl, helm values), then image-check
    TestK8s {
        /// Skip image-check (the slow part: a static release build)
        #[arg(long)]
        no_image_check: bool,
    },
    /// Offline: Envoy Gateway's translator accepts the auth layer (JWT, RBAC on gRPC paths, per-user limit)
    CheckAuth,
    /// Deploy to the current kubectl context: Envoy Gateway (helm), then k8s/overlays/cluster; records the gateway address
    Deploy,
    /// `deploy`, then Keycloak and the auth layer (k8s/auth)
    DeployAuth,
    /// Find (or port-forward) a reachable gateway address and record it for `smoke`
    GatewayAddress,
    /// Exercise the deployed gateway (GATEWAY=host:port overrides; SMOKE_BURST=0 skips the rate-limit burst)
    Smoke,
    /// What is running on the cluster
    Status,
    /// Recent logs of both services; extra arguments go to kubectl (e.g. -f)
    Logs {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Remove everything `deploy` created (the CRDs stay)
    Undeploy,
    /// The local cluster end to end (CI): up, images, deploy, smoke, every e2e suite and the cluster faults, undeploy, down
    TestCluster,
}

pub fn run(task: Task, pins: &Pins) -> Result<()> {
    let (root, work) = (root(), work_dir());
    let eg = pins.version("envoy-gateway")?;
    match task {
        Task::Images => {
            // Without a Docker engine the local cluster's builder needs buildah.
            if !image::docker() {
                tools::ensure(pins, &["buildah"])?;
            }
            image::build(&root)
        }
        Task::ImageTag => {
            println!("{}", image::current_tag(&root)?);
            Ok(())
        }
        Task::ImageCheck => {
            tools::ensure(pins, &["buildah", "grpcurl"])?;
            image_check::run(&root, &work)
        }
        Task::TestK8s { no_image_check } => {
            tools::ensure(pins, &["kubectl", "egctl", "helm", "kubectl-validate"])?;
            let versions = offline::Versions {
                envoy_gateway: eg,
                k8s_schema: K8S_SCHEMA,
            };
            offline::run(&root, &work, &versions)?;
            if no_image_check {
                println!("test-k8s: ok (image-check skipped)");
                return Ok(());
            }
            tools::ensure(pins, &["buildah", "grpcurl"])?;
            image_check::run(&root, &work)?;
            println!("test-k8s: ok");
            Ok(())
        }
        Task::CheckAuth => {
            tools::ensure(pins, &["kubectl", "egctl"])?;
            auth::run(&root)
        }
        Task::Deploy => {
            tools::ensure(pins, &["kubectl", "helm"])?;
            deploy::deploy(&root, &work, eg).map(|_| ())
        }
        Task::DeployAuth => {
            tools::ensure(pins, &["kubectl", "helm"])?;
            deploy::deploy_auth(&root, &work, eg)
        }
        Task::GatewayAddress => address::find_and_record(&work).map(|_| ()),
        Task::Smoke => {
            tools::ensure(pins, &["grpcurl"])?;
            let addr = smoke::gateway(std::env::var("GATEWAY").ok().as_deref(), &work)?;
            let burst = smoke::burst_size(std::env::var("SMOKE_BURST").ok().as_deref())?;
            smoke::run(&addr, burst)
        }
        Task::Status => deploy::status(&work),
        Task::Logs { args } => deploy::logs(&args),
        Task::Undeploy => deploy::undeploy(&root, &work),
        Task::TestCluster => {
            tools::ensure(pins, &["default", "k8s"])?;
            cluster::test(&root, &work, eg)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        task: Task,
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn logs_passes_kubectl_flags_through() {
        let cli = Cli::try_parse_from(["xtask", "logs", "-f", "--since=1m"]).unwrap();
        match cli.task {
            Task::Logs { args } => assert_eq!(args, ["-f", "--since=1m"]),
            _ => panic!("not logs"),
        }
        let cli = Cli::try_parse_from(["xtask", "test-k8s", "--no-image-check"]).unwrap();
        assert!(matches!(
            cli.task,
            Task::TestK8s {
                no_image_check: true
            }
        ));
    }
}
