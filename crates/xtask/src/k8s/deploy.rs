//! `deploy`, `deploy-auth`, `undeploy`, `status`, `logs` against the current
//! kubectl context: the pinned Envoy Gateway (helm), then
//! k8s/overlays/cluster at this build's image tag.

use std::{path::Path, time::Duration};

use super::{
    APP_SELECTOR, EG_NAMESPACE, Error, GATEWAY, NAMESPACE, Result, SERVICES, address,
    cmd::{cmd, kubectl},
    context::{self, Cluster},
    envoy_selector, image,
    kustomize::Kustomization,
    offline, read, wait_until,
};

/// Where Envoy Gateway's chart comes from.
#[derive(Debug, PartialEq, Eq)]
pub enum Chart {
    /// The upstream OCI chart on docker.io.
    Oci,
    /// The same release's chart from its Go module (a cluster that reaches
    /// no registry).
    Module,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    pub chart: Chart,
    /// Helm values over k8s/envoy-gateway/values.yaml, relative to the root.
    pub extra_values: Option<&'static str>,
    /// kind cluster to load the images into.
    pub kind_load: Option<String>,
    /// The kustomization that runs Redis for the global rate-limit tier,
    /// relative to the root.
    pub redis: &'static str,
}

/// The Deployment Envoy Gateway creates for Envoy's rate-limit service.
pub const RATE_LIMIT_SERVICE: &str = "envoy-ratelimit";

/// Redis as users run it: the pinned upstream image.
const REDIS: &str = "k8s/redis";

/// What differs per cluster.
pub fn plan(cluster: &Cluster) -> Plan {
    match cluster {
        Cluster::Kind { name } => Plan {
            chart: Chart::Oci,
            extra_values: None,
            kind_load: Some(name.clone()),
            redis: REDIS,
        },
        // Images built on the machine (k8s/local-cluster/eg-values.yaml).
        Cluster::Local => Plan {
            chart: Chart::Module,
            extra_values: Some("k8s/local-cluster/eg-values.yaml"),
            kind_load: None,
            redis: "k8s/local-cluster/overlays/redis",
        },
        Cluster::Other => Plan {
            chart: Chart::Oci,
            extra_values: None,
            kind_load: None,
            redis: REDIS,
        },
    }
}

/// `helm upgrade --install` arguments after the chart reference.
pub fn helm_args(root: &Path, plan: &Plan) -> Vec<String> {
    let mut args: Vec<String> = ["-n", EG_NAMESPACE, "--create-namespace", "-f"]
        .map(str::to_owned)
        .to_vec();
    args.push(
        root.join("k8s/envoy-gateway/values.yaml")
            .display()
            .to_string(),
    );
    if let Some(values) = plan.extra_values {
        args.push("-f".to_owned());
        args.push(root.join(values).display().to_string());
    }
    args.extend(["--wait", "--timeout", "5m"].map(str::to_owned));
    args
}

/// The Gateway not Programmed: fine only for the one reason a cluster
/// without a LoadBalancer provider gives (kind: we port-forward).
pub fn unprogrammed_is_fine(reason: &str) -> bool {
    reason.trim() == "AddressNotAssigned"
}

/// `kubectl wait --for=condition=Available` on deployments.
fn wait_available(namespace: &str, target: &[&str], timeout: &str) -> Result<()> {
    kubectl(namespace)
        .args(["wait", "--for=condition=Available", "deployment"])
        .args(target)
        .arg(format!("--timeout={timeout}"))
        .run()
}

/// `kubectl rollout status` for each Deployment.
pub fn wait_rollouts(namespace: &str, deployments: &[&str], timeout: &str) -> Result<()> {
    for name in deployments {
        kubectl(namespace)
            .args(["rollout", "status", &format!("deployment/{name}")])
            .arg(format!("--timeout={timeout}"))
            .run()?;
    }
    Ok(())
}

/// `kubectl apply -k`, server-side (the CRD-sized objects exceed the
/// client-side annotation).
fn apply(dir: &Path) -> Result<()> {
    cmd("kubectl")
        .args(["apply", "--server-side", "--force-conflicts", "-k"])
        .arg(dir)
        .run()
}

pub fn deploy(root: &Path, work: &Path, eg_version: &str) -> Result<String> {
    let ctx = context::current()?;
    let plan = plan(&context::classify(&ctx));
    let tag = image::current_tag(root)?;
    println!("==> context {ctx}, images envoy-poc/*:{tag}");
    let images: Vec<String> = SERVICES
        .iter()
        .map(|s| format!("envoy-poc/{s}:{tag}"))
        .collect();
    if image::docker() {
        for img in &images {
            if !cmd("docker").args(["image", "inspect", img]).succeeds() {
                return Err(Error::Check(format!(
                    "image {img} not found locally: run 'just images' first"
                )));
            }
        }
    }
    if let Some(name) = &plan.kind_load {
        println!("==> kind load docker-image (cluster {name})");
        cmd("kind")
            .args(["load", "docker-image", "--name", name])
            .args(&images)
            .run()?;
    }

    println!("==> Envoy Gateway {eg_version} (helm, namespace {EG_NAMESPACE})");
    let chart = match plan.chart {
        Chart::Oci => vec![
            "oci://docker.io/envoyproxy/gateway-helm".to_owned(),
            "--version".to_owned(),
            eg_version.to_owned(),
        ],
        Chart::Module => vec![
            offline::chart(root, eg_version, &work.join("chart"))?
                .display()
                .to_string(),
        ],
    };
    cmd("helm")
        .args(["upgrade", "--install", "eg"])
        .args(chart)
        .args(helm_args(root, &plan))
        .run()?;
    wait_available(EG_NAMESPACE, &["envoy-gateway"], "180s")?;
    // Envoy Gateway runs the rate-limit service (envoy-ratelimit) against
    // this Redis once the values name it; the global tier needs both.
    println!("==> Redis for the global rate-limit tier ({})", plan.redis);
    apply(&root.join(plan.redis))?;
    wait_rollouts(EG_NAMESPACE, &["redis"], "180s")?;

    // A throwaway overlay pins this build's tag without editing tracked files.
    let dir = work.join("deploy");
    Kustomization {
        resources: vec![root.join("k8s/overlays/cluster")],
        ..Default::default()
    }
    .with_service_tag(&tag)
    .write(&dir)?;
    println!("==> kubectl apply -k k8s/overlays/cluster (tag {tag})");
    apply(&dir)?;
    wait_rollouts(NAMESPACE, &SERVICES, "180s")?;
    // A rollout is "done" while the old pods still drain (preStop), and each
    // pod keeps its own in-memory data: until they are gone a read may reach
    // one that never saw a write (found by smoke on the local cluster).
    wait_until(
        "old pods to finish draining",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || {
            let draining = kubectl(NAMESPACE)
                .args(["get", "pods", "-l", APP_SELECTOR, "-o"])
                .arg("jsonpath={.items[?(@.metadata.deletionTimestamp)].metadata.name}")
                .read()?;
            Ok(draining.trim().is_empty())
        },
    )?;

    // Envoy Gateway creates the Envoy Deployment once it has translated the
    // Gateway; the Gateway is Programmed only once it also has an address,
    // which kind without a LoadBalancer provider never assigns.
    let selector = envoy_selector();
    wait_until(
        "the Envoy Deployment",
        Duration::from_secs(120),
        Duration::from_secs(2),
        || {
            let found = kubectl(EG_NAMESPACE)
                .args(["get", "deployment", "-l", &selector, "-o", "name"])
                .read()?;
            Ok(!found.trim().is_empty())
        },
    )?;
    wait_available(EG_NAMESPACE, &["-l", &selector], "180s")?;
    wait_rollouts(EG_NAMESPACE, &[RATE_LIMIT_SERVICE], "180s")?;
    let programmed = kubectl(NAMESPACE)
        .args([
            "wait",
            "--for=condition=Programmed",
            &format!("gateway/{GATEWAY}"),
            "--timeout=30s",
        ])
        .run();
    if programmed.is_err() {
        let reason = kubectl(NAMESPACE)
            .args(["get", "gateway", GATEWAY, "-o"])
            .arg(r#"jsonpath={.status.conditions[?(@.type=="Programmed")].reason}"#)
            .read()?;
        if !unprogrammed_is_fine(&reason) {
            let _ = kubectl(NAMESPACE)
                .args(["describe", "gateway", GATEWAY])
                .run();
            return Err(Error::Check(format!(
                "gateway {GATEWAY} not Programmed: {reason}"
            )));
        }
        println!(
            "gateway {GATEWAY}: no LoadBalancer address in this cluster (AddressNotAssigned): reaching it by port-forward"
        );
    }
    address::find_and_record(work)
}

/// `deploy`, then Keycloak (dev mode) and, once it serves the realm, the
/// auth layer over the deploy overlay.
pub fn deploy_auth(root: &Path, work: &Path, eg_version: &str) -> Result<()> {
    deploy(root, work, eg_version)?;
    println!("==> Keycloak (dev mode) in {NAMESPACE}");
    apply(&root.join("k8s/keycloak"))?;
    wait_rollouts(NAMESPACE, &["keycloak"], "600s")?;
    let dir = work.join("deploy-auth");
    Kustomization {
        resources: vec![work.join("deploy"), root.join("k8s/keycloak")],
        components: vec![root.join("k8s/auth")],
        ..Default::default()
    }
    .write(&dir)?;
    println!("==> auth layer (SecurityPolicies, per-user rate limits)");
    apply(&dir)?;
    println!(
        "tokens: kubectl -n {NAMESPACE} port-forward svc/keycloak 8180:8180 & just token alice"
    );
    Ok(())
}

/// Removes everything `deploy` created (idempotent; the CRDs stay).
pub fn undeploy(root: &Path, work: &Path) -> Result<()> {
    context::current()?;
    address::forget(work)?;
    // Gateway API kinds are unknown to a cluster that never had Envoy
    // Gateway; there is nothing of them to delete then.
    let deleted = cmd("kubectl")
        .args(["delete", "-k"])
        .arg(root.join("k8s/overlays/cluster"))
        .args(["--ignore-not-found", "--wait=true"])
        .run();
    if deleted.is_err() {
        println!("(some kinds are unknown to this cluster: nothing of them to delete)");
    }
    cmd("kubectl")
        .args(["delete", "namespace", NAMESPACE, "--ignore-not-found"])
        .run()?;
    if cmd("helm")
        .args(["-n", EG_NAMESPACE, "status", "eg"])
        .succeeds()
    {
        cmd("helm")
            .args(["-n", EG_NAMESPACE, "uninstall", "eg", "--wait"])
            .run()?;
    }
    cmd("kubectl")
        .args(["delete", "namespace", EG_NAMESPACE, "--ignore-not-found"])
        .run()?;
    println!(
        "undeployed (CRDs kept: kubectl get crd | grep -e gateway.networking.k8s.io -e gateway.envoyproxy.io)"
    );
    Ok(())
}

/// What is running; a part that fails to list does not hide the others.
pub fn status(work: &Path) -> Result<()> {
    context::current()?;
    let listings = [
        (EG_NAMESPACE, "deployments,pods,services"),
        (
            NAMESPACE,
            "gateway,grpcroute,backendtrafficpolicy,envoypatchpolicy",
        ),
        (NAMESPACE, "deployments,pods,services,pdb,networkpolicy"),
    ];
    for (namespace, kinds) in listings {
        if let Err(err) = kubectl(namespace).args(["get", kinds]).run() {
            eprintln!("{err}");
        }
    }
    if let Ok(addr) = read(&work.join(address::ADDRESS_FILE)) {
        println!("gateway address: {}", addr.trim());
    }
    Ok(())
}

/// Recent logs of every pod of ours; `args` go to kubectl (e.g. `-f`).
pub fn logs(args: &[String]) -> Result<()> {
    context::current()?;
    kubectl(NAMESPACE)
        .args([
            "logs",
            "-l",
            APP_SELECTOR,
            "--prefix",
            "--tail=100",
            "--max-log-requests=10",
        ])
        .args(args)
        .run()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cluster_gets_its_chart_values_and_image_path() {
        let kind = plan(&Cluster::Kind { name: "dev".into() });
        assert_eq!(
            kind,
            Plan {
                chart: Chart::Oci,
                extra_values: None,
                kind_load: Some("dev".into()),
                redis: "k8s/redis",
            }
        );
        let local = plan(&Cluster::Local);
        assert_eq!(local.chart, Chart::Module);
        assert_eq!(local.extra_values, Some("k8s/local-cluster/eg-values.yaml"));
        assert_eq!(local.kind_load, None);
        assert_eq!(local.redis, "k8s/local-cluster/overlays/redis");
        assert_eq!(
            plan(&Cluster::Other),
            Plan {
                chart: Chart::Oci,
                extra_values: None,
                kind_load: None,
                redis: "k8s/redis",
            }
        );
        // The values files and the Redis kustomizations exist where the plan says.
        let root = crate::k8s::root();
        assert!(root.join(local.extra_values.unwrap()).is_file());
        assert!(root.join(local.redis).join("kustomization.yaml").is_file());
        assert!(root.join(kind.redis).join("kustomization.yaml").is_file());
    }

    #[test]
    fn helm_values_layer_local_over_common() {
        let root = Path::new("/r");
        let args = helm_args(root, &plan(&Cluster::Local));
        assert_eq!(
            args,
            [
                "-n",
                "envoy-gateway-system",
                "--create-namespace",
                "-f",
                "/r/k8s/envoy-gateway/values.yaml",
                "-f",
                "/r/k8s/local-cluster/eg-values.yaml",
                "--wait",
                "--timeout",
                "5m"
            ]
        );
        let args = helm_args(root, &plan(&Cluster::Other));
        assert_eq!(args.iter().filter(|a| *a == "-f").count(), 1);
    }

    #[test]
    fn only_a_missing_address_is_tolerated() {
        assert!(unprogrammed_is_fine("AddressNotAssigned"));
        assert!(!unprogrammed_is_fine("Invalid"));
        assert!(!unprogrammed_is_fine(""));
    }
}
