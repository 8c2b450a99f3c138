//! Which e2e suites run on which stack: the one table behind `just
//! test-offline`, `test-e2e`, `test-faults`, `test-scale` and `test-auth`. crates/e2e is
//! outside the workspace's default-members (its tests need tools or a
//! stack); the suites that change the stack are `test = false` there and
//! run only when a suite below names them.

use std::process::Command;

/// One way of running e2e tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite {
    pub name: &'static str,
    /// The test targets (`--test`); empty: every default target of e2e.
    pub targets: &'static [&'static str],
    /// The `cargo stack` profile it runs on; None: no stack (tools only).
    pub profile: Option<&'static str>,
    /// Stop another running profile first (the suite needs its own stack).
    pub stop_others: bool,
    /// Extra environment.
    pub env: &'static [(&'static str, &'static str)],
    /// Arguments for the test binaries.
    pub test_args: &'static [&'static str],
}

pub const SUITES: &[Suite] = &[
    Suite {
        name: "offline",
        targets: &["translate", "overlays_do_not_drift"],
        profile: None,
        stop_others: false,
        env: &[],
        test_args: &[],
    },
    Suite {
        name: "dev",
        targets: &[],
        profile: Some("dev"),
        stop_others: false,
        env: &[],
        test_args: &[],
    },
    // Kills and restarts the instances the other tests use: one at a time.
    Suite {
        name: "faults",
        targets: &["faults"],
        profile: Some("ha"),
        stop_others: true,
        env: &[],
        test_args: &["--test-threads=1", "--nocapture"],
    },
    // The global rate-limit tier on one Envoy: waits for fresh minute
    // windows, restarts Envoy and stops Redis; then restarts the service
    // instances and kills PostgreSQL (scale_faults): one test at a time.
    Suite {
        name: "scale",
        targets: &["global_limits", "global_faults", "scale_faults"],
        profile: Some("scale"),
        stop_others: true,
        env: &[],
        test_args: &["--test-threads=1", "--nocapture"],
    },
    Suite {
        name: "auth",
        targets: &["auth"],
        profile: Some("auth"),
        stop_others: true,
        // The auth stack runs the global tier (its per-user limit is global).
        env: &[
            ("E2E_KEYCLOAK", crate::token::KEYCLOAK_URL),
            ("E2E_RATE_LIMIT_TIER", "global"),
        ],
        test_args: &["--test-threads", "4", "--nocapture"],
    },
];

/// `test = false` targets run by a task other than these suites:
/// cluster_faults by `cargo xtask test-cluster` (src/k8s), which also runs
/// global_limits across its two Envoy replicas.
pub const RUN_ELSEWHERE: &[&str] = &["cluster_faults"];

/// Every named e2e target, each once: clippy's `--all-targets` leaves out
/// the `test = false` ones, so `just lint` names them (unused imports had
/// gone unnoticed in faults.rs).
pub fn named_targets() -> Vec<&'static str> {
    let mut targets: Vec<&str> = SUITES
        .iter()
        .flat_map(|s| s.targets.iter().copied())
        .chain(RUN_ELSEWHERE.iter().copied())
        .collect();
    targets.sort_unstable();
    targets.dedup();
    targets
}

pub fn suite(name: &str) -> Result<&'static Suite, String> {
    SUITES.iter().find(|s| s.name == name).ok_or_else(|| {
        let names: Vec<_> = SUITES.iter().map(|s| s.name).collect();
        format!("no e2e suite `{name}` ({})", names.join(", "))
    })
}

impl Suite {
    /// `cargo test -p e2e` for this suite; `no_run` only builds it (done
    /// before a stack holds the machine's ports).
    pub fn cargo_test(&self, no_run: bool) -> Vec<String> {
        let mut args: Vec<String> = ["test", "--locked", "-p", "e2e"].map(String::from).into();
        for target in self.targets {
            args.extend(["--test".to_string(), target.to_string()]);
        }
        if no_run {
            args.push("--no-run".into());
        } else if !self.test_args.is_empty() {
            args.push("--".into());
            args.extend(self.test_args.iter().map(|a| a.to_string()));
        }
        args
    }

    /// The arguments of `cargo xtask stack` that run this suite, if it needs a stack.
    pub fn stack_args(&self) -> Option<Vec<String>> {
        let profile = self.profile?;
        let mut args = vec!["run".to_string()];
        if self.stop_others {
            args.push("--stop-others".into());
        }
        args.extend([profile.to_string(), "--".into(), "cargo".into()]);
        args.extend(self.cargo_test(false));
        Some(args)
    }

    pub fn apply_env(&self, command: &mut Command) {
        command.envs(self.env.iter().copied());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lint_names_every_test_false_target_once() {
        let targets = named_targets();
        for name in [
            "faults",
            "cluster_faults",
            "auth",
            "global_limits",
            "scale_faults",
        ] {
            assert!(targets.contains(&name), "{name}: {targets:?}");
        }
        assert!(targets.windows(2).all(|w| w[0] < w[1]), "{targets:?}");
    }

    #[test]
    fn faults_run_alone_on_the_ha_profile() {
        let faults = suite("faults").unwrap();
        assert_eq!(
            faults.stack_args().unwrap().join(" "),
            "run --stop-others ha -- cargo test --locked -p e2e --test faults -- --test-threads=1 --nocapture"
        );
        assert_eq!(
            faults.cargo_test(true).join(" "),
            "test --locked -p e2e --test faults --no-run"
        );
        assert_eq!(suite("offline").unwrap().stack_args(), None);
        assert!(
            suite("dev")
                .unwrap()
                .stack_args()
                .unwrap()
                .join(" ")
                .ends_with("-- cargo test --locked -p e2e")
        );
        assert!(
            suite("nope")
                .unwrap_err()
                .contains("offline, dev, faults, scale, auth")
        );
    }

    /// Every suite e2e leaves out of `cargo test -p e2e` (`test = false`)
    /// is run by a suite here or the task named in RUN_ELSEWHERE, and every
    /// target named here exists.
    #[test]
    fn every_test_false_target_of_e2e_has_a_runner() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../e2e");
        let manifest: toml::Table =
            toml::from_str(&std::fs::read_to_string(dir.join("Cargo.toml")).unwrap()).unwrap();
        let targets = manifest["test"].as_array().unwrap();
        let excluded: Vec<&str> = targets
            .iter()
            .filter(|t| t.get("test").and_then(|v| v.as_bool()) == Some(false))
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert!(!excluded.is_empty());
        for name in &excluded {
            let run =
                SUITES.iter().any(|s| s.targets.contains(name)) || RUN_ELSEWHERE.contains(name);
            assert!(
                run,
                "e2e target `{name}` is test = false but no suite runs it"
            );
        }
        for suite in SUITES {
            for target in suite.targets {
                assert!(
                    dir.join("tests").join(format!("{target}.rs")).is_file(),
                    "{target}"
                );
            }
            // A suite on a stack of its own runs exactly the targets left out of the default run.
            if suite.stop_others {
                assert!(
                    suite.targets.iter().all(|t| excluded.contains(t)),
                    "{}",
                    suite.name
                );
            }
        }
    }
}
