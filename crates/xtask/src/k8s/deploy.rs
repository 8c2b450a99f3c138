//! `deploy`, `deploy-auth`, `undeploy`, `status`, `logs` against the current
//! kubectl context: the pinned Envoy Gateway (helm), then
//! k8s/overlays/cluster at this build's image tag.

use std::{io::Read, path::Path, time::Duration};

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
    /// The kustomization that runs PostgreSQL for the services' records,
    /// relative to the root.
    pub postgres: &'static str,
    /// The cluster has no volume provisioner: `cluster.sh storage` makes the
    /// PersistentVolume PostgreSQL's claim binds to.
    pub static_volume: bool,
}

/// The Deployment Envoy Gateway creates for Envoy's rate-limit service.
pub const RATE_LIMIT_SERVICE: &str = "envoy-ratelimit";

/// Redis as users run it: the pinned upstream image.
const REDIS: &str = "k8s/redis";
/// PostgreSQL as users run it: the pinned upstream image.
const POSTGRES: &str = "k8s/postgres";

/// A Secret `deploy` creates with a random value when it is absent, and
/// never changes afterwards (the database was initialised with it; every
/// replica signs page tokens with it). Nothing secret is in the repository.
#[derive(Debug, PartialEq, Eq)]
pub struct GeneratedSecret {
    pub name: &'static str,
    pub key: &'static str,
}

/// Read by k8s/postgres and by the services (k8s/overlays/cluster).
pub const SECRETS: [GeneratedSecret; 2] = [
    GeneratedSecret {
        name: "postgres-credentials",
        key: "password",
    },
    GeneratedSecret {
        name: "page-token-key",
        key: "key",
    },
];

/// Random bytes per generated value: 256 bits, hex-encoded (64 characters,
/// safe in a connection URL, and twice the page-token key's minimum).
const SECRET_BYTES: usize = 32;

/// What differs per cluster.
pub fn plan(cluster: &Cluster) -> Plan {
    match cluster {
        Cluster::Kind { name } => Plan {
            chart: Chart::Oci,
            extra_values: None,
            kind_load: Some(name.clone()),
            redis: REDIS,
            postgres: POSTGRES,
            static_volume: false,
        },
        // Images built on the machine (k8s/local-cluster/eg-values.yaml).
        Cluster::Local => Plan {
            chart: Chart::Module,
            extra_values: Some("k8s/local-cluster/eg-values.yaml"),
            kind_load: None,
            redis: "k8s/local-cluster/overlays/redis",
            postgres: "k8s/local-cluster/overlays/postgres",
            static_volume: true,
        },
        // Docker Desktop and kind provision volumes (a default StorageClass).
        Cluster::Other => Plan {
            chart: Chart::Oci,
            extra_values: None,
            kind_load: None,
            redis: REDIS,
            postgres: POSTGRES,
            static_volume: false,
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

/// The Secret `secret` with `value`, as a manifest for `kubectl create -f`
/// (a file rather than a command-line literal: argv is visible to every
/// user of the machine).
pub fn secret_manifest(secret: &GeneratedSecret, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {NAMESPACE}\n  \
         labels:\n    app.kubernetes.io/part-of: envoy-poc\ntype: Opaque\nstringData:\n  {key}: \"{value}\"\n",
        name = secret.name,
        key = secret.key,
    )
}

/// `n` random bytes from the kernel, hex-encoded.
fn random_hex(n: usize) -> Result<String> {
    let path = Path::new("/dev/urandom");
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = vec![0; n];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(io)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Creates `secret` with a random value unless it exists; an existing one
/// is left as it is.
fn ensure_secret(work: &Path, secret: &GeneratedSecret) -> Result<()> {
    if kubectl(NAMESPACE)
        .args(["get", "secret", secret.name])
        .succeeds()
    {
        println!("secret {}: present, kept", secret.name);
        return Ok(());
    }
    let file = work.join(format!("{}.yaml", secret.name));
    let write = || -> std::io::Result<()> {
        use std::{io::Write, os::unix::fs::OpenOptionsExt};
        std::fs::create_dir_all(work)?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&file)?;
        f.write_all(
            secret_manifest(
                secret,
                &random_hex(SECRET_BYTES).map_err(std::io::Error::other)?,
            )
            .as_bytes(),
        )
    };
    write().map_err(|source| Error::Io {
        path: file.clone(),
        source,
    })?;
    let created = cmd("kubectl").args(["create", "-f"]).arg(&file).run();
    let removed = std::fs::remove_file(&file);
    created?;
    removed.map_err(|source| Error::Io { path: file, source })?;
    println!("secret {}: created (random)", secret.name);
    Ok(())
}

/// The namespace, the generated Secrets and PostgreSQL (on a volume of the
/// cluster's default StorageClass, or the local cluster's static one), ready
/// to accept connections.
fn deploy_postgres(root: &Path, work: &Path, plan: &Plan) -> Result<()> {
    println!("==> PostgreSQL for the services ({})", plan.postgres);
    cmd("kubectl")
        .args(["apply", "--server-side", "-f"])
        .arg(root.join("k8s/base/namespace.yaml"))
        .run()?;
    for secret in &SECRETS {
        ensure_secret(work, secret)?;
    }
    if plan.static_volume {
        cmd(root.join("k8s/local-cluster/cluster.sh"))
            .arg("storage")
            .run()?;
    }
    apply(&root.join(plan.postgres))?;
    kubectl(NAMESPACE)
        .args([
            "rollout",
            "status",
            "statefulset/postgres",
            "--timeout=300s",
        ])
        .run()
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

    deploy_postgres(root, work, &plan)?;

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
        (
            NAMESPACE,
            "deployments,statefulsets,pods,services,pdb,pvc,networkpolicy",
        ),
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
                postgres: "k8s/postgres",
                static_volume: false,
            }
        );
        let local = plan(&Cluster::Local);
        assert_eq!(local.chart, Chart::Module);
        assert_eq!(local.extra_values, Some("k8s/local-cluster/eg-values.yaml"));
        assert_eq!(local.kind_load, None);
        assert_eq!(local.redis, "k8s/local-cluster/overlays/redis");
        assert_eq!(local.postgres, "k8s/local-cluster/overlays/postgres");
        assert!(local.static_volume, "no provisioner on the local cluster");
        assert_eq!(
            plan(&Cluster::Other),
            Plan {
                chart: Chart::Oci,
                extra_values: None,
                kind_load: None,
                redis: "k8s/redis",
                postgres: "k8s/postgres",
                static_volume: false,
            }
        );
        // The values files and the kustomizations exist where the plan says.
        let root = crate::k8s::root();
        assert!(root.join(local.extra_values.unwrap()).is_file());
        for dir in [local.redis, kind.redis, local.postgres, kind.postgres] {
            assert!(root.join(dir).join("kustomization.yaml").is_file(), "{dir}");
        }
    }

    #[test]
    fn generated_secrets_are_the_ones_the_manifests_read() {
        let root = crate::k8s::root();
        let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
        let (postgres, cluster) = (
            read("k8s/postgres/postgres.yaml"),
            read("k8s/overlays/cluster/kustomization.yaml"),
        );
        for secret in &SECRETS {
            let reference = format!("name: {}", secret.name);
            assert!(
                postgres.contains(&reference)
                    || cluster.contains(&format!("secretName: {}", secret.name)),
                "{} is read by no manifest",
                secret.name
            );
        }
        assert!(postgres.contains("name: postgres-credentials\n                  key: password"));
        assert!(
            cluster.contains("name: postgres-credentials\n                        key: password")
        );
    }

    #[test]
    fn secret_values_are_random_hex_in_a_manifest() {
        let a = random_hex(SECRET_BYTES).unwrap();
        let b = random_hex(SECRET_BYTES).unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        let manifest = secret_manifest(&SECRETS[1], &a);
        let yaml: serde_norway::Value = serde_norway::from_str(&manifest).unwrap();
        assert_eq!(yaml["kind"].as_str(), Some("Secret"));
        assert_eq!(yaml["metadata"]["namespace"].as_str(), Some(NAMESPACE));
        assert_eq!(yaml["metadata"]["name"].as_str(), Some("page-token-key"));
        assert_eq!(yaml["stringData"]["key"].as_str(), Some(a.as_str()));
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
