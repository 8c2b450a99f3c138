//! Command line and environment configuration shared by every service binary.
//!
//! The server's flags are fixed (Kubernetes manifests and the local gateway
//! stack use them); a service adds its own flags as a clap [`Args`] type
//! (`F` below, [`NoFlags`] for none). Only the environment prefix and the
//! default port differ per binary, so they are set at runtime on the one
//! shared clap command: every flag `--some-flag` reads `PREFIX_SOME_FLAG`.

use std::{net::IpAddr, time::Duration};

use clap::{Args, Command, FromArgMatches, ValueEnum, builder::BoolishValueParser};

/// What differs between the service binaries that share this runtime.
#[derive(Debug, Clone, Copy)]
pub struct ServiceSpec {
    /// Binary name, e.g. `customer-service`.
    pub binary: &'static str,
    /// One-line description shown by `--help`.
    pub about: &'static str,
    /// Environment variable prefix without the trailing underscore, e.g. `CUSTOMER`.
    pub env_prefix: &'static str,
    /// Default `--port`.
    pub default_port: u16,
    /// Fully qualified gRPC service this binary implements (its generated
    /// server's `NamedService::NAME`).
    pub service_name: &'static str,
    /// The serialized `FileDescriptorSet` reflection serves (the whole API).
    pub descriptor_set: &'static [u8],
    /// Every API service in `descriptor_set`, advertised with `--reflect-whole-api`.
    pub whole_api: &'static [&'static str],
}

/// The flags of a service that adds none of its own.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct NoFlags {}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Compact, human readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Server configuration (flags with environment fallbacks).
#[derive(Debug, Clone, Args)]
pub struct ServerConfig {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on (0 picks a free one; the default depends on the service).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Advertise every API service through reflection, not only this binary's own.
    #[arg(long, num_args = 0..=1, default_value_t = false, default_missing_value = "true",
          value_parser = BoolishValueParser::new())]
    pub reflect_whole_api: bool,
    /// After SIGTERM, how long to keep serving while health already says
    /// NOT_SERVING, so a load balancer's health checks stop sending new
    /// requests before the listener closes (0: close at once).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub shutdown_delay: Duration,
    /// How long in-flight requests may take to finish after shutdown starts.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Per-request timeout.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Maximum number of requests served at once (across all connections).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub concurrency_limit: u64,
    /// Maximum size of a decoded or encoded gRPC message, in bytes.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,
}

fn parse_duration(s: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(s)
}

/// The environment suffixes (after `PREFIX_`) of the server's own flags: the
/// contract manifests rely on (a test keeps it true).
pub const ENV_SUFFIXES: &[&str] = &[
    "HOST",
    "PORT",
    "LOG_FORMAT",
    "REFLECT_WHOLE_API",
    "SHUTDOWN_DELAY",
    "DRAIN_TIMEOUT",
    "REQUEST_TIMEOUT",
    "CONCURRENCY_LIMIT",
    "MAX_MESSAGE_BYTES",
];

impl ServerConfig {
    /// The clap command for `spec`: the server's flags, then the service's
    /// own (`F`), each with a `PREFIX_<FLAG>` environment fallback.
    pub fn command<F: Args>(spec: &ServiceSpec) -> Command {
        let cmd = F::augment_args(ServerConfig::augment_args(Command::new(spec.binary)))
            .about(spec.about)
            .version(env!("CARGO_PKG_VERSION"))
            .mut_args(|arg| {
                let env = format!(
                    "{}_{}",
                    spec.env_prefix,
                    arg.get_id().as_str().to_uppercase()
                );
                arg.env(env)
            });
        cmd.mut_arg("port", |arg| {
            arg.required(false)
                .default_value(spec.default_port.to_string())
        })
    }

    /// Every `PREFIX_*` environment name of [`Self::command`].
    pub fn env_names<F: Args>(spec: &ServiceSpec) -> Vec<String> {
        Self::command::<F>(spec)
            .get_arguments()
            .filter_map(|arg| arg.get_env().map(|env| env.to_string_lossy().into_owned()))
            .collect()
    }

    /// Parses the process arguments and environment into the server's and
    /// the service's flags; exits with usage on error (and for
    /// `--help`/`--version`).
    pub fn parse<F: Args + FromArgMatches>(spec: &ServiceSpec) -> (Self, F) {
        let matches = Self::command::<F>(spec).get_matches();
        match Self::from_matches(&matches) {
            Ok(parsed) => parsed,
            Err(err) => err.exit(),
        }
    }

    /// Parses explicit arguments (the first one is the binary name); for tests.
    pub fn try_parse_from<F, I, T>(spec: &ServiceSpec, args: I) -> Result<(Self, F), clap::Error>
    where
        F: Args + FromArgMatches,
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Self::command::<F>(spec).try_get_matches_from(args)?;
        Self::from_matches(&matches)
    }

    fn from_matches<F: FromArgMatches>(
        matches: &clap::ArgMatches,
    ) -> Result<(Self, F), clap::Error> {
        Ok((
            Self::from_arg_matches(matches)?,
            F::from_arg_matches(matches)?,
        ))
    }

    /// The configuration a test server uses: 127.0.0.1 on a free port, short drain.
    pub fn for_tests(spec: &ServiceSpec) -> Self {
        let (mut config, NoFlags {}) = Self::try_parse_from(spec, [spec.binary])
            .unwrap_or_else(|err| unreachable!("default configuration parses: {err}"));
        config.port = 0;
        config.drain_timeout = Duration::from_secs(2);
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: ServiceSpec = ServiceSpec {
        binary: "demo-service",
        about: "demo",
        env_prefix: "DEMO_CFG_TEST",
        default_port: 50099,
        service_name: "demo.v1.DemoService",
        descriptor_set: &[],
        whole_api: &[],
    };

    /// A service flag, as a service would add one.
    #[derive(Debug, Clone, Args)]
    struct Demo {
        /// A service-specific flag.
        #[arg(long, default_value_t = 0)]
        extra_things: u32,
    }

    fn parse(args: &[&str]) -> Result<ServerConfig, clap::Error> {
        let argv = std::iter::once("demo-service").chain(args.iter().copied());
        ServerConfig::try_parse_from::<NoFlags, _, _>(&SPEC, argv)
            .map(|(config, NoFlags {})| config)
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = parse(&[]).expect("parses");
        assert_eq!(c.host.to_string(), "127.0.0.1");
        assert_eq!(c.port, 50099);
        assert_eq!(c.log_format, LogFormat::Human);
        assert!(!c.reflect_whole_api);
        assert_eq!(c.shutdown_delay, Duration::ZERO);
        assert_eq!(c.drain_timeout, Duration::from_secs(10));
        assert_eq!(c.request_timeout, Duration::from_secs(5));
        assert_eq!(c.concurrency_limit, 1024);
        assert_eq!(c.max_message_bytes, 4_194_304);
    }

    #[test]
    fn flags_parse() {
        let c = parse(&[
            "--host",
            "0.0.0.0",
            "--port",
            "7",
            "--log-format",
            "json",
            "--reflect-whole-api",
            "--shutdown-delay",
            "1500ms",
            "--drain-timeout",
            "1m 5s",
            "--request-timeout",
            "250ms",
            "--concurrency-limit",
            "3",
            "--max-message-bytes",
            "1024",
        ])
        .expect("parses");
        assert_eq!(c.host.to_string(), "0.0.0.0");
        assert_eq!(c.port, 7);
        assert_eq!(c.log_format, LogFormat::Json);
        assert!(c.reflect_whole_api);
        assert_eq!(c.shutdown_delay, Duration::from_millis(1500));
        assert_eq!(c.drain_timeout, Duration::from_secs(65));
        assert_eq!(c.request_timeout, Duration::from_millis(250));
        assert_eq!(c.concurrency_limit, 3);
        assert_eq!(c.max_message_bytes, 1024);
    }

    #[test]
    fn booleans_take_optional_values() {
        let whole_api = |args: &[&str]| parse(args).expect("parses").reflect_whole_api;
        assert!(whole_api(&["--reflect-whole-api=true"]));
        assert!(whole_api(&["--reflect-whole-api", "--port", "1"]));
        assert!(whole_api(&["--reflect-whole-api=1"]));
        assert!(!whole_api(&["--reflect-whole-api=no"]));
    }

    #[test]
    fn environment_names_carry_the_prefix() {
        let mut expected: Vec<String> = ENV_SUFFIXES
            .iter()
            .map(|suffix| format!("DEMO_CFG_TEST_{suffix}"))
            .collect();
        let mut names = ServerConfig::env_names::<NoFlags>(&SPEC);
        expected.sort();
        names.sort();
        assert_eq!(names, expected);
    }

    #[test]
    fn a_service_adds_flags_with_the_same_env_fallbacks() {
        let names = ServerConfig::env_names::<Demo>(&SPEC);
        assert!(
            names.contains(&"DEMO_CFG_TEST_EXTRA_THINGS".to_owned()),
            "{names:?}"
        );
        assert_eq!(names.len(), ENV_SUFFIXES.len() + 1, "{names:?}");
        let (config, demo) = ServerConfig::try_parse_from::<Demo, _, _>(
            &SPEC,
            ["demo-service", "--extra-things", "3", "--port", "9"],
        )
        .expect("parses");
        assert_eq!((config.port, demo.extra_things), (9, 3));
    }

    #[test]
    fn bad_values_are_rejected() {
        for bad in [
            ["--port", "70000"],
            ["--drain-timeout", "soon"],
            ["--log-format", "xml"],
        ] {
            assert!(parse(&bad).is_err(), "{bad:?}");
        }
    }
}
