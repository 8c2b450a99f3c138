//! Starting a process in a session of its own and stopping its whole group.

use std::{
    fs::File,
    path::Path,
    process::{Child, Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use rustix::process::{Pid, Signal, kill_process_group};

use crate::{Error, pidfile::PidFile, profile::Process};

/// How long `stop` waits after SIGTERM before SIGKILL.
pub const GRACE: Duration = Duration::from_secs(15);

/// Starts `process` with `setsid`: its own session and process group, so
/// stopping it also stops what it spawned (Envoy Gateway's Envoy), and no
/// terminal signal reaches it. stdout and stderr go to `log`, stdin is
/// /dev/null, and it inherits no other descriptor (main marks them
/// close-on-exec: a caller's `flock` must not live as long as a service).
pub fn spawn(process: &Process, root: &Path, log: &Path) -> Result<(Child, PidFile), Error> {
    let fail = |message: String| Error::Start {
        process: process.name.clone(),
        message,
        log: log.to_owned(),
    };
    if !process.program.is_file() {
        return Err(fail(format!(
            "{} does not exist (not built yet?)",
            process.program.display()
        )));
    }
    let out = File::create(log).map_err(Error::io(log))?;
    let err = out.try_clone().map_err(Error::io(log))?;
    let mut child = Command::new("setsid")
        .arg(&process.program)
        .args(&process.args)
        .envs(&process.env)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|err| fail(format!("setsid {}: {err}", process.program.display())))?;
    // The start time is set at fork and kept across exec: read now, it is
    // the one of the process that becomes the program.
    match PidFile::of(child.id()) {
        Some(record) => Ok((child, record)),
        None => {
            let status = child
                .wait()
                .map_or_else(|e| e.to_string(), |s| s.to_string());
            Err(fail(format!("exited at once ({status})")))
        }
    }
}

fn signal_group(record: &PidFile, signal: Signal) {
    if let Some(pid) = i32::try_from(record.pid).ok().and_then(Pid::from_raw) {
        // ESRCH (the group is gone meanwhile) is what we want anyway.
        let _ = kill_process_group(pid, signal);
    }
}

/// Stops the recorded process group: SIGTERM, up to `grace` for it to
/// drain and exit, then SIGKILL. Returns whether anything was running.
pub fn stop(record: &PidFile, grace: Duration) -> bool {
    if record.group().is_empty() {
        return false;
    }
    signal_group(record, Signal::TERM);
    if wait_gone(record, grace) {
        return true;
    }
    signal_group(record, Signal::KILL);
    wait_gone(record, Duration::from_secs(5));
    true
}

fn wait_gone(record: &PidFile, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if record.group().is_empty() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(50));
    }
}
