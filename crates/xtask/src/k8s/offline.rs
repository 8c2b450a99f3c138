//! `test-k8s`, offline: every kustomization builds; every object validates
//! against its schema (built-in kinds and the pinned Envoy Gateway's CRDs)
//! with unknown fields rejected, and the validator is shown to reject
//! broken manifests; Envoy Gateway's translator accepts the routes and
//! resolves their backends; our helm values do what we want in the real
//! chart.

use std::path::{Path, PathBuf};

use serde_norway::Value as Yaml;

use super::{
    EG_NAMESPACE, Error, Result,
    cmd::cmd,
    create_dir, ensure, fresh_dir, kustomize, read,
    translate::{Output, Translation},
    write,
};

/// What the checks need to know about the pins.
pub struct Versions<'a> {
    /// Envoy Gateway release: its CRDs and its chart.
    pub envoy_gateway: &'a str,
    /// Kubernetes schema version kubectl-validate checks built-in kinds
    /// against (the newest its built-in schemas cover).
    pub k8s_schema: &'a str,
}

/// A manifest broken on purpose: every line equal to `line` replaced by
/// `with`; the validator must reject it, for the reason `expect`.
pub struct Breakage {
    pub label: &'static str,
    pub line: &'static str,
    pub with: &'static str,
    pub expect: &'static str,
}

/// One per way the validation could silently pass: an unknown field in a
/// built-in kind, an unknown kind, an unknown field at the top of a CRD
/// kind and deep inside one.
pub const BREAKAGES: [Breakage; 4] = [
    // The cluster overlay's service Deployments (two replicas each on
    // PostgreSQL); a count that changes there must change here too.
    Breakage {
        label: "unknown-field-builtin",
        line: "  replicas: 2",
        with: "  replicas: 2\n  replicaz: 2",
        expect: "spec.replicaz",
    },
    Breakage {
        label: "typo-kind",
        line: "kind: PodDisruptionBudget",
        with: "kind: PodDisruptionBudgett",
        expect: "PodDisruptionBudgett not found",
    },
    Breakage {
        label: "unknown-field-crd-top",
        line: "kind: GRPCRoute",
        with: "kind: GRPCRoute\nspec2: {}",
        expect: "spec2",
    },
    Breakage {
        label: "unknown-field-crd-nested",
        line: "      rules:",
        with: "      rulez:",
        expect: "spec.rateLimit.local.rulez",
    },
];

impl Breakage {
    pub fn apply(&self, manifest: &str) -> Result<String> {
        let broken = replace_lines(manifest, self.line, self.with, usize::MAX);
        ensure(broken != manifest, || {
            format!("self-test '{}' changed nothing", self.label)
        })?;
        Ok(broken)
    }
}

/// Replaces up to `max` lines equal to `line` by `with`.
pub fn replace_lines(text: &str, line: &str, with: &str, max: usize) -> String {
    let mut left = max;
    let mut out: Vec<&str> = Vec::new();
    for l in text.split('\n') {
        if l == line && left > 0 {
            left -= 1;
            out.push(with);
        } else {
            out.push(l);
        }
    }
    out.join("\n")
}

/// The file a kustomization directory renders to: `k8s/overlays/cluster`
/// -> `k8s-overlays-cluster.yaml`.
pub fn rendered_name(dir: &str) -> String {
    format!("{}.yaml", dir.trim_end_matches('/').replace('/', "-"))
}

/// How many objects a rendered multi-document YAML holds.
pub fn count_objects(yaml: &str) -> usize {
    yaml.lines().filter(|l| l.starts_with("kind:")).count()
}

pub fn run(root: &Path, work: &Path, versions: &Versions<'_>) -> Result<()> {
    let work = work.join("test");
    fresh_dir(&work)?;
    let (rendered, crds) = (work.join("rendered"), work.join("crds"));
    create_dir(&rendered)?;

    // The CRDs of the pinned release (Gateway API + gateway.envoyproxy.io),
    // from its Go module: the same files its helm chart installs.
    let module = eg_module(versions.envoy_gateway, &work)?;
    let n = copy_yaml_files(&module.join("charts/gateway-helm/charts/crds/crds"), &crds)?;
    ensure(n > 0, || format!("no CRDs in {}", module.display()))?;
    println!(
        "CRDs: {n} files from envoyproxy/gateway {}",
        versions.envoy_gateway
    );

    // 1. Every kustomization builds.
    for dir in kustomizations(root)? {
        let yaml = kustomize::build(&root.join(&dir))?;
        let n = count_objects(&yaml);
        ensure(n > 0, || format!("kustomize {dir} rendered no objects"))?;
        write(&rendered.join(rendered_name(&dir)), &yaml)?;
        println!("kustomize {dir}: {n} objects");
    }

    // 2. Every object validates; unknown fields and unknown kinds are errors.
    let validate = |path: &Path| {
        cmd("kubectl-validate")
            .arg(path)
            .args(["--version", versions.k8s_schema, "--local-crds"])
            .arg(&crds)
    };
    validate(&rendered).run()?;

    // 3. ... and that check must be able to fail.
    let broken_dir = work.join("broken");
    let cluster = read(&rendered.join(rendered_name("k8s/overlays/cluster")))?;
    for b in &BREAKAGES {
        let file = broken_dir.join(format!("{}.yaml", b.label));
        write(&file, b.apply(&cluster)?)?;
        let out = validate(&file).output()?;
        let log = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        ensure(!out.status.success(), || {
            format!("validator accepted a manifest with {}", b.label)
        })?;
        ensure(log.contains(b.expect), || {
            format!(
                "self-test '{}' rejected for another reason:\n{log}",
                b.label
            )
        })?;
        println!("self-test: {} rejected ({})", b.label, b.expect);
    }

    // 4. The gateway objects and the Services fit together: Envoy Gateway's
    //    translator accepts every GRPCRoute and resolves every backendRef
    //    to a Service port; a port that no longer matches must be reported.
    let cluster_file = rendered.join(rendered_name("k8s/overlays/cluster"));
    let routes =
        Translation::of_file(&cluster_file, Output::Status)?.require_accepted("grpcRoutes", 1)?;
    routes.iter().for_each(|c| println!("  {c}"));
    let moved = replace_lines(&cluster, "    port: 50052", "    port: 50053", 1);
    ensure(moved != cluster, || {
        "self-test: no product-service port 50052 to move".to_owned()
    })?;
    let moved_file = broken_dir.join("port.yaml");
    write(&moved_file, moved)?;
    let conditions = Translation::of_file(&moved_file, Output::Status)?.conditions("grpcRoutes");
    ensure(
        conditions
            .iter()
            .any(|c| !c.is_true() && c.reason == "PortNotFound"),
        || format!("egctl accepted a Service port that matches no backendRef: {conditions:?}"),
    )?;
    println!("self-test: Service port mismatch rejected (PortNotFound)");

    // 5. Our helm values against the real chart (from the same module; EG
    //    decodes its configuration leniently, a misspelt key would be
    //    dropped silently: hence explicit assertions).
    let chart = chart(root, versions.envoy_gateway, &work)?;
    let template = cmd("helm")
        .args(["template", "eg"])
        .arg(&chart)
        .args(["-n", EG_NAMESPACE, "-f"])
        .arg(root.join("k8s/envoy-gateway/values.yaml"))
        .read()?;
    check_eg_config(&template)?;
    println!(
        "helm template gateway-helm {} + k8s/envoy-gateway/values.yaml: EnvoyPatchPolicy, Backend, XDSNameSchemeV2 on, Redis rate-limit backend",
        versions.envoy_gateway
    );
    Ok(())
}

/// k8s/base, every overlay and k8s/postgres (applied by `just deploy` on
/// its own), as paths relative to the root. Overlays may be grouped one
/// level or more down (k8s/overlays/bench-tiers/{local,global}): a directory
/// counts when it holds a kustomization.yaml, otherwise its subdirectories
/// are searched.
fn kustomizations(root: &Path) -> Result<Vec<String>> {
    let mut dirs = vec!["k8s/postgres".to_owned()];
    collect_kustomizations(root, &root.join("k8s/overlays"), &mut dirs)?;
    dirs.sort();
    dirs.insert(0, "k8s/base".to_owned());
    Ok(dirs)
}

fn collect_kustomizations(root: &Path, dir: &Path, found: &mut Vec<String>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for path in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
        if !path.is_dir() {
            continue;
        }
        if path.join("kustomization.yaml").is_file() {
            let relative = path.strip_prefix(root).unwrap_or(&path);
            found.push(relative.to_string_lossy().into_owned());
        } else {
            collect_kustomizations(root, &path, found)?;
        }
    }
    Ok(())
}

/// The source directory of Envoy Gateway's Go module at `version`.
pub fn eg_module(version: &str, work: &Path) -> Result<PathBuf> {
    let json = cmd("go")
        .dir(work)
        .args(["mod", "download", "-json"])
        .arg(format!("github.com/envoyproxy/gateway@{version}"))
        .read()?;
    let info: serde_json::Value =
        serde_json::from_str(&json).map_err(|err| Error::parse("go mod download -json", err))?;
    info["Dir"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| Error::parse("go mod download -json", format!("no Dir: {json}")))
}

/// Envoy Gateway's helm chart at `version` from its Go module
/// (k8s/envoy-gateway/chart.sh: the OCI chart's source, placeholders filled).
pub fn chart(root: &Path, version: &str, work: &Path) -> Result<PathBuf> {
    let path = cmd(root.join("k8s/envoy-gateway/chart.sh"))
        .arg(version)
        .arg(work)
        .read()?;
    Ok(PathBuf::from(path.trim()))
}

/// Copies every *.yaml under `from` (recursively) into `to`, flat.
fn copy_yaml_files(from: &Path, to: &Path) -> Result<usize> {
    create_dir(to)?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    let mut copied = 0;
    let mut pending = vec![from.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let path = entry.map_err(io(&dir))?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                let name = path.file_name().unwrap_or_default();
                std::fs::copy(&path, to.join(name)).map_err(io(&path))?;
                copied += 1;
            }
        }
    }
    Ok(copied)
}

/// The EnvoyGateway configuration the chart renders (ConfigMap data
/// `envoy-gateway.yaml`) has what the gateway objects rely on.
pub fn check_eg_config(helm_template: &str) -> Result<()> {
    let config = eg_config(helm_template)?;
    let path = |keys: &[&str]| keys.iter().try_fold(&config, |v, k| v.get(*k));
    ensure(
        path(&["kind"]).and_then(Yaml::as_str) == Some("EnvoyGateway"),
        || format!("the chart's configuration is not an EnvoyGateway: {config:?}"),
    )?;
    for key in ["enableEnvoyPatchPolicy", "enableBackend", "enableLua"] {
        ensure(
            path(&["extensionApis", key]).and_then(Yaml::as_bool) == Some(true),
            || format!("EG config: extensionApis.{key} is not true"),
        )?;
    }
    let flags: Vec<&str> = path(&["runtimeFlags", "enabled"])
        .and_then(Yaml::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(Yaml::as_str)
        .collect();
    ensure(flags.contains(&"XDSNameSchemeV2"), || {
        format!("EG config: XDSNameSchemeV2 is not in runtimeFlags.enabled ({flags:?})")
    })?;
    // The global tier (k8s/global-limits) needs the Redis backend, which
    // k8s/redis serves; without it Envoy Gateway drops the global rules.
    let redis = path(&["rateLimit", "backend", "redis", "url"]).and_then(Yaml::as_str);
    ensure(
        path(&["rateLimit", "backend", "type"]).and_then(Yaml::as_str) == Some("Redis")
            && redis == Some(REDIS_URL),
        || format!("EG config: rateLimit.backend is not Redis at {REDIS_URL} ({redis:?})"),
    )
}

/// Where Envoy Gateway's rate-limit service finds k8s/redis.
const REDIS_URL: &str = "redis.envoy-gateway-system.svc.cluster.local:6379";

fn eg_config(helm_template: &str) -> Result<Yaml> {
    for doc in serde_norway::Deserializer::from_str(helm_template) {
        let doc = <Yaml as serde::Deserialize>::deserialize(doc)
            .map_err(|err| Error::parse("helm template output", err))?;
        if let Some(text) = doc
            .get("data")
            .and_then(|d| d.get("envoy-gateway.yaml"))
            .and_then(Yaml::as_str)
        {
            return serde_norway::from_str(text)
                .map_err(|err| Error::parse("envoy-gateway.yaml", err));
        }
    }
    Err(Error::Check(
        "helm template rendered no envoy-gateway.yaml ConfigMap".to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_breakage_changes_a_real_rendered_line() {
        // The lines the breakages look for exist in the cluster overlay's
        // sources (a rename there must not turn a self-test into a no-op;
        // run() fails too, this says why earlier).
        let manifest = "kind: Deployment\nspec:\n  replicas: 2\n---\nkind: PodDisruptionBudget\n---\n\
                        kind: GRPCRoute\n---\nspec:\n  rateLimit:\n    local:\n      rules:\n      - limit: {}\n";
        for b in &BREAKAGES {
            let broken = b.apply(manifest).unwrap();
            assert!(broken.contains(b.with), "{}", b.label);
        }
        assert!(
            BREAKAGES[0].apply("kind: Deployment\n").is_err(),
            "nothing to break is an error"
        );
    }

    #[test]
    fn lines_are_replaced_whole_and_counted() {
        assert_eq!(
            replace_lines("a\n  port: 1\n  port: 1\n", "  port: 1", "  port: 2", 1),
            "a\n  port: 2\n  port: 1\n"
        );
        assert_eq!(
            replace_lines("  port: 10\n", "  port: 1", "x", 1),
            "  port: 10\n",
            "whole lines only"
        );
        assert_eq!(
            replace_lines("k: v\nk: v", "k: v", "k: w", usize::MAX),
            "k: w\nk: w"
        );
    }

    #[test]
    fn names_and_counts() {
        assert_eq!(
            rendered_name("k8s/overlays/cluster"),
            "k8s-overlays-cluster.yaml"
        );
        assert_eq!(rendered_name("k8s/base/"), "k8s-base.yaml");
        assert_eq!(
            count_objects("kind: A\n---\nkind: B\nspec:\n  kind: nested\n"),
            2
        );
    }

    #[test]
    fn kustomizations_are_base_then_sorted_overlays() {
        let dirs = kustomizations(&crate::k8s::root()).unwrap();
        assert_eq!(dirs[0], "k8s/base");
        assert!(dirs.contains(&"k8s/overlays/cluster".to_owned()));
        assert!(dirs.contains(&"k8s/postgres".to_owned()));
        assert!(dirs.contains(&"k8s/overlays/bench-tiers/global".to_owned()));
        assert!(!dirs.contains(&"k8s/overlays/bench-tiers".to_owned()));
        assert!(dirs[1..].is_sorted());
    }

    fn template(config: &str) -> String {
        let indented: String = config.lines().map(|l| format!("    {l}\n")).collect();
        format!(
            "---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: eg\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: envoy-gateway-config\ndata:\n  envoy-gateway.yaml: |\n{indented}"
        )
    }

    const GOOD: &str = "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: EnvoyGateway\n\
                        extensionApis:\n  enableBackend: true\n  enableEnvoyPatchPolicy: true\n  enableLua: true\n\
                        runtimeFlags:\n  enabled:\n  - XDSNameSchemeV2\n\
                        rateLimit:\n  backend:\n    type: Redis\n    redis:\n      \
                        url: redis.envoy-gateway-system.svc.cluster.local:6379\n";

    #[test]
    fn eg_config_with_our_values_passes() {
        check_eg_config(&template(GOOD)).unwrap();
    }

    #[test]
    fn eg_config_missing_a_setting_fails() {
        for (from, to) in [
            ("enableBackend: true", "enableBackend: false"),
            ("enableLua: true", "enableLua: false"),
            ("enableEnvoyPatchPolicy", "enableEnvoyPatchPolicies"),
            ("  - XDSNameSchemeV2", "  - SomethingElse"),
            ("runtimeFlags:", "runtimeFlag:"),
            ("kind: EnvoyGateway", "kind: EnvoyProxy"),
            ("type: Redis", "type: Memcached"),
            ("system.svc", "other.svc"),
        ] {
            let bad = GOOD.replace(from, to);
            assert_ne!(bad, GOOD);
            assert!(check_eg_config(&template(&bad)).is_err(), "{from} -> {to}");
        }
        assert!(
            check_eg_config("kind: ServiceAccount\n").is_err(),
            "no ConfigMap"
        );
    }
}
