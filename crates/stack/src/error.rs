use std::path::PathBuf;

/// Everything the runner can refuse or fail at, each with the message a
/// user needs to act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("profiles {path}: {message}")]
    Profiles { path: String, message: String },
    #[error("no profile {name} (profiles: {known})")]
    UnknownProfile { name: String, known: String },
    #[error("{context}: {message}")]
    Expand { context: String, message: String },
    #[error("{0}")]
    Graph(String),
    #[error("service table: {0}")]
    Services(#[from] envoy_ext::services::TableError),
    #[error("port {port} ({process}) is in use {holder}; stop it first and try again")]
    PortInUse {
        port: u16,
        process: String,
        holder: String,
    },
    #[error("{process}: {message}; see {log}")]
    Start {
        process: String,
        message: String,
        log: PathBuf,
    },
    #[error("{step}: {message}")]
    Prepare { step: String, message: String },
    #[error("profile {profile} has no process {name} (it has: {known})")]
    UnknownProcess {
        profile: String,
        name: String,
        known: String,
    },
    #[error("profile {0} is not running (start it with `cargo stack up {0}`)")]
    NotRunning(String),
    #[error(
        "profile {other} is running and holds the stack's ports: stop it first (`cargo stack down {other}`) or pass --stop-others to stop it now and start it again afterwards"
    )]
    OtherRunning { other: String },
    #[error("{0}")]
    Usage(String),
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
