//! `pins.toml`: every pinned tool version, read into typed rows. The file is
//! compiled in, so `cargo xtask` never reads a different copy than the one it
//! was built with (cargo rebuilds it when the file changes).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

/// The committed pins file.
pub const PINS_TOML: &str = include_str!("../pins.toml");

/// Where `PINS_TOML` lives, for tests and error messages.
pub const PINS_PATH: &str = "crates/xtask/pins.toml";

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("{PINS_PATH}: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("{PINS_PATH}: no tool `{0}` (known: {1})")]
    Unknown(String, String),
    #[error("{PINS_PATH}: tool `{tool}`: {problem}")]
    Invalid { tool: String, problem: String },
}

/// How a tool gets onto the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Install {
    /// `go install <module>@<version>`; the binary is named after the tool.
    Go { module: String },
    /// `pip install <package>==<version>` into a venv under the tools dir.
    Pip {
        package: String,
        venv: String,
        links: Vec<String>,
    },
    /// `cargo install <package> --version <version> --root <tools>/<name>-<version>`.
    Cargo { package: String, links: Vec<String> },
    /// A tar.gz artifact from Maven Central, unpacked into `<tools>/<name>-<version>`;
    /// `needs_java`: the least Java major version it runs on, linked as `<tools>/jdk`.
    Maven {
        artifact: String,
        needs_java: Option<u32>,
    },
    /// Debian's `<package>=<version>`.
    Apt { package: String },
    /// Only a version (another installer or a script uses it).
    Pin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    pub name: String,
    pub version: String,
    pub group: String,
    pub install: Install,
}

/// The pins file, parsed and checked.
#[derive(Debug, Clone)]
pub struct Pins {
    tools: BTreeMap<String, Tool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    tool: BTreeMap<String, RawTool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTool {
    version: Option<String>,
    same_as: Option<String>,
    group: String,
    kind: String,
    module: Option<String>,
    package: Option<String>,
    venv: Option<String>,
    #[serde(default)]
    links: Vec<String>,
    artifact: Option<String>,
    needs_java: Option<u32>,
    // Documentation only: why the tool is here.
    #[allow(dead_code)]
    about: Option<String>,
}

impl Pins {
    /// The committed pins file.
    pub fn load() -> Result<Self, PinError> {
        Self::parse(PINS_TOML)
    }

    pub fn parse(text: &str) -> Result<Self, PinError> {
        let raw: RawFile = toml::from_str(text)?;
        let mut tools = BTreeMap::new();
        for (name, row) in &raw.tool {
            let version = version_of(&raw.tool, name, row)?;
            let invalid = |problem: String| PinError::Invalid {
                tool: name.clone(),
                problem,
            };
            let need = |field: &Option<String>, what: &str| {
                field
                    .clone()
                    .map(|v| v.replace("{version}", &version))
                    .ok_or_else(|| invalid(format!("kind `{}` needs `{what}`", row.kind)))
            };
            let install = match row.kind.as_str() {
                "go" => Install::Go {
                    module: need(&row.module, "module")?,
                },
                "pip" => Install::Pip {
                    package: need(&row.package, "package")?,
                    venv: need(&row.venv, "venv")?,
                    links: row.links.clone(),
                },
                "cargo" => Install::Cargo {
                    package: need(&row.package, "package")?,
                    links: row.links.clone(),
                },
                "maven" => Install::Maven {
                    artifact: need(&row.artifact, "artifact")?,
                    needs_java: row.needs_java,
                },
                "apt" => Install::Apt {
                    package: need(&row.package, "package")?,
                },
                "pin" => Install::Pin,
                other => {
                    return Err(invalid(format!(
                        "unknown kind `{other}` (go, pip, cargo, maven, apt, pin)"
                    )));
                }
            };
            tools.insert(
                name.clone(),
                Tool {
                    name: name.clone(),
                    version,
                    group: row.group.clone(),
                    install,
                },
            );
        }
        Ok(Self { tools })
    }

    pub fn tool(&self, name: &str) -> Result<&Tool, PinError> {
        self.tools.get(name).ok_or_else(|| {
            PinError::Unknown(
                name.to_string(),
                self.tools.keys().cloned().collect::<Vec<_>>().join(", "),
            )
        })
    }

    /// The pinned version of `name`.
    pub fn version(&self, name: &str) -> Result<&str, PinError> {
        Ok(&self.tool(name)?.version)
    }

    pub fn tools(&self) -> impl Iterator<Item = &Tool> {
        self.tools.values()
    }

    /// The tools of a group, by name.
    pub fn group(&self, group: &str) -> Vec<&Tool> {
        self.tools.values().filter(|t| t.group == group).collect()
    }

    /// Every pin as `NAME_VERSION='...'` lines for `eval` in a shell script:
    /// `envoy-gateway` becomes `ENVOY_GATEWAY_VERSION`.
    pub fn shell(&self) -> String {
        let mut out = String::new();
        for tool in self.tools.values() {
            // Versions hold no single quote (checked by a test), so single
            // quoting is enough for any character they do hold (`~`, `+`, `:`).
            let _ = writeln!(out, "{}='{}'", shell_name(&tool.name), tool.version);
        }
        out
    }
}

/// `envoy-gateway` -> `ENVOY_GATEWAY_VERSION`.
pub fn shell_name(tool: &str) -> String {
    format!("{}_VERSION", tool.to_uppercase().replace('-', "_"))
}

fn version_of(
    all: &BTreeMap<String, RawTool>,
    name: &str,
    row: &RawTool,
) -> Result<String, PinError> {
    let invalid = |problem: &str| PinError::Invalid {
        tool: name.to_string(),
        problem: problem.to_string(),
    };
    match (&row.version, &row.same_as) {
        (Some(v), None) if !v.is_empty() && !v.contains(['\'', '\n', ' ']) => Ok(v.clone()),
        (Some(_), None) => Err(invalid("empty version, or one with a quote or blank")),
        (None, Some(other)) => match all.get(other) {
            Some(RawTool {
                version: Some(v),
                same_as: None,
                ..
            }) => Ok(v.clone()),
            Some(_) => Err(invalid("`same_as` must name a tool with its own `version`")),
            None => Err(invalid("`same_as` names no tool")),
        },
        (Some(_), Some(_)) => Err(invalid("both `version` and `same_as`")),
        (None, None) => Err(invalid("no `version` (or `same_as`)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_file_loads_and_knows_the_tools_the_recipes_use() {
        let pins = Pins::load().unwrap();
        for name in [
            "just",
            "envoy",
            "envoy-gateway",
            "egctl",
            "grpcurl",
            "helm",
            "keycloak",
            "maven-dependency-plugin",
            "buildah",
        ] {
            assert!(!pins.version(name).unwrap().is_empty(), "{name}");
        }
        // One release of Envoy Gateway: the server and its CLI.
        assert_eq!(
            pins.version("egctl").unwrap(),
            pins.version("envoy-gateway").unwrap()
        );
        assert!(!pins.group("default").is_empty());
    }

    #[test]
    fn an_unknown_tool_is_an_error_that_lists_the_known_ones() {
        let pins = Pins::load().unwrap();
        let err = pins.version("hlem").unwrap_err().to_string();
        assert!(
            err.contains("no tool `hlem`") && err.contains("helm"),
            "{err}"
        );
    }

    #[test]
    fn rows_are_checked() {
        let bad = [
            ("[tool.a]\ngroup = \"g\"\nkind = \"pin\"\n", "no `version`"),
            (
                "[tool.a]\nversion = \"1\"\ngroup = \"g\"\nkind = \"go\"\n",
                "needs `module`",
            ),
            (
                "[tool.a]\nversion = \"1\"\ngroup = \"g\"\nkind = \"npm\"\n",
                "unknown kind",
            ),
            (
                "[tool.a]\nsame_as = \"b\"\ngroup = \"g\"\nkind = \"pin\"\n",
                "names no tool",
            ),
            (
                "[tool.a]\nversion = \"1'\"\ngroup = \"g\"\nkind = \"pin\"\n",
                "quote",
            ),
            (
                "[tool.a]\nversion = \"1\"\ngroup = \"g\"\nkind = \"pin\"\nmodle = \"x\"\n",
                "unknown field",
            ),
        ];
        for (text, want) in bad {
            let err = Pins::parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn version_placeholders_are_filled_in() {
        let pins = Pins::parse(
            "[tool.st]\nversion = \"4.1\"\ngroup = \"g\"\nkind = \"pip\"\npackage = \"s\"\nvenv = \"s-{version}\"\n",
        )
        .unwrap();
        assert_eq!(
            pins.tool("st").unwrap().install,
            Install::Pip {
                package: "s".into(),
                venv: "s-4.1".into(),
                links: vec![]
            }
        );
    }

    #[test]
    fn shell_lines_are_named_after_the_tool() {
        let pins = Pins::parse(
            "[tool.envoy-gateway]\nversion = \"v1\"\ngroup = \"g\"\nkind = \"pin\"\n\
             [tool.conntrack]\nversion = \"1:2.3-4+b5\"\ngroup = \"g\"\nkind = \"pin\"\n",
        )
        .unwrap();
        assert_eq!(
            pins.shell(),
            "CONNTRACK_VERSION='1:2.3-4+b5'\nENVOY_GATEWAY_VERSION='v1'\n"
        );
    }
}
