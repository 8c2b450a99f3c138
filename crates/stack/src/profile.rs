//! Profiles (crates/stack/profiles.toml): parsing, `extends`, and their
//! expansion into the concrete processes a run starts.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use envoy_ext::services::ServiceTable;
use serde::{Deserialize, Serialize};

use crate::{Error, expand::Vars};

/// The committed profiles, compiled in so the binary works from any directory.
pub const PROFILES_TOML: &str = include_str!("../profiles.toml");

/// Stands for every service instance in `depends_on`.
pub const SERVICES_GROUP: &str = "@services";

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// One process a profile runs, fully resolved: what `up` starts and what the
/// state directory records for `down`, `restart` and `running`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub depends_on: Vec<String>,
    pub ready: Ready,
    pub timeout_ms: u64,
    pub ports: Vec<u16>,
    pub prepare: Vec<Prepare>,
}

/// A step run before the process starts; with `always`, also on an `up`
/// that finds it running (the gateway's resources: the File provider
/// applies a changed overlay live).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prepare {
    pub step: Step,
    pub always: bool,
}

impl Process {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// When a started process counts as ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ready {
    /// 127.0.0.1:port accepts a connection.
    Tcp { port: u16 },
    /// An HTTP GET answers with this status.
    Http { url: String, status: u16 },
    /// A command exits 0.
    Command { argv: Vec<String> },
}

/// Work done before a process starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Run a command; its stdout replaces `stdout` atomically, or its output
    /// goes to logs/<log>.log; skipped while `creates` exists.
    Run {
        argv: Vec<String>,
        stdout: Option<PathBuf>,
        creates: Option<PathBuf>,
        log: Option<String>,
    },
    /// Write a rendered template.
    Write { to: PathBuf, content: String },
    /// A symbolic link `path` -> `target`.
    Link { path: PathBuf, target: PathBuf },
    /// Copy files matching the patterns (a `*` in the file name) into a
    /// directory, after removing the files there that match `clean`.
    Copy {
        from: Vec<PathBuf>,
        into: PathBuf,
        clean: Option<String>,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    #[serde(default)]
    #[allow(dead_code)] // read by people, not by the runner
    description: Option<String>,
    #[serde(default)]
    #[allow(dead_code)] // resolved on the raw table before this is parsed
    extends: Option<String>,
    #[serde(default)]
    vars: BTreeMap<String, String>,
    services: Option<RawServices>,
    #[serde(default)]
    process: BTreeMap<String, RawProcess>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServices {
    #[serde(default)]
    instances: u16,
    bin_dir: String,
    #[serde(default)]
    env: BTreeMap<String, String>,
    timeout: Option<String>,
    /// Processes every instance needs first (e.g. the database).
    #[serde(default)]
    depends_on: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProcess {
    command: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    depends_on: Vec<String>,
    ready: RawReady,
    timeout: Option<String>,
    #[serde(default)]
    ports: Vec<PortRef>,
    #[serde(default)]
    prepare: Vec<RawStep>,
}

/// A port as a number or as a string with variables (`"${gateway_port}"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum PortRef {
    Number(u16),
    Text(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReady {
    tcp: Option<PortRef>,
    http: Option<String>,
    status: Option<u16>,
    command: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    run: Option<Vec<String>>,
    stdout: Option<String>,
    creates: Option<String>,
    log: Option<String>,
    template: Option<String>,
    to: Option<String>,
    link: Option<String>,
    target: Option<String>,
    copy: Option<Vec<String>>,
    into: Option<String>,
    clean: Option<String>,
    #[serde(default)]
    always: bool,
}

/// A profiles file: every profile checked when it is read.
#[derive(Debug, Clone)]
pub struct Profiles {
    source: String,
    raw: BTreeMap<String, toml::Table>,
}

/// One profile, `extends` applied.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    raw: RawProfile,
}

/// What a profile is resolved against.
pub struct Context<'a> {
    pub root: &'a Path,
    pub state: &'a Path,
    pub sets: &'a BTreeMap<String, String>,
    pub table: &'a ServiceTable,
    /// The environment `${env:...}` and PATH lookups read.
    pub env: &'a BTreeMap<String, String>,
}

impl Profiles {
    pub fn committed() -> Result<Self, Error> {
        Self::parse(PROFILES_TOML, "crates/stack/profiles.toml")
    }

    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, source: &str) -> Result<Self, Error> {
        let invalid = |message: String| Error::Profiles {
            path: source.to_owned(),
            message,
        };
        let mut file: toml::Table = toml::from_str(text).map_err(|err| invalid(err.to_string()))?;
        let profiles = match file.remove("profile") {
            Some(toml::Value::Table(profiles)) => profiles,
            Some(_) => return Err(invalid("`profile` must be a table".into())),
            None => return Err(invalid("no [profile.NAME] tables".into())),
        };
        if let Some(key) = file.keys().next() {
            return Err(invalid(format!("unknown top-level key {key}")));
        }
        let mut raw = BTreeMap::new();
        for (name, value) in profiles {
            match value {
                toml::Value::Table(table) => {
                    raw.insert(name, table);
                }
                _ => return Err(invalid(format!("profile.{name} must be a table"))),
            }
        }
        let profiles = Self {
            source: source.to_owned(),
            raw,
        };
        for name in profiles.names() {
            profiles.profile(&name)?;
        }
        Ok(profiles)
    }

    pub fn names(&self) -> Vec<String> {
        self.raw.keys().cloned().collect()
    }

    /// The profile `name` with its `extends` chain merged in.
    pub fn profile(&self, name: &str) -> Result<Profile, Error> {
        let merged = self.merged(name, &mut Vec::new())?;
        let raw: RawProfile =
            toml::Value::Table(merged)
                .try_into()
                .map_err(|err: toml::de::Error| Error::Profiles {
                    path: self.source.clone(),
                    message: format!("profile {name}: {err}"),
                })?;
        Ok(Profile {
            name: name.to_owned(),
            raw,
        })
    }

    fn merged(&self, name: &str, chain: &mut Vec<String>) -> Result<toml::Table, Error> {
        let table = self.raw.get(name).ok_or_else(|| Error::UnknownProfile {
            name: name.to_owned(),
            known: self.names().join(", "),
        })?;
        if chain.iter().any(|seen| seen == name) {
            chain.push(name.to_owned());
            return Err(Error::Profiles {
                path: self.source.clone(),
                message: format!("extends loop: {}", chain.join(" -> ")),
            });
        }
        chain.push(name.to_owned());
        let mut base = match table.get("extends") {
            Some(toml::Value::String(parent)) => self.merged(parent, chain)?,
            Some(_) => {
                return Err(Error::Profiles {
                    path: self.source.clone(),
                    message: format!("profile {name}: extends must be a profile name"),
                });
            }
            None => toml::Table::new(),
        };
        merge(&mut base, table.clone());
        Ok(base)
    }
}

/// Tables merge key by key; any other value replaces the base's.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(value)) => merge(inner, value),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// The name of instance `index` (0-based) of a service: the service's name,
/// then `<name>-2`, `<name>-3`, ...
pub fn instance_name(service: &str, index: u16) -> String {
    if index == 0 {
        service.to_owned()
    } else {
        format!("{service}-{}", u32::from(index) + 1)
    }
}

impl Profile {
    /// The variables of this profile in `context`, `--set` applied.
    fn vars(&self, context: &Context) -> Result<Vars, Error> {
        let mut vars = Vars {
            values: BTreeMap::new(),
            env: context.env.clone(),
        };
        vars.values
            .insert("root".into(), context.root.display().to_string());
        vars.values
            .insert("state".into(), context.state.display().to_string());
        vars.values.insert("profile".into(), self.name.clone());
        vars.values.insert(
            "gateway_port".into(),
            context.table.gateway.port.to_string(),
        );
        let builtins = vars.clone();
        for (name, value) in &self.raw.vars {
            if builtins.values.contains_key(name) {
                return Err(self.error("vars", format!("{name} is a built-in variable")));
            }
            let value = match context.sets.get(name) {
                Some(value) => value.clone(),
                None => builtins
                    .expand(value)
                    .map_err(|message| self.error(&format!("vars.{name}"), message))?,
            };
            vars.values.insert(name.clone(), value);
        }
        if let Some(name) = context
            .sets
            .keys()
            .find(|name| !self.raw.vars.contains_key(*name))
        {
            let known: Vec<&str> = self.raw.vars.keys().map(String::as_str).collect();
            return Err(Error::Usage(format!(
                "--set {name}: profile {} has no variable {name} (it has: {})",
                self.name,
                known.join(", ")
            )));
        }
        Ok(vars)
    }

    fn error(&self, field: &str, message: String) -> Error {
        Error::Expand {
            context: format!("profile {}, {field}", self.name),
            message,
        }
    }

    /// The processes this profile runs, in the order written (service
    /// instances first); `graph::start_order` sorts them.
    pub fn resolve(&self, context: &Context) -> Result<Vec<Process>, Error> {
        let vars = self.vars(context)?;
        let mut processes = Vec::new();
        let mut instances = Vec::new();
        if let Some(services) = &self.raw.services {
            let field = |name: &str| format!("services.{name}");
            let bin_dir = vars
                .expand(&services.bin_dir)
                .map_err(|message| self.error(&field("bin_dir"), message))?;
            let env = expand_map(&vars, &services.env)
                .map_err(|message| self.error(&field("env"), message))?;
            let timeout = parse_timeout(services.timeout.as_deref())
                .map_err(|message| self.error(&field("timeout"), message))?;
            for service in &context.table.services {
                for index in 0..services.instances {
                    let port = context.table.instance_port(service, index)?;
                    let name = instance_name(&service.name, index);
                    instances.push(name.clone());
                    processes.push(Process {
                        name,
                        program: absolute(context.root, &bin_dir).join(&service.name),
                        args: vec![
                            "--reflect-whole-api".into(),
                            "--port".into(),
                            port.to_string(),
                        ],
                        env: env.clone(),
                        depends_on: services.depends_on.clone(),
                        ready: Ready::Tcp { port },
                        timeout_ms: millis(timeout),
                        ports: vec![port],
                        prepare: Vec::new(),
                    });
                }
            }
        }
        for (name, raw) in &self.raw.process {
            if name.starts_with('@') || processes.iter().any(|p: &Process| &p.name == name) {
                return Err(self.error(
                    &format!("process.{name}"),
                    "the name is taken (a service instance or a group)".into(),
                ));
            }
            processes.push(self.resolve_process(name, raw, &vars, &instances, context.root)?);
        }
        Ok(processes)
    }

    fn resolve_process(
        &self,
        name: &str,
        raw: &RawProcess,
        vars: &Vars,
        instances: &[String],
        root: &Path,
    ) -> Result<Process, Error> {
        let err = |field: &str| {
            let field = format!("process.{name}.{field}");
            move |message: String| self.error(&field, message)
        };
        let command = vars.expand(&raw.command).map_err(err("command"))?;
        let program = program_path(root, &command, vars).map_err(err("command"))?;
        let args = raw
            .args
            .iter()
            .map(|arg| vars.expand(arg))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err("args"))?;
        let env = expand_map(vars, &raw.env).map_err(err("env"))?;
        let mut depends_on = Vec::new();
        for dep in &raw.depends_on {
            if dep == SERVICES_GROUP {
                depends_on.extend(instances.iter().cloned());
            } else {
                depends_on.push(dep.clone());
            }
        }
        let ready = resolve_ready(&raw.ready, vars).map_err(err("ready"))?;
        let timeout = parse_timeout(raw.timeout.as_deref()).map_err(err("timeout"))?;
        let mut ports = raw
            .ports
            .iter()
            .map(|port| port_number(port, vars))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err("ports"))?;
        if let Ready::Tcp { port } = ready
            && !ports.contains(&port)
        {
            ports.push(port);
        }
        let prepare = raw
            .prepare
            .iter()
            .enumerate()
            .map(|(index, step)| {
                Ok(Prepare {
                    step: resolve_step(step, vars, root)
                        .map_err(err(&format!("prepare[{index}]")))?,
                    always: step.always,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Process {
            name: name.to_owned(),
            program,
            args,
            env,
            depends_on,
            ready,
            timeout_ms: millis(timeout),
            ports,
            prepare,
        })
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn parse_timeout(text: Option<&str>) -> Result<Duration, String> {
    text.map_or(Ok(DEFAULT_TIMEOUT), |text| {
        humantime::parse_duration(text).map_err(|err| format!("{text:?}: {err}"))
    })
}

fn expand_map(
    vars: &Vars,
    map: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    map.iter()
        .map(|(key, value)| Ok((key.clone(), vars.expand(value)?)))
        .collect()
}

fn absolute(root: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_owned()
    } else {
        root.join(path)
    }
}

/// A command with a `/` is a path (relative to the repository); a bare name
/// is looked up on PATH now, so a missing tool is named before anything starts.
fn program_path(root: &Path, command: &str, vars: &Vars) -> Result<PathBuf, String> {
    if command.contains('/') {
        Ok(absolute(root, command))
    } else {
        vars.which(command)
            .ok_or_else(|| format!("{command} is not on PATH"))
    }
}

fn port_number(port: &PortRef, vars: &Vars) -> Result<u16, String> {
    match port {
        PortRef::Number(port) => Ok(*port),
        PortRef::Text(text) => {
            let value = vars.expand(text)?;
            value
                .parse()
                .map_err(|_| format!("{text:?} is {value:?}, not a port number"))
        }
    }
}

fn resolve_ready(raw: &RawReady, vars: &Vars) -> Result<Ready, String> {
    let ready = match (&raw.tcp, &raw.http, &raw.command) {
        (Some(port), None, None) => Ready::Tcp {
            port: port_number(port, vars)?,
        },
        (None, Some(url), None) => Ready::Http {
            url: vars.expand(url)?,
            status: raw.status.unwrap_or(200),
        },
        (None, None, Some(argv)) if !argv.is_empty() => Ready::Command {
            argv: argv
                .iter()
                .map(|arg| vars.expand(arg))
                .collect::<Result<_, _>>()?,
        },
        _ => {
            return Err(
                "set exactly one of tcp = PORT, http = URL (with status), command = [...]".into(),
            );
        }
    };
    if raw.status.is_some() && !matches!(ready, Ready::Http { .. }) {
        return Err("status goes with http".into());
    }
    Ok(ready)
}

fn resolve_step(raw: &RawStep, vars: &Vars, root: &Path) -> Result<Step, String> {
    let path = |text: &Option<String>| -> Result<Option<PathBuf>, String> {
        text.as_deref()
            .map(|text| Ok(absolute(root, &vars.expand(text)?)))
            .transpose()
    };
    let set = [
        ("run", raw.run.is_some()),
        ("template", raw.template.is_some()),
        ("link", raw.link.is_some()),
        ("copy", raw.copy.is_some()),
    ];
    let actions: Vec<&str> = set
        .iter()
        .filter(|(_, on)| *on)
        .map(|(name, _)| *name)
        .collect();
    let extras = |allowed: &[&str]| -> Result<(), String> {
        let given = [
            ("stdout", raw.stdout.is_some()),
            ("creates", raw.creates.is_some()),
            ("log", raw.log.is_some()),
            ("to", raw.to.is_some()),
            ("target", raw.target.is_some()),
            ("into", raw.into.is_some()),
            ("clean", raw.clean.is_some()),
        ];
        match given
            .iter()
            .find(|(name, on)| *on && !allowed.contains(name))
        {
            Some((name, _)) => Err(format!("{name} does not go with {}", actions.join(""))),
            None => Ok(()),
        }
    };
    let required = |value: Option<PathBuf>, name: &str| {
        value.ok_or_else(|| format!("{} needs {name}", actions.join("")))
    };
    match actions.as_slice() {
        ["run"] => {
            extras(&["stdout", "creates", "log"])?;
            let argv: Vec<String> = raw
                .run
                .iter()
                .flatten()
                .map(|arg| vars.expand(arg))
                .collect::<Result<_, _>>()?;
            if argv.is_empty() {
                return Err("run = [] is empty".into());
            }
            if raw.stdout.is_some() && raw.log.is_some() {
                return Err("stdout and log exclude each other".into());
            }
            Ok(Step::Run {
                argv,
                stdout: path(&raw.stdout)?,
                creates: path(&raw.creates)?,
                log: raw.log.clone(),
            })
        }
        ["template"] => {
            extras(&["to"])?;
            let from = required(path(&raw.template)?, "template")?;
            let text = std::fs::read_to_string(&from)
                .map_err(|err| format!("{}: {err}", from.display()))?;
            let content = vars
                .expand(&text)
                .map_err(|err| format!("{}: {err}", from.display()))?;
            Ok(Step::Write {
                to: required(path(&raw.to)?, "to")?,
                content,
            })
        }
        ["link"] => {
            extras(&["target"])?;
            Ok(Step::Link {
                path: required(path(&raw.link)?, "link")?,
                target: required(path(&raw.target)?, "target")?,
            })
        }
        ["copy"] => {
            extras(&["into", "clean"])?;
            let from = raw
                .copy
                .iter()
                .flatten()
                .map(|pattern| Ok(absolute(root, &vars.expand(pattern)?)))
                .collect::<Result<Vec<_>, String>>()?;
            Ok(Step::Copy {
                from,
                into: required(path(&raw.into)?, "into")?,
                clean: raw.clean.clone(),
            })
        }
        _ => Err("a step is exactly one of run, template, link, copy".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A PATH with the tools the profiles look up (empty executables: only
    /// their paths are resolved here, nothing runs them).
    struct Fixture {
        dir: PathBuf,
        env: BTreeMap<String, String>,
        table: ServiceTable,
    }

    impl Fixture {
        fn new(tag: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("stack-profile-{tag}-{}", std::process::id()));
            let bin = dir.join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            // What the committed profiles run by name (the scale stack's
            // too: auth builds on it).
            for tool in [
                "envoy",
                "envoy-gateway",
                "kubectl",
                "setpriv",
                "redis-server",
                "ratelimit",
            ] {
                let path = bin.join(tool);
                std::fs::write(&path, "").unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            let env = [
                ("PATH".to_owned(), bin.display().to_string()),
                ("ENVOY_VERSION".to_owned(), "9.9.9-test".to_owned()),
            ]
            .into();
            Self {
                dir,
                env,
                table: ServiceTable::committed().unwrap(),
            }
        }

        fn resolve(&self, name: &str, sets: &[(&str, &str)]) -> Result<Vec<Process>, Error> {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
            let state = self.dir.join("state").join(name);
            let sets = sets
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let processes = Profiles::committed()?.profile(name)?.resolve(&Context {
                root: &root,
                state: &state,
                sets: &sets,
                table: &self.table,
                env: &self.env,
            })?;
            crate::graph::start_order(processes)
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn names(processes: &[Process]) -> Vec<&str> {
        processes.iter().map(|p| p.name.as_str()).collect()
    }

    fn find<'a>(processes: &'a [Process], name: &str) -> &'a Process {
        processes.iter().find(|p| p.name == name).unwrap()
    }

    fn kustomize_overlay(gateway: &Process) -> &str {
        gateway
            .prepare
            .iter()
            .find_map(|prepare| match &prepare.step {
                // The overlay is the kustomize step's last argument.
                Step::Run { argv, .. } if prepare.always => argv.last().map(String::as_str),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn the_committed_profiles() {
        let profiles = Profiles::committed().unwrap();
        assert_eq!(
            profiles.names(),
            [
                "auth",
                "bench",
                "bench-global",
                "bench-local",
                "bench-memory",
                "bench-plain-rest",
                "bench-postgres",
                "dev",
                "fuzz",
                "fuzz-scale",
                "ha",
                "ha-postgres",
                "scale"
            ]
        );
    }

    #[test]
    fn dev_one_instance_each_then_the_gateway() {
        let fixture = Fixture::new("dev");
        let dev = fixture.resolve("dev", &[]).unwrap();
        assert_eq!(
            names(&dev),
            ["customer-service", "product-service", "envoy-gateway"]
        );
        let customer = find(&dev, "customer-service");
        assert!(
            customer.program.ends_with("target/debug/customer-service"),
            "{customer:?}"
        );
        assert_eq!(customer.args, ["--reflect-whole-api", "--port", "50051"]);
        assert_eq!(customer.ready, Ready::Tcp { port: 50051 });
        assert_eq!(find(&dev, "product-service").ports, [50052]);
        let gateway = find(&dev, "envoy-gateway");
        assert_eq!(gateway.depends_on, ["customer-service", "product-service"]);
        assert_eq!(gateway.ports, [8080]);
        assert_eq!(
            gateway.ready,
            Ready::Http {
                url: "http://127.0.0.1:8080/customers?page_size=1".into(),
                status: 200
            }
        );
        assert_eq!(gateway.timeout(), Duration::from_secs(120));
        assert_eq!(kustomize_overlay(gateway), "k8s/overlays/local");
        let state = fixture.dir.join("state/dev");
        let config = gateway
            .prepare
            .iter()
            .find_map(|prepare| match &prepare.step {
                Step::Write { to, content } => Some((to, content)),
                _ => None,
            })
            .unwrap();
        assert_eq!(config.0, &state.join("envoy-gateway.yaml"));
        assert!(
            config
                .1
                .contains(&format!("paths: [\"{}/resources\"]", state.display()))
        );
        assert!(!config.1.contains("${"));
        assert!(gateway.prepare.contains(&Prepare {
            step: Step::Link {
                path: state.join("data/envoy-versions/9.9.9-test/bin/envoy"),
                target: fixture.dir.join("bin/envoy"),
            },
            always: false,
        }));
    }

    #[test]
    fn ha_two_instances_with_a_drain_delay() {
        let fixture = Fixture::new("ha");
        let ha = fixture.resolve("ha", &[]).unwrap();
        assert_eq!(
            names(&ha),
            [
                "customer-service",
                "customer-service-2",
                "product-service",
                "product-service-2",
                "envoy-gateway"
            ]
        );
        assert_eq!(find(&ha, "customer-service-2").ports, [50061]);
        assert_eq!(find(&ha, "product-service-2").args[2], "50062");
        assert_eq!(
            find(&ha, "product-service-2").env["PRODUCT_SHUTDOWN_DELAY"],
            "3s"
        );
        assert_eq!(find(&ha, "envoy-gateway").depends_on.len(), 4);
        assert_eq!(
            kustomize_overlay(find(&ha, "envoy-gateway")),
            "k8s/overlays/ha"
        );
    }

    #[test]
    fn auth_adds_keycloak_and_expects_401() {
        let mut fixture = Fixture::new("auth");
        let err = fixture.resolve("auth", &[]).unwrap_err().to_string();
        assert!(err.contains("KEYCLOAK_HOME is not set"), "{err}");
        fixture.env.insert("KEYCLOAK_HOME".into(), "/opt/kc".into());
        fixture.env.insert("JAVA_HOME".into(), "/opt/jdk".into());
        let auth = fixture.resolve("auth", &[]).unwrap();
        let keycloak = find(&auth, "keycloak");
        assert_eq!(keycloak.program, Path::new("/opt/kc/bin/kc.sh"));
        assert_eq!(keycloak.env["JAVA_HOME"], "/opt/jdk");
        assert_eq!(keycloak.ports, [8180]);
        assert!(keycloak.args.contains(&"--import-realm".to_owned()));
        assert!(
            matches!(&keycloak.prepare[..], [Prepare { step: Step::Copy { into, .. }, .. }] if into == Path::new("/opt/kc/data/import"))
        );
        let gateway = find(&auth, "envoy-gateway");
        assert!(matches!(gateway.ready, Ready::Http { status: 401, .. }));
        assert_eq!(kustomize_overlay(gateway), "k8s/overlays/local-auth");
        // On the scale stack: the per-user limit is global.
        for process in ["postgres", "redis", "ratelimit", "customer-service-2"] {
            find(&auth, process);
        }
    }

    #[test]
    fn bench_release_binaries_and_records() {
        let mut fixture = Fixture::new("bench");
        let records = |fixture: &Fixture, sets: &[(&str, &str)]| {
            let bench = fixture.resolve("bench", sets).unwrap();
            let customer = find(&bench, "customer-service").clone();
            assert!(
                customer
                    .program
                    .ends_with("target/release/customer-service")
            );
            assert_eq!(
                kustomize_overlay(find(&bench, "envoy-gateway")),
                "k8s/overlays/bench"
            );
            customer.env["CUSTOMER_SYNTHETIC_RECORDS"].clone()
        };
        assert_eq!(records(&fixture, &[]), "10000");
        fixture.env.insert("BENCH_RECORDS".into(), "500".into());
        assert_eq!(records(&fixture, &[]), "500");
        assert_eq!(records(&fixture, &[("records", "7")]), "7");
        let err = fixture
            .resolve("bench", &[("recods", "7")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no variable recods") && err.contains("records"),
            "{err}"
        );
    }

    #[test]
    fn the_stores_bench_differs_only_in_the_store() {
        let mut fixture = Fixture::new("stores");
        fixture
            .env
            .insert("BENCH_STORE_RECORDS".into(), "1000".into());
        let memory = fixture.resolve("bench-memory", &[]).unwrap();
        let postgres = fixture.resolve("bench-postgres", &[]).unwrap();
        for stack in [&memory, &postgres] {
            for instance in ["customer-service", "customer-service-2"] {
                let customer = find(stack, instance);
                assert!(
                    customer
                        .program
                        .ends_with("target/release/customer-service")
                );
                assert_eq!(customer.env["CUSTOMER_SYNTHETIC_RECORDS"], "1000");
            }
            assert_eq!(
                kustomize_overlay(find(stack, "envoy-gateway")),
                "k8s/overlays/bench-stores"
            );
        }
        let mut with_database = names(&memory);
        with_database.push("postgres");
        with_database.sort_unstable();
        let mut postgres_names = names(&postgres);
        postgres_names.sort_unstable();
        assert_eq!(postgres_names, with_database);
        assert!(
            find(&postgres, "customer-service").env["CUSTOMER_DATABASE_URL"]
                .starts_with("postgresql://")
        );
        assert!(
            !find(&memory, "customer-service")
                .env
                .contains_key("CUSTOMER_DATABASE_URL")
        );
    }

    #[test]
    fn fuzz_debug_binaries_without_limits() {
        let fixture = Fixture::new("fuzz");
        let fuzz = fixture.resolve("fuzz", &[]).unwrap();
        assert!(
            find(&fuzz, "product-service")
                .program
                .ends_with("target/debug/product-service")
        );
        assert_eq!(
            kustomize_overlay(find(&fuzz, "envoy-gateway")),
            "k8s/overlays/bench"
        );
    }

    #[test]
    fn fuzz_scale_the_scale_stack_with_limits_far_above_the_load() {
        let fixture = Fixture::new("fuzz-scale");
        let fuzz = fixture.resolve("fuzz-scale", &[]).unwrap();
        // Everything the scale stack runs, with its debug binaries.
        let scale = fixture.resolve("scale", &[]).unwrap();
        assert_eq!(names(&fuzz), names(&scale));
        for process in ["postgres", "redis", "ratelimit", "customer-service-2"] {
            find(&fuzz, process);
        }
        let product = find(&fuzz, "product-service-2");
        assert!(
            product.program.ends_with("target/debug/product-service"),
            "{product:?}"
        );
        assert_eq!(
            product.env["PRODUCT_DATABASE_URL"],
            "postgresql://postgres@127.0.0.1:55432/postgres"
        );
        assert_eq!(
            kustomize_overlay(find(&fuzz, "envoy-gateway")),
            "k8s/overlays/bench-tiers/global"
        );
        // Checked as the postgres role, so the database log the run reads
        // holds no FATAL line per readiness check.
        let Ready::Command { argv } = &find(&fuzz, "postgres").ready else {
            panic!("postgres is ready when pg_isready says so");
        };
        assert!(argv[0].ends_with("/pg_isready"), "{argv:?}");
        assert!(
            argv.ends_with(&["-U".into(), "postgres".into()]),
            "{argv:?}"
        );
    }

    #[test]
    fn envoy_version_is_required() {
        let mut fixture = Fixture::new("noversion");
        fixture.env.remove("ENVOY_VERSION");
        let err = fixture.resolve("dev", &[]).unwrap_err().to_string();
        assert!(
            err.contains("ENVOY_VERSION is not set") && err.contains("envoy-gateway"),
            "{err}"
        );
    }

    #[test]
    fn instance_names() {
        assert_eq!(instance_name("customer-service", 0), "customer-service");
        assert_eq!(instance_name("customer-service", 1), "customer-service-2");
        assert_eq!(instance_name("customer-service", 9), "customer-service-10");
    }

    #[test]
    fn extends_merges_tables_and_replaces_values() {
        let profiles = Profiles::parse(
            r#"
[profile.base.process.web]
command = "/bin/sleep"
args = ["1"]
env = { A = "1", B = "2" }
ready = { tcp = 1000 }
[profile.child]
extends = "base"
[profile.child.process.web]
args = ["2"]
env = { B = "3" }
"#,
            "test",
        )
        .unwrap();
        let child = profiles.profile("child").unwrap();
        let web = &child.raw.process["web"];
        assert_eq!(web.args, ["2"]);
        assert_eq!(
            web.env,
            [("A".into(), "1".into()), ("B".into(), "3".into())].into()
        );
        assert_eq!(web.command, "/bin/sleep");
    }

    #[test]
    fn bad_profiles_are_named() {
        let err = |text: &str| Profiles::parse(text, "test").unwrap_err().to_string();
        let e = err("[profile.a]\nextends = \"b\"\n[profile.b]\nextends = \"a\"\n");
        assert!(e.contains("extends loop: a -> b -> a"), "{e}");
        let e = err("[profile.a]\nextends = \"nope\"\n");
        assert!(e.contains("no profile nope"), "{e}");
        let e = err("[profile.a]\nservice = {}\n");
        assert!(e.contains("unknown field `service`"), "{e}");
        let e = err("[profile.a.process.x]\ncommand = \"x\"\nready = { tcp = 1 }\nreadiness = 2\n");
        assert!(e.contains("unknown field `readiness`"), "{e}");
        assert!(err("[other]\n").contains("no [profile.NAME] tables"));
    }

    #[test]
    fn bad_readiness_and_steps_are_named() {
        let fixture = Fixture::new("steps");
        let resolve = |process: &str| {
            let text = format!("[profile.t.process.p]\ncommand = \"/bin/true\"\n{process}\n");
            let profiles = Profiles::parse(&text, "test").unwrap();
            let root = fixture.dir.clone();
            profiles
                .profile("t")
                .unwrap()
                .resolve(&Context {
                    root: &root,
                    state: &root,
                    sets: &BTreeMap::new(),
                    table: &fixture.table,
                    env: &fixture.env,
                })
                .map_err(|e| e.to_string())
        };
        let e = resolve("ready = { tcp = 1, http = \"http://x/\" }").unwrap_err();
        assert!(e.contains("exactly one of tcp"), "{e}");
        let e = resolve("ready = { tcp = 1, status = 200 }").unwrap_err();
        assert!(e.contains("status goes with http"), "{e}");
        let e = resolve("ready = { tcp = 1 }\nprepare = [{ run = [\"a\"], link = \"b\" }]")
            .unwrap_err();
        assert!(
            e.contains("prepare[0]") && e.contains("exactly one of run"),
            "{e}"
        );
        let e =
            resolve("ready = { tcp = 1 }\nprepare = [{ link = \"b\", into = \"c\" }]").unwrap_err();
        assert!(e.contains("into does not go with link"), "{e}");
        let e = resolve("ready = { tcp = \"${nope}\" }").unwrap_err();
        assert!(e.contains("unknown variable ${nope}"), "{e}");
        let ok = resolve("ready = { command = [\"true\"] }\ntimeout = \"2s\"").unwrap();
        assert_eq!(ok[0].timeout(), Duration::from_secs(2));
        assert!(ok[0].ports.is_empty());
    }
}
