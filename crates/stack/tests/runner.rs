//! The runner end to end on a test profile file with real small processes
//! (a Python HTTP server, shells and sleeps): what `up` starts, `down` stops,
//! and nothing else.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{
    fs,
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Output},
    thread::sleep,
    time::{Duration, Instant},
};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A scratch repository root with its own profiles file; `down` on drop.
struct Scratch {
    root: PathBuf,
    web_port: u16,
}

impl Scratch {
    fn new(name: &str) -> Self {
        let root = std::env::temp_dir().join(format!("stack-it-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        let web_port = free_port();
        let idle_port = free_port();
        let web = root.join("web.sh");
        fs::write(
            &web,
            "#!/bin/sh\nexec python3 -m http.server \"$1\" --bind 127.0.0.1\n",
        )
        .unwrap();
        fs::set_permissions(&web, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let profiles = format!(
            r#"
# db: a shell that leaves a grandchild (sleep) in its group, ready once it
# wrote its marker. web: refuses to start before db is ready. Generous
# timeouts: `up other` once missed a 5 s one on the loaded 2-core machine.
[profile.t.process.db]
command = "sh"
args = ["-c", "sleep 300 & echo $$! > ${{state}}/grandchild.pid; sleep 0.3; touch ${{state}}/db-ready; wait"]
ready = {{ command = ["test", "-e", "${{state}}/db-ready"] }}
timeout = "60s"
prepare = [{{ run = ["rm", "-f", "${{state}}/db-ready"] }}]

[profile.t.process.web]
command = "sh"
args = ["-c", "test -e ${{state}}/db-ready || {{ echo 'db not ready'; exit 1; }}; exec ./web.sh {web_port}"]
depends_on = ["db"]
ready = {{ http = "http://127.0.0.1:{web_port}/", status = 200 }}
timeout = "60s"
ports = [{web_port}]

# The same port as t's web: only one of them can run.
[profile.other.process.web]
command = "./web.sh"
args = ["{web_port}"]
ready = {{ tcp = {web_port} }}
timeout = "60s"

[profile.slow.process.never]
command = "sleep"
args = ["300"]
ready = {{ tcp = {idle_port} }}
timeout = "1s"

[profile.crash.process.crash]
command = "sh"
args = ["-c", "echo boom; exit 1"]
ready = {{ tcp = {idle_port} }}
"#
        );
        fs::write(root.join("profiles.toml"), profiles).unwrap();
        Self { root, web_port }
    }

    fn stack(&self, args: &[&str]) -> Output {
        self.stack_with(args, &[])
    }

    fn stack_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let output = Command::new(env!("CARGO_BIN_EXE_stack"))
            .env_remove("STACK_STOP_OTHERS")
            .envs(env.iter().copied())
            .arg("--root")
            .arg(&self.root)
            .arg("--profiles")
            .arg(self.root.join("profiles.toml"))
            .args(args)
            .output()
            .unwrap();
        eprintln!(
            "$ stack {}: {}\n{}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, &[])
    }

    fn ok_with(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let output = self.stack_with(args, env);
        assert!(output.status.success(), "stack {args:?} failed");
        String::from_utf8_lossy(&output.stderr).into_owned()
            + &String::from_utf8_lossy(&output.stdout)
    }

    fn fails(&self, args: &[&str]) -> String {
        let output = self.stack(args);
        assert!(!output.status.success(), "stack {args:?} succeeded");
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    fn state(&self, profile: &str) -> PathBuf {
        self.root.join(".local/stack").join(profile)
    }

    /// (pid, start time) from a pid file.
    fn pid_file(&self, profile: &str, name: &str) -> (u32, u64) {
        let text =
            fs::read_to_string(self.state(profile).join(format!("pids/{name}.pid"))).unwrap();
        let mut words = text.split_whitespace();
        (
            words.next().unwrap().parse().unwrap(),
            words.next().unwrap().parse().unwrap(),
        )
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.stack(&["down"]);
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn alive(pid: u32) -> bool {
    // A zombie has exited; it waits for a parent that is not us.
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat[stat.rfind(')').unwrap() + 1..]
                .split_whitespace()
                .next()
                .map(str::to_owned);
            !matches!(state.as_deref(), Some("Z" | "X"))
        })
        .unwrap_or(false)
}

fn start_time(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap()
}

fn wait_dead(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        sleep(Duration::from_millis(20));
    }
    true
}

fn get(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

struct Decoy(Child);

impl Decoy {
    /// A process like ours that the stack did not start.
    fn new() -> Self {
        Self(Command::new("sleep").arg("300").spawn().unwrap())
    }
}

impl Drop for Decoy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn up_running_restart_down_stop_exactly_what_started() {
    let s = Scratch::new("lifecycle");
    let decoy = Decoy::new();
    let out = s.ok(&["up", "t"]);
    assert!(
        out.contains("db: started") && out.contains("web: started"),
        "{out}"
    );
    assert!(out.contains("t: ready in"), "{out}");
    // Dependency order: web's own check would have failed before db was ready.
    assert!(out.find("db: started") < out.find("web: started"));
    assert!(s.stack(&["running", "t"]).status.success());
    let (web, web_start) = s.pid_file("t", "web");
    assert_eq!(start_time(web), web_start);
    let (db, _) = s.pid_file("t", "db");
    let grandchild: u32 = fs::read_to_string(s.state("t").join("grandchild.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(web) && alive(db) && alive(grandchild));
    assert!(s.state("t").join("logs/web.log").exists());

    // Again: nothing restarts.
    let out = s.ok(&["up", "t"]);
    assert!(out.contains("web: already running"), "{out}");
    assert_eq!(s.pid_file("t", "web").0, web);
    let status = s.ok(&["status"]);
    assert!(
        status.contains(&format!("web: running (pid {web}), ready")),
        "{status}"
    );

    // restart: a new process, ready again.
    let out = s.ok(&["restart", "t", "web"]);
    assert!(
        out.contains("web: stopped") && out.contains("web: started"),
        "{out}"
    );
    let (web2, _) = s.pid_file("t", "web");
    assert_ne!(web2, web);
    assert!(wait_dead(web));
    assert!(get(s.web_port));
    assert!(s.stack(&["running", "t"]).status.success());
    let err = s.fails(&["restart", "t", "nope"]);
    assert!(
        err.contains("profile t has no process nope (it has: db, web)"),
        "{err}"
    );

    // down: everything it started, the grandchild too, and not the decoy.
    let out = s.ok(&["down"]);
    assert!(
        out.contains("web: stopped") && out.contains("db: stopped"),
        "{out}"
    );
    assert!(wait_dead(web2) && wait_dead(db) && wait_dead(grandchild));
    assert!(alive(decoy.0.id()));
    assert!(!s.stack(&["running", "t"]).status.success());
    assert!(!s.state("t").join("pids/web.pid").exists());
    assert!(s.ok(&["status"]).contains("nothing runs"));
}

#[test]
fn a_recycled_pid_is_never_signalled() {
    let s = Scratch::new("recycled");
    let decoy = Decoy::new();
    s.ok(&["up", "t"]);
    let (db, _) = s.pid_file("t", "db");
    // The pid file now names the decoy's pid with another start time: what
    // it looks like when the kernel has given db's pid to a new process.
    let pid_file = s.state("t").join("pids/db.pid");
    fs::write(
        &pid_file,
        format!("{} {}\n", decoy.0.id(), start_time(decoy.0.id()) + 1),
    )
    .unwrap();
    let err = s.fails(&["running", "t"]);
    assert!(err.contains("db is not running"), "{err}");
    s.ok(&["down", "t"]);
    assert!(alive(decoy.0.id()), "the decoy was killed");
    // db really was ours: stop it here.
    Command::new("kill")
        .args(["-KILL", "--", &format!("-{db}")])
        .status()
        .unwrap();
    assert!(wait_dead(db));
}

#[test]
fn a_rebuilt_binary_is_restarted_on_up() {
    let s = Scratch::new("rebuilt");
    s.ok(&["up", "other"]);
    let (web, _) = s.pid_file("other", "web");
    sleep(Duration::from_millis(20));
    let script = fs::read(s.root.join("web.sh")).unwrap();
    fs::write(s.root.join("web.sh"), script).unwrap();
    let out = s.ok(&["up", "other"]);
    assert!(
        out.contains("web: stopped (binary rebuilt, restarting)"),
        "{out}"
    );
    assert_ne!(s.pid_file("other", "web").0, web);
    assert!(wait_dead(web));
}

#[test]
fn readiness_timeout_and_early_exit_name_the_log() {
    let s = Scratch::new("timeout");
    let started = Instant::now();
    let err = s.fails(&["up", "slow"]);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        err.contains("never: timed out after 1s waiting for 127.0.0.1:"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "see {}",
            s.state("slow").join("logs/never.log").display()
        )),
        "{err}"
    );
    let (never, _) = s.pid_file("slow", "never");
    s.ok(&["down", "slow"]);
    assert!(wait_dead(never));

    let err = s.fails(&["up", "crash"]);
    assert!(
        err.contains("crash: exited before it was ready; see"),
        "{err}"
    );
    assert_eq!(
        fs::read_to_string(s.state("crash").join("logs/crash.log")).unwrap(),
        "boom\n"
    );
}

#[test]
fn a_port_in_use_is_refused_before_anything_starts() {
    let s = Scratch::new("ports");
    let squatter = TcpListener::bind(("127.0.0.1", s.web_port)).unwrap();
    let err = s.fails(&["up", "t"]);
    assert!(
        err.contains(&format!(
            "port {} (web) is in use by a process this stack did not start",
            s.web_port
        )),
        "{err}"
    );
    assert!(!s.state("t").join("pids/db.pid").exists(), "db was started");
    // Pid files of the shell runner this replaced: named as the likely holder.
    fs::create_dir_all(s.root.join(".local/stack/pids")).unwrap();
    fs::write(s.root.join(".local/stack/pids/web.pid"), "1\n").unwrap();
    let err = s.fails(&["up", "t"]);
    assert!(err.contains("old envoy-ext/standalone/stack.sh"), "{err}");
    drop(squatter);

    // Held by another profile: named, with how to stop it.
    s.ok(&["up", "other"]);
    let err = s.fails(&["up", "t"]);
    assert!(
        err.contains(&format!(
            "port {} (web) is in use by profile other's web (`cargo stack down other`)",
            s.web_port
        )),
        "{err}"
    );
}

#[test]
fn run_starts_runs_and_stops() {
    let s = Scratch::new("run");
    let seen = s.root.join("seen");
    let script = format!(
        "echo \"$STACK_PROFILE $STACK_STATE_DIR\" > {}; test -e \"$STACK_STATE_DIR/pids/web.pid\" || exit 9; exit 3",
        seen.display()
    );
    let output = s.stack(&["run", "t", "--", "sh", "-c", &script]);
    assert_eq!(output.status.code(), Some(3));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains(&format!("logs: {}", s.state("t").join("logs").display())),
        "{err}"
    );
    assert_eq!(
        fs::read_to_string(&seen).unwrap(),
        format!("t {}\n", s.state("t").display())
    );
    assert!(!get(s.web_port), "t still runs after run");
    assert!(!s.stack(&["running", "t"]).status.success());

    // Another profile runs: refused without --stop-others...
    s.ok(&["up", "other"]);
    let (other_web, _) = s.pid_file("other", "web");
    let err = s.fails(&["run", "t", "--", "true"]);
    assert!(
        err.contains("profile other is running") && err.contains("--stop-others"),
        "{err}"
    );
    assert_eq!(s.pid_file("other", "web").0, other_web);
    // ...stopped and started again with it.
    let out = s.ok(&[
        "run",
        "--stop-others",
        "t",
        "--",
        "sh",
        "-c",
        "test -e \"$STACK_STATE_DIR/pids/db.pid\"",
    ]);
    assert!(out.contains("other: starting it again"), "{out}");
    assert!(wait_dead(other_web));
    assert!(s.stack(&["running", "other"]).status.success());
    assert!(!s.stack(&["running", "t"]).status.success());
    // The same, asked through the environment (the justfile's suites).
    let (other_web, _) = s.pid_file("other", "web");
    s.ok_with(&["run", "t", "--", "true"], &[("STACK_STOP_OTHERS", "1")]);
    assert!(wait_dead(other_web));
    assert!(s.stack(&["running", "other"]).status.success());
    s.ok(&["down", "other"]);

    // The profile runs already: refreshed, used, left running.
    s.ok(&["up", "t"]);
    let (web, _) = s.pid_file("t", "web");
    s.ok(&["run", "t", "--", "true"]);
    assert_eq!(s.pid_file("t", "web").0, web);
    assert!(s.stack(&["running", "t"]).status.success());
}

#[test]
fn the_command_line_is_checked() {
    let s = Scratch::new("cli");
    let err = s.fails(&["up", "nope"]);
    assert!(
        err.contains("no profile nope (profiles: crash, other, slow, t)"),
        "{err}"
    );
    let err = s.fails(&["run", "t"]);
    assert!(err.contains("required"), "{err}");
    let err = s.fails(&["--set", "x", "up", "t"]);
    assert!(err.contains("want NAME=VALUE"), "{err}");
    let err = s.fails(&["restart", "t", "web"]);
    assert!(err.contains("profile t is not running"), "{err}");
}

#[test]
fn reset_stops_the_profile_and_deletes_only_its_state() {
    let s = Scratch::new("reset");
    s.ok(&["up", "other"]);
    let (web, _) = s.pid_file("other", "web");
    let out = s.ok(&["reset", "other"]);
    assert!(out.contains("other: state deleted"), "{out}");
    assert!(wait_dead(web));
    assert!(!s.state("other").exists());
    // Nothing outside the profile's own directory, and no unknown profile.
    assert!(s.root.join("web.sh").exists());
    let err = s.fails(&["reset", ".."]);
    assert!(err.contains(".."), "{err}");
    assert!(s.root.exists());
    let out = s.ok(&["reset", "other"]);
    assert!(out.contains("other: no state to delete"), "{out}");
}

#[test]
fn a_process_killed_while_run_runs_is_reaped() {
    let s = Scratch::new("reap");
    // The command kills the profile's web server and waits for its pid to
    // disappear: a zombie (an unreaped child of the runner) keeps it.
    let script = "pid=$(cut -d' ' -f1 \"$STACK_STATE_DIR/pids/web.pid\"); kill -9 $pid; \
                  for _ in $(seq 50); do [ -e /proc/$pid ] || exit 0; sleep 0.1; done; exit 7";
    let output = s.stack(&["run", "other", "--", "sh", "-c", script]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "the killed process was not reaped"
    );
}
