//! `cargo xtask stack ARGS...`: `cargo stack ARGS...` (crates/stack) with
//! the tools its profiles need installed and the environment they read
//! taken from the pins, so no recipe repeats a version or a path.

use std::process::Command;

use crate::pins::{PinError, Pins};
use crate::tools::{self, ToolError};

/// The profile that runs Keycloak (`KEYCLOAK_HOME`, `JAVA_HOME`).
const AUTH_PROFILE: &str = "auth";

/// The profiles that run PostgreSQL, Redis and the rate-limit service
/// (auth extends scale: its per-user limit is global; fuzz-scale is scale
/// with limits far above the load). `bench-tiers` installs the group itself.
const SCALE_PROFILES: &[&str] = &["scale", AUTH_PROFILE, "fuzz-scale"];

/// Does this `cargo stack` command line name the auth profile (before any
/// `--`, after which the command of `run` starts)?
pub fn names_auth(args: &[String]) -> bool {
    names_profile(args, AUTH_PROFILE)
}

fn names_profile(args: &[String], profile: &str) -> bool {
    args.iter().take_while(|a| *a != "--").any(|a| a == profile)
}

/// The environment `cargo stack` reads for `args`.
pub fn env(pins: &Pins, args: &[String]) -> Result<Vec<(String, String)>, PinError> {
    let mut env = vec![(
        "ENVOY_VERSION".to_string(),
        pins.version("envoy")?.to_string(),
    )];
    if names_auth(args) {
        let keycloak = pins.tool("keycloak")?;
        env.push((
            "KEYCLOAK_HOME".into(),
            tools::home(keycloak).display().to_string(),
        ));
        env.push(("JAVA_HOME".into(), tools::java_home().display().to_string()));
    }
    Ok(env)
}

/// The groups of pinned tools (crates/xtask/pins.toml) `args` needs.
pub fn tool_groups(args: &[String]) -> Vec<&'static str> {
    let mut groups = vec!["default"];
    if names_auth(args) {
        groups.push("auth");
    }
    if SCALE_PROFILES.iter().any(|p| names_profile(args, p)) {
        groups.push("scale");
    }
    groups
}

/// The `cargo stack` command for `args`, its tools installed first.
pub fn command(pins: &Pins, args: &[String]) -> Result<Command, ToolError> {
    tools::ensure(pins, &tool_groups(args))?;
    let mut command = Command::new("cargo");
    command
        .arg("stack")
        .args(args)
        .envs(env(pins, args)?)
        .env("PATH", tools::path_with_tools());
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn only_the_auth_profile_gets_keycloak() {
        let pins = Pins::load().unwrap();
        let dev = env(&pins, &args("up dev")).unwrap();
        assert_eq!(dev.len(), 1);
        assert_eq!(
            dev[0],
            (
                "ENVOY_VERSION".into(),
                pins.version("envoy").unwrap().into()
            )
        );
        let auth = env(&pins, &args("run --stop-others auth -- cargo test")).unwrap();
        let names: Vec<_> = auth.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["ENVOY_VERSION", "KEYCLOAK_HOME", "JAVA_HOME"]);
        assert!(
            auth[1]
                .1
                .ends_with(&format!("keycloak-{}", pins.version("keycloak").unwrap()))
        );
        // `auth` as an argument of the command run is not the profile.
        assert!(!names_auth(&args("run dev -- cargo test --test auth")));
    }

    #[test]
    fn the_scale_stacks_get_its_tools() {
        assert_eq!(tool_groups(&args("up dev")), ["default"]);
        assert_eq!(tool_groups(&args("reset fuzz")), ["default"]);
        for line in [
            "up scale",
            "reset fuzz-scale",
            "run --stop-others fuzz-scale -- cargo xtask fuzz-run",
        ] {
            assert_eq!(tool_groups(&args(line)), ["default", "scale"], "{line}");
        }
        assert_eq!(
            tool_groups(&args("run auth -- cargo test")),
            ["default", "auth", "scale"]
        );
        assert_eq!(
            tool_groups(&args("run dev -- cargo test --test scale")),
            ["default"]
        );
    }
}
