//! The service images: their tag, and `images` (Docker, or the local
//! cluster's buildah builder on a machine without a Docker engine).

use std::path::Path;

use super::{Error, Result, SERVICES, cmd::cmd, read};

/// What an image is built from: a change here makes the tag `-dirty`.
const IMAGE_INPUTS: [&str; 5] = ["Cargo.toml", "Cargo.lock", "crates", "proto", "Dockerfile"];

/// `[workspace.package] version` of the root Cargo.toml.
pub fn workspace_version(cargo_toml: &str) -> Result<String> {
    let doc: toml::Table = cargo_toml
        .parse()
        .map_err(|err| Error::parse("Cargo.toml", err))?;
    doc.get("workspace")
        .and_then(|w| w.get("package"))
        .and_then(|p| p.get("version"))
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or_else(|| Error::parse("Cargo.toml", "no [workspace.package] version"))
}

/// `<version>-<short sha>[-dirty]`: a rebuilt image gets a new tag, so a
/// rollout really replaces the pods.
pub fn tag(version: &str, sha: &str, dirty: bool) -> String {
    format!("{version}-{sha}{}", if dirty { "-dirty" } else { "" })
}

/// The tag of images built from the working tree as it is.
pub fn current_tag(root: &Path) -> Result<String> {
    let version = workspace_version(&read(&root.join("Cargo.toml"))?)?;
    let sha = cmd("git")
        .dir(root)
        .args(["rev-parse", "--short=8", "HEAD"])
        .read()?;
    let clean = cmd("git")
        .dir(root)
        .args(["diff", "--quiet", "HEAD", "--"])
        .args(IMAGE_INPUTS)
        .succeeds();
    Ok(tag(&version, sha.trim(), !clean))
}

/// Whether a Docker engine answers.
pub fn docker() -> bool {
    cmd("docker").arg("info").succeeds()
}

/// Builds both images with Docker, tagged `<tag>` and `<version>`; without
/// a Docker engine, the local cluster's builder (buildah, loaded into its
/// containerd).
pub fn build(root: &Path) -> Result<()> {
    if !docker() {
        return cmd(root.join("k8s/local-cluster/cluster.sh"))
            .arg("images")
            .run();
    }
    let tag = current_tag(root)?;
    let version = tag.split('-').next().unwrap_or(&tag).to_owned();
    for svc in SERVICES.iter() {
        println!("==> envoy-poc/{svc}:{tag}");
        cmd("docker")
            .dir(root)
            .args(["build", "--build-arg", &format!("SERVICE={svc}")])
            .args(["-t", &format!("envoy-poc/{svc}:{tag}")])
            .args(["-t", &format!("envoy-poc/{svc}:{version}"), "."])
            .run()?;
    }
    cmd("docker")
        .args(["image", "ls", "--filter", "reference=envoy-poc/*"])
        .args(["--format", "{{.Repository}}:{{.Tag}}  {{.Size}}"])
        .run()?;
    println!(
        "kind users: kind load docker-image {}",
        SERVICES
            .iter()
            .map(|svc| format!("envoy-poc/{svc}:{tag}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_comes_from_the_workspace_package() {
        let toml = "[workspace]\nmembers = []\n\n[workspace.package]\nversion = \"1.2.3\"\nedition = \"2024\"\n\n[dependencies]\nversion = \"9\"\n";
        assert_eq!(workspace_version(toml).unwrap(), "1.2.3");
        assert!(workspace_version("[package]\nversion = \"1.0.0\"\n").is_err());
        let real = read(&super::super::root().join("Cargo.toml")).unwrap();
        assert!(workspace_version(&real).unwrap().split('.').count() == 3);
    }

    #[test]
    fn tags_carry_version_sha_and_dirtiness() {
        assert_eq!(tag("0.1.0", "abcdef12", false), "0.1.0-abcdef12");
        assert_eq!(tag("0.1.0", "abcdef12", true), "0.1.0-abcdef12-dirty");
    }
}
