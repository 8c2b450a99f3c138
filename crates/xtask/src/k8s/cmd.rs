//! External programs (kubectl, helm, egctl, buildah, ...), run with their
//! command line in every error.

use std::{
    ffi::OsStr,
    fs::File,
    path::Path,
    process::{Child, Command, Output, Stdio},
};

use super::{Error, Result};

pub struct Cmd {
    command: Command,
    line: String,
}

/// A program, found on PATH with the shared tools directory first (as the
/// justfile sets it), so `cargo xtask` works outside `just` too.
pub fn cmd(program: impl AsRef<OsStr>) -> Cmd {
    let program = program.as_ref();
    let mut command = Command::new(program);
    // On Unix the child's PATH is also where `program` is looked up.
    command.env("PATH", crate::tools::path_with_tools());
    Cmd {
        command,
        line: program.to_string_lossy().into_owned(),
    }
}

/// kubectl in a namespace.
pub fn kubectl(namespace: &str) -> Cmd {
    cmd("kubectl").args(["-n", namespace])
}

impl Cmd {
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        let arg = arg.as_ref();
        self.line.push(' ');
        self.line.push_str(&arg.to_string_lossy());
        self.command.arg(arg);
        self
    }

    pub fn args<S: AsRef<OsStr>>(self, args: impl IntoIterator<Item = S>) -> Self {
        args.into_iter().fold(self, Cmd::arg)
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    pub fn dir(mut self, dir: &Path) -> Self {
        self.command.current_dir(dir);
        self
    }

    /// The command line, for messages.
    pub fn line(&self) -> &str {
        &self.line
    }

    /// Runs it with the terminal's output; fails unless it exits 0.
    pub fn run(mut self) -> Result<()> {
        let status = self
            .command
            .status()
            .map_err(|source| self.spawn_error(source))?;
        if status.success() {
            Ok(())
        } else {
            Err(Error::Failed {
                command: self.line,
                status,
                stderr: String::new(),
            })
        }
    }

    /// Its standard output; fails (with its standard error) unless it exits 0.
    pub fn read(self) -> Result<String> {
        let line = self.line.clone();
        let output = self.output()?;
        if !output.status.success() {
            return Err(Error::Failed {
                command: line,
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        String::from_utf8(output.stdout).map_err(|err| Error::parse(line, err))
    }

    /// Whether it exits 0 (its output is dropped): for questions like "is
    /// there a Docker engine".
    pub fn succeeds(mut self) -> bool {
        self.command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    /// Its output and status, whatever the status: for checks that expect a failure.
    pub fn output(mut self) -> Result<Output> {
        self.command
            .stdin(Stdio::null())
            .output()
            .map_err(|source| self.spawn_error(source))
    }

    /// Starts it in its own process group (a Ctrl-C in the terminal is not
    /// meant for it), both outputs to `log`.
    pub fn spawn_detached(mut self, log: &Path) -> Result<Child> {
        use std::os::unix::process::CommandExt;
        let open = |path: &Path| {
            File::create(path).map_err(|source| Error::Io {
                path: path.to_owned(),
                source,
            })
        };
        let (out, err) = (open(log)?, open(log)?);
        self.command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|source| self.spawn_error(source))
    }

    fn spawn_error(&self, source: std::io::Error) -> Error {
        Error::Spawn {
            command: self.line.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_returns_stdout_and_failures_carry_stderr() {
        assert_eq!(cmd("sh").args(["-c", "echo hi"]).read().unwrap(), "hi\n");
        let err = cmd("sh")
            .args(["-c", "echo boom >&2; exit 3"])
            .read()
            .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("sh -c echo boom >&2; exit 3"), "{message}");
        assert!(message.contains("boom"), "{message}");
    }

    #[test]
    fn the_tools_directory_comes_first_on_path() {
        let seen = cmd("sh").args(["-c", "echo $PATH"]).read().unwrap();
        assert!(
            seen.starts_with(&crate::tools::bin_dir().display().to_string()),
            "{seen}"
        );
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let err = cmd("no-such-program-xtask").run().unwrap_err();
        assert!(matches!(err, Error::Spawn { .. }), "{err}");
        assert!(!cmd("no-such-program-xtask").succeeds());
        assert!(cmd("true").succeeds());
    }
}
