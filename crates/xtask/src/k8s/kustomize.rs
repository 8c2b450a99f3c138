//! Kustomizations written by code: throwaway overlays under .local that
//! combine committed ones (a build's image tags, the auth layer) without
//! editing tracked files.

use std::path::{Component, Path, PathBuf};

use super::{Error, Result, SERVICES, cmd::cmd, write};

#[derive(Debug, Default)]
pub struct Kustomization {
    pub resources: Vec<PathBuf>,
    pub components: Vec<PathBuf>,
    /// Image name -> new tag.
    pub image_tags: Vec<(String, String)>,
}

impl Kustomization {
    /// Every service image at `tag`.
    pub fn with_service_tag(mut self, tag: &str) -> Self {
        self.image_tags = SERVICES
            .iter()
            .map(|svc| (format!("envoy-poc/{svc}"), tag.to_owned()))
            .collect();
        self
    }

    /// The kustomization.yaml for directory `dir` (kustomize wants the
    /// paths relative to it).
    pub fn render(&self, dir: &Path) -> Result<String> {
        let list = |paths: &[PathBuf]| -> Result<String> {
            let relative = paths
                .iter()
                .map(|p| relative(dir, p).map(|r| quote(&r)))
                .collect::<Result<Vec<_>>>()?;
            Ok(format!("[{}]", relative.join(", ")))
        };
        let mut out = String::from(
            "# Written by `cargo xtask` (crates/xtask/src/k8s); not tracked.\n\
             apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n",
        );
        out += &format!("resources: {}\n", list(&self.resources)?);
        if !self.components.is_empty() {
            out += &format!("components: {}\n", list(&self.components)?);
        }
        if !self.image_tags.is_empty() {
            out += "images:\n";
            for (name, tag) in &self.image_tags {
                out += &format!("  - {{name: {}, newTag: {}}}\n", quote(name), quote(tag));
            }
        }
        Ok(out)
    }

    /// Writes `dir/kustomization.yaml`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        write(&dir.join("kustomization.yaml"), self.render(dir)?)
    }
}

/// `kubectl kustomize dir`.
pub fn build(dir: &Path) -> Result<String> {
    cmd("kubectl").arg("kustomize").arg(dir).read()
}

/// JSON strings are YAML strings: no surprises with tags like "1.0".
fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// `target` relative to `base`; both absolute (or both relative to the same
/// place), without `..` of their own.
pub fn relative(base: &Path, target: &Path) -> Result<String> {
    let parts = |p: &Path| -> Result<Vec<String>> {
        p.components()
            .filter(|c| !matches!(c, Component::CurDir))
            .map(|c| match c {
                Component::Normal(s) => Ok(s.to_string_lossy().into_owned()),
                Component::RootDir => Ok("/".to_owned()),
                _ => Err(Error::parse(p.display().to_string(), "a path without '..'")),
            })
            .collect()
    };
    let (base, target) = (parts(base)?, parts(target)?);
    let common = base.iter().zip(&target).take_while(|(a, b)| a == b).count();
    let up = std::iter::repeat_n("..".to_owned(), base.len() - common);
    let down = target[common..].iter().cloned();
    let joined: Vec<String> = up.chain(down).collect();
    Ok(if joined.is_empty() {
        ".".to_owned()
    } else {
        joined.join("/")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_climb_to_the_common_ancestor() {
        let r = |a: &str, b: &str| relative(Path::new(a), Path::new(b)).unwrap();
        assert_eq!(
            r("/repo/.local/k8s/deploy", "/repo/k8s/overlays/cluster"),
            "../../../k8s/overlays/cluster"
        );
        assert_eq!(
            r("/repo/.local/k8s/deploy-auth", "/repo/.local/k8s/deploy"),
            "../deploy"
        );
        assert_eq!(r("/repo/a", "/repo/a"), ".");
        assert!(relative(Path::new("/repo/../x"), Path::new("/repo")).is_err());
    }

    #[test]
    fn deploy_overlay_pins_the_build_tag_on_both_images() {
        let dir = Path::new("/repo/.local/k8s/deploy");
        let k = Kustomization {
            resources: vec!["/repo/k8s/overlays/cluster".into()],
            ..Default::default()
        }
        .with_service_tag("0.1.0-abcdef12-dirty");
        let yaml = k.render(dir).unwrap();
        assert_eq!(
            yaml,
            "# Written by `cargo xtask` (crates/xtask/src/k8s); not tracked.\n\
             apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
             resources: [\"../../../k8s/overlays/cluster\"]\n\
             images:\n  - {name: \"envoy-poc/customer-service\", newTag: \"0.1.0-abcdef12-dirty\"}\n  \
             - {name: \"envoy-poc/product-service\", newTag: \"0.1.0-abcdef12-dirty\"}\n"
        );
        let parsed: serde_norway::Value = serde_norway::from_str(&yaml).unwrap();
        assert_eq!(
            parsed["images"][1]["newTag"].as_str(),
            Some("0.1.0-abcdef12-dirty")
        );
    }

    #[test]
    fn auth_overlay_adds_components() {
        let k = Kustomization {
            resources: vec!["/r/.local/k8s/deploy".into(), "/r/k8s/keycloak".into()],
            components: vec!["/r/k8s/auth".into()],
            ..Default::default()
        };
        let parsed: serde_norway::Value =
            serde_norway::from_str(&k.render(Path::new("/r/.local/k8s/deploy-auth")).unwrap())
                .unwrap();
        assert_eq!(parsed["resources"][0].as_str(), Some("../deploy"));
        assert_eq!(
            parsed["resources"][1].as_str(),
            Some("../../../k8s/keycloak")
        );
        assert_eq!(parsed["components"][0].as_str(), Some("../../../k8s/auth"));
        assert!(parsed.get("images").is_none());
    }
}
