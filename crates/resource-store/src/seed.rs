//! The flags that decide what a service's table starts with.
//!
//! They belong to the services, not to the server runtime: a service adds
//! them to its command line (inside `postgres_store::StoreArgs`), and
//! the runtime gives them the same `PREFIX_*` environment fallbacks as its
//! own flags (`CUSTOMER_EMPTY`, `PRODUCT_SYNTHETIC_RECORDS`, ...).

use clap::{Args, builder::BoolishValueParser};

/// `--empty` and `--synthetic-records`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Args)]
pub struct SeedArgs {
    /// Start with no sample data.
    #[arg(long, num_args = 0..=1, default_value_t = false, default_missing_value = "true",
          value_parser = BoolishValueParser::new())]
    pub empty: bool,
    /// Generate this many extra realistic records at startup (for benchmarks).
    #[arg(long, default_value_t = 0)]
    pub synthetic_records: usize,
}

impl SeedArgs {
    /// The records a table starts with: `samples` (unless `--empty`), then
    /// `--synthetic-records` made by `synthetic`.
    pub fn records<R, I>(
        &self,
        samples: impl FnOnce() -> Vec<R>,
        synthetic: impl FnOnce(usize) -> I,
    ) -> impl Iterator<Item = R>
    where
        I: Iterator<Item = R>,
    {
        let samples = if self.empty { Vec::new() } else { samples() };
        samples.into_iter().chain(synthetic(self.synthetic_records))
    }
}

#[cfg(test)]
mod tests {
    use clap::{FromArgMatches, Parser};

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        seed: SeedArgs,
    }

    fn parse(args: &[&str]) -> SeedArgs {
        let argv = std::iter::once("demo").chain(args.iter().copied());
        let matches = <Cli as clap::CommandFactory>::command()
            .try_get_matches_from(argv)
            .expect("parses");
        Cli::from_arg_matches(&matches).expect("matches").seed
    }

    #[test]
    fn defaults_are_samples_only() {
        assert_eq!(parse(&[]), SeedArgs::default());
    }

    #[test]
    fn flags_and_optional_boolean_values_parse() {
        let all = SeedArgs {
            empty: true,
            synthetic_records: 100_000,
        };
        assert_eq!(parse(&["--empty", "--synthetic-records", "100000"]), all);
        assert!(parse(&["--empty=1"]).empty);
        assert!(!parse(&["--empty=no"]).empty);
    }

    #[test]
    fn records_are_samples_then_synthetic() {
        let seed = |empty, synthetic_records| SeedArgs {
            empty,
            synthetic_records,
        };
        let records = |args: SeedArgs| -> Vec<u32> {
            args.records(|| vec![1, 2], |n| 10..10 + n as u32).collect()
        };
        assert_eq!(records(seed(false, 0)), [1, 2]);
        assert_eq!(records(seed(false, 2)), [1, 2, 10, 11]);
        assert_eq!(records(seed(true, 1)), [10]);
    }
}
