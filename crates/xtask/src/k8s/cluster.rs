//! `test-cluster`: the local cluster end to end (CI). Up, the user's path
//! (images, deploy, smoke, status, logs), every e2e suite and the cluster
//! faults through its gateway, undeploy, down. The cluster itself is
//! k8s/local-cluster/cluster.sh.

use std::{path::Path, time::Instant};

use super::{Error, Result, cmd::cmd, context::LOCAL_CLUSTER, deploy, image, smoke};

/// `cluster.sh env` prints `KEY=VALUE` lines (where tests reach the gateway).
pub fn parse_env(text: &str) -> Result<Vec<(String, String)>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.split_once('=')
                .filter(|(k, _)| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| Error::parse("cluster.sh env", format!("not KEY=VALUE: {l:?}")))
        })
        .collect()
}

/// Stops the cluster however the run ends.
struct Down<'a>(&'a Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        if let Err(err) = cluster_sh(self.0, "down").run() {
            eprintln!("test-cluster: {err}");
        }
    }
}

fn cluster_sh(root: &Path, command: &str) -> super::cmd::Cmd {
    cmd(root.join("k8s/local-cluster/cluster.sh")).arg(command)
}

pub fn test(root: &Path, work: &Path, eg_version: &str) -> Result<()> {
    cluster_sh(root, "up").run()?;
    let _down = Down(root);
    let cargo_test = || {
        cmd("cargo")
            .dir(root)
            .args(["test", "--locked", "-p", "e2e"])
    };
    cargo_test().arg("--no-run").run()?;
    cmd("go")
        .dir(&root.join("k8s/local-cluster/components"))
        .args(["test", "./kube"])
        .run()?;
    let started = Instant::now();
    image::build(root)?;
    deploy::deploy(root, work, eg_version)?;
    smoke::run(&smoke::gateway(None, work)?, smoke::burst_size(None)?)?;
    deploy::status(work)?;
    deploy::logs(&[])?;
    let env = parse_env(&cluster_sh(root, "env").read()?)?;
    let with_env = |c: super::cmd::Cmd| {
        env.iter()
            .fold(c, |c, (k, v)| c.env(k, v))
            .env("E2E_KUBE_CONTEXT", LOCAL_CLUSTER)
            // The cluster overlay runs the global tier (k8s/global-limits).
            .env("E2E_RATE_LIMIT_TIER", "global")
    };
    with_env(cargo_test()).run()?;
    // Exact across the two Envoy replicas, where each alone would admit
    // the limit.
    with_env(cargo_test())
        .args(["--test", "global_limits", "--", "--nocapture"])
        .run()?;
    with_env(cargo_test())
        .args([
            "--test",
            "cluster_faults",
            "--",
            "--include-ignored",
            "--test-threads=1",
            "--nocapture",
        ])
        .run()?;
    deploy::undeploy(root, work)?;
    println!(
        "test-cluster: ok in {} s (after cluster-up)",
        started.elapsed().as_secs()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_lines_become_pairs() {
        let env = parse_env("E2E_GATEWAY=http://10.96.0.10:8080\nE2E_CLIENT_CIDR=10.244.0.0/16\n")
            .unwrap();
        assert_eq!(
            env,
            [
                (
                    "E2E_GATEWAY".to_owned(),
                    "http://10.96.0.10:8080".to_owned()
                ),
                ("E2E_CLIENT_CIDR".to_owned(), "10.244.0.0/16".to_owned())
            ]
        );
        assert!(parse_env("").unwrap().is_empty());
        assert!(parse_env("no gateway deployed").is_err());
        assert!(parse_env("=x").is_err());
        assert!(parse_env("A B=c").is_err());
    }
}
