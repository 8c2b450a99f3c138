//! Command line and environment configuration shared by every service binary.
//!
//! The flags are fixed (Kubernetes manifests and the local gateway stack use
//! them); only the environment prefix and the default port differ per binary,
//! so they are set at runtime on the one shared clap command.

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
    /// Fully qualified gRPC service this binary implements.
    pub service_name: &'static str,
    /// Every API service in [`api::DESCRIPTOR_SET`], advertised with `--reflect-whole-api`.
    pub whole_api: &'static [&'static str],
}

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
    /// Start with no sample data.
    #[arg(long, num_args = 0..=1, default_value_t = false, default_missing_value = "true",
          value_parser = BoolishValueParser::new())]
    pub empty: bool,
    /// Generate this many extra realistic records at startup (for benchmarks).
    #[arg(long, default_value_t = 0)]
    pub synthetic_records: usize,
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

/// The environment suffixes (after `PREFIX_`) of every flag, in flag order;
/// the argument id is the lower-cased suffix.
pub const ENV_SUFFIXES: &[&str] = &[
    "HOST",
    "PORT",
    "LOG_FORMAT",
    "REFLECT_WHOLE_API",
    "EMPTY",
    "SYNTHETIC_RECORDS",
    "SHUTDOWN_DELAY",
    "DRAIN_TIMEOUT",
    "REQUEST_TIMEOUT",
    "CONCURRENCY_LIMIT",
    "MAX_MESSAGE_BYTES",
];

impl ServerConfig {
    /// The clap command for `spec`, with `PREFIX_*` environment fallbacks.
    pub fn command(spec: &ServiceSpec) -> Command {
        let mut cmd = ServerConfig::augment_args(Command::new(spec.binary))
            .about(spec.about)
            .version(env!("CARGO_PKG_VERSION"));
        for suffix in ENV_SUFFIXES {
            let id = suffix.to_lowercase();
            let env = format!("{}_{suffix}", spec.env_prefix);
            cmd = cmd.mut_arg(id, |arg| arg.env(env));
        }
        cmd.mut_arg("port", |arg| {
            arg.required(false)
                .default_value(spec.default_port.to_string())
        })
    }

    /// Parses the process arguments and environment; exits with usage on error
    /// (and for `--help`/`--version`).
    pub fn parse(spec: &ServiceSpec) -> Self {
        let matches = Self::command(spec).get_matches();
        match Self::from_arg_matches(&matches) {
            Ok(config) => config,
            Err(err) => err.exit(),
        }
    }

    /// Parses explicit arguments (the first one is the binary name); for tests.
    pub fn try_parse_from<I, T>(spec: &ServiceSpec, args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Self::command(spec).try_get_matches_from(args)?;
        Self::from_arg_matches(&matches)
    }

    /// The configuration a test server uses: 127.0.0.1 on a free port, short drain.
    pub fn for_tests(spec: &ServiceSpec) -> Self {
        let mut config = Self::try_parse_from(spec, [spec.binary])
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
        whole_api: &[],
    };

    #[test]
    fn defaults_match_the_contract() {
        let c = ServerConfig::try_parse_from(&SPEC, ["demo-service"]).expect("parses");
        assert_eq!(c.host.to_string(), "127.0.0.1");
        assert_eq!(c.port, 50099);
        assert_eq!(c.log_format, LogFormat::Human);
        assert!(!c.reflect_whole_api && !c.empty);
        assert_eq!(c.synthetic_records, 0);
        assert_eq!(c.shutdown_delay, Duration::ZERO);
        assert_eq!(c.drain_timeout, Duration::from_secs(10));
        assert_eq!(c.request_timeout, Duration::from_secs(5));
        assert_eq!(c.concurrency_limit, 1024);
        assert_eq!(c.max_message_bytes, 4_194_304);
    }

    #[test]
    fn flags_parse() {
        let c = ServerConfig::try_parse_from(
            &SPEC,
            [
                "demo-service",
                "--host",
                "0.0.0.0",
                "--port",
                "7",
                "--log-format",
                "json",
                "--reflect-whole-api",
                "--empty",
                "--synthetic-records",
                "100000",
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
            ],
        )
        .expect("parses");
        assert_eq!(c.host.to_string(), "0.0.0.0");
        assert_eq!(c.port, 7);
        assert_eq!(c.log_format, LogFormat::Json);
        assert!(c.reflect_whole_api && c.empty);
        assert_eq!(c.synthetic_records, 100_000);
        assert_eq!(c.shutdown_delay, Duration::from_millis(1500));
        assert_eq!(c.drain_timeout, Duration::from_secs(65));
        assert_eq!(c.request_timeout, Duration::from_millis(250));
        assert_eq!(c.concurrency_limit, 3);
        assert_eq!(c.max_message_bytes, 1024);
    }

    #[test]
    fn booleans_take_optional_values() {
        let parse = |args: &[&str]| {
            let argv = std::iter::once("demo-service").chain(args.iter().copied());
            let c = ServerConfig::try_parse_from(&SPEC, argv).expect("parses");
            (c.reflect_whole_api, c.empty)
        };
        assert_eq!(
            parse(&["--reflect-whole-api=true", "--empty=false"]),
            (true, false)
        );
        assert_eq!(
            parse(&["--reflect-whole-api", "--empty", "--port", "1"]),
            (true, true)
        );
        assert_eq!(
            parse(&["--reflect-whole-api=no", "--empty=1"]),
            (false, true)
        );
    }

    #[test]
    fn environment_names_carry_the_prefix() {
        let cmd = ServerConfig::command(&SPEC);
        let envs: Vec<String> = cmd
            .get_arguments()
            .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
            .collect();
        for suffix in ENV_SUFFIXES {
            assert!(
                envs.contains(&format!("DEMO_CFG_TEST_{suffix}")),
                "{suffix} in {envs:?}"
            );
        }
    }

    #[test]
    fn bad_values_are_rejected() {
        for bad in [
            ["--port", "70000"],
            ["--drain-timeout", "soon"],
            ["--log-format", "xml"],
        ] {
            let args = std::iter::once("demo-service").chain(bad);
            assert!(
                ServerConfig::try_parse_from(&SPEC, args).is_err(),
                "{bad:?}"
            );
        }
    }
}
