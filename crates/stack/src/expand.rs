//! `${...}` substitution in profile strings.

use std::{collections::BTreeMap, path::PathBuf};

/// What `${name}` may refer to, and the environment `${env:NAME}` and
/// `${which:TOOL}` (through PATH) read: a snapshot, so a resolution is a
/// function of its inputs.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    pub values: BTreeMap<String, String>,
    pub env: BTreeMap<String, String>,
}

impl Vars {
    /// Replaces every `${...}` in `text`; `$$` is a literal `$`.
    pub fn expand(&self, text: &str) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
            } else if let Some(tail) = after.strip_prefix('{') {
                let end = tail
                    .find('}')
                    .ok_or_else(|| format!("unclosed ${{ in {text:?}"))?;
                out.push_str(&self.lookup(&tail[..end])?);
                rest = &tail[end + 1..];
            } else {
                return Err(format!(
                    "a lone $ in {text:?} (write $$ for a literal $, ${{name}} for a variable)"
                ));
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    fn lookup(&self, reference: &str) -> Result<String, String> {
        if let Some(name) = reference.strip_prefix("env:") {
            let (name, default) = match name.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (name, None),
            };
            return match (self.env.get(name), default) {
                (Some(value), _) if !value.is_empty() => Ok(value.clone()),
                (_, Some(default)) => self.expand(default),
                (_, None) => Err(format!("environment variable {name} is not set")),
            };
        }
        if let Some(tool) = reference.strip_prefix("which:") {
            return self
                .which(tool)
                .map(|path| path.display().to_string())
                .ok_or_else(|| format!("{tool} is not on PATH"));
        }
        self.values.get(reference).cloned().ok_or_else(|| {
            let known: Vec<&str> = self.values.keys().map(String::as_str).collect();
            format!(
                "unknown variable ${{{reference}}} (known: {}, env:NAME, which:TOOL)",
                known.join(", ")
            )
        })
    }
}

impl Vars {
    /// The executable `name` resolves to on the snapshot's PATH.
    pub fn which(&self, name: &str) -> Option<PathBuf> {
        which_in(self.env.get("PATH")?, name)
    }
}

/// The executable `name` resolves to on this process's PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    which_in(&std::env::var("PATH").ok()?, name)
}

fn which_in(path: &str, name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars {
            values: [("state".to_owned(), "/s".to_owned())].into(),
            env: [("PATH".to_owned(), std::env::var("PATH").unwrap())].into(),
        }
    }

    #[test]
    fn substitutes_variables_env_and_escapes() {
        let vars = vars();
        assert_eq!(vars.expand("${state}/x").unwrap(), "/s/x");
        assert_eq!(vars.expand("a$$b").unwrap(), "a$b");
        assert_eq!(
            vars.expand("${env:STACK_TEST_SURELY_UNSET:-10}").unwrap(),
            "10"
        );
        assert_eq!(
            vars.expand("${which:sh}").unwrap(),
            which("sh").unwrap().display().to_string()
        );
    }

    #[test]
    fn names_what_is_missing() {
        let vars = vars();
        let err = vars.expand("${env:STACK_TEST_SURELY_UNSET}").unwrap_err();
        assert!(err.contains("STACK_TEST_SURELY_UNSET is not set"), "{err}");
        let err = vars.expand("${nope}").unwrap_err();
        assert!(
            err.contains("unknown variable ${nope}") && err.contains("state"),
            "{err}"
        );
        assert!(vars.expand("${state").is_err());
        assert!(vars.expand("cost $5").is_err());
        assert!(vars.expand("${which:surely-no-such-tool}").is_err());
    }
}
