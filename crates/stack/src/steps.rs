//! The prepare steps a process may need before it starts.

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use crate::{Error, expand::which, profile::Step};

/// Writes through a temporary file in the same directory and a rename, so
/// a watcher (Envoy Gateway's File provider) never sees half a file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let mut file = fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}

/// Runs one step. `logs` is the profile's log directory.
pub fn run(step: &Step, root: &Path, logs: &Path) -> Result<(), Error> {
    match step {
        Step::Run {
            argv,
            stdout,
            creates,
            log,
        } => {
            if creates.as_deref().is_some_and(Path::exists) {
                return Ok(());
            }
            run_command(argv, stdout.as_deref(), log.as_deref(), root, logs)
        }
        Step::Write { to, content } => {
            write_atomically(to, content.as_bytes()).map_err(Error::io(to))
        }
        Step::Link { path, target } => {
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir).map_err(Error::io(dir))?;
            }
            if fs::symlink_metadata(path).is_ok() {
                fs::remove_file(path).map_err(Error::io(path))?;
            }
            std::os::unix::fs::symlink(target, path).map_err(Error::io(path))
        }
        Step::Copy { from, into, clean } => copy(from, into, clean.as_deref()),
    }
}

fn run_command(
    argv: &[String],
    stdout: Option<&Path>,
    log: Option<&str>,
    root: &Path,
    logs: &Path,
) -> Result<(), Error> {
    let shown = argv.join(" ");
    let fail = |message: String| Error::Prepare {
        step: shown.clone(),
        message,
    };
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| fail("empty command".into()))?;
    let program = if program.contains('/') {
        root.join(program)
    } else {
        which(program).ok_or_else(|| fail(format!("{program} is not on PATH")))?
    };
    let mut command = Command::new(&program);
    command.args(args).current_dir(root).stdin(Stdio::null());
    if let Some(name) = log {
        let path = logs.join(format!("{name}.log"));
        let out = fs::File::create(&path).map_err(Error::io(&path))?;
        let err = out.try_clone().map_err(Error::io(&path))?;
        let status = command
            .stdout(out)
            .stderr(err)
            .status()
            .map_err(|err| fail(err.to_string()))?;
        if !status.success() {
            return Err(fail(format!("{status}; see {}", path.display())));
        }
        return Ok(());
    }
    let output = command.output().map_err(|err| fail(err.to_string()))?;
    if !output.status.success() {
        return Err(fail(format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    if let Some(path) = stdout {
        write_atomically(path, &output.stdout).map_err(Error::io(path))?;
    }
    Ok(())
}

/// `*` matches any run of characters (none included); nothing else is special.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            let Some(rest) = name.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len())
                .filter(|at| rest.is_char_boundary(*at))
                .any(|at| glob_match(tail, &rest[at..]))
        }
    }
}

fn matching(dir: &Path, pattern: &str) -> Result<Vec<PathBuf>, Error> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(Error::io(dir))? {
        let entry = entry.map_err(Error::io(dir))?;
        if let Some(name) = entry.file_name().to_str()
            && glob_match(pattern, name)
            && entry.path().is_file()
        {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

fn copy(from: &[PathBuf], into: &Path, clean: Option<&str>) -> Result<(), Error> {
    fs::create_dir_all(into).map_err(Error::io(into))?;
    if let Some(pattern) = clean {
        for old in matching(into, pattern)? {
            fs::remove_file(&old).map_err(Error::io(&old))?;
        }
    }
    for source in from {
        let (dir, pattern) = match (source.parent(), source.file_name().and_then(|n| n.to_str())) {
            (Some(dir), Some(pattern)) => (dir, pattern),
            _ => {
                return Err(Error::Prepare {
                    step: format!("copy {}", source.display()),
                    message: "not a file pattern".into(),
                });
            }
        };
        let files = matching(dir, pattern)?;
        if files.is_empty() {
            return Err(Error::Prepare {
                step: format!("copy {}", source.display()),
                message: "matches no file".into(),
            });
        }
        for file in files {
            if let Some(name) = file.file_name() {
                let to = into.join(name);
                fs::copy(&file, &to).map_err(Error::io(&to))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob() {
        assert!(glob_match("realm-*.json", "realm-envoy-poc.json"));
        assert!(glob_match("*.json", ".json"));
        assert!(glob_match("a*b*c", "aXbYc"));
        assert!(!glob_match("realm-*.json", "realm-x.yaml"));
        assert!(!glob_match("*.json", "x.json.bak"));
        assert!(glob_match("exact", "exact") && !glob_match("exact", "exactly"));
    }

    #[test]
    fn steps_write_link_copy_and_run() {
        let dir = std::env::temp_dir().join(format!("stack-steps-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let logs = dir.join("logs");
        fs::create_dir_all(&logs).unwrap();
        let to = dir.join("a/b/config.yaml");
        run(
            &Step::Write {
                to: to.clone(),
                content: "x: 1\n".into(),
            },
            &dir,
            &logs,
        )
        .unwrap();
        assert_eq!(fs::read_to_string(&to).unwrap(), "x: 1\n");
        let link = dir.join("bin/tool");
        for _ in 0..2 {
            run(
                &Step::Link {
                    path: link.clone(),
                    target: to.clone(),
                },
                &dir,
                &logs,
            )
            .unwrap();
        }
        assert_eq!(fs::read_link(&link).unwrap(), to);
        fs::write(dir.join("realm-a.json"), "a").unwrap();
        fs::write(dir.join("realm-b.json"), "b").unwrap();
        fs::create_dir_all(dir.join("import")).unwrap();
        fs::write(dir.join("import/stale.json"), "old").unwrap();
        run(
            &Step::Copy {
                from: vec![dir.join("realm-*.json")],
                into: dir.join("import"),
                clean: Some("*.json".into()),
            },
            &dir,
            &logs,
        )
        .unwrap();
        let mut names: Vec<String> = fs::read_dir(dir.join("import"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["realm-a.json", "realm-b.json"]);
        let out = dir.join("out/rendered.txt");
        let step = |creates: Option<PathBuf>| Step::Run {
            argv: vec![
                "sh".into(),
                "-c".into(),
                "echo rendered; echo >&2 noise".into(),
            ],
            stdout: Some(out.clone()),
            creates,
            log: None,
        };
        run(&step(None), &dir, &logs).unwrap();
        assert_eq!(fs::read_to_string(&out).unwrap(), "rendered\n");
        // `creates` exists: skipped (the file keeps what we put there).
        fs::write(&out, "kept").unwrap();
        run(&step(Some(out.clone())), &dir, &logs).unwrap();
        assert_eq!(fs::read_to_string(&out).unwrap(), "kept");
        let failing = Step::Run {
            argv: vec!["sh".into(), "-c".into(), "echo broken >&2; exit 3".into()],
            stdout: None,
            creates: None,
            log: Some("certgen".into()),
        };
        let err = run(&failing, &dir, &logs).unwrap_err().to_string();
        assert!(err.contains("certgen.log"), "{err}");
        assert_eq!(
            fs::read_to_string(logs.join("certgen.log")).unwrap(),
            "broken\n"
        );
        fs::remove_dir_all(dir).unwrap();
    }
}
