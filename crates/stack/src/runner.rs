//! The commands: up, down, status, running, restart, run.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fs,
    path::{Path, PathBuf},
    process::{Child, Command},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::sleep,
    time::{Duration, Instant},
};

use envoy_ext::services::ServiceTable;
use serde::{Deserialize, Serialize};

use crate::{
    Error, graph,
    pidfile::PidFile,
    procs,
    profile::{Context, Process, Profiles},
    ready, steps,
};

const RECORD: &str = "stack.json";
const POLL: Duration = Duration::from_millis(100);

/// What `up` started, kept in the profile's state directory: `down`,
/// `restart` and `running` work from it, without the environment `up` had.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub profile: String,
    /// In start order.
    pub processes: Vec<Process>,
}

/// Where things live and what the runner was told.
pub struct Runner {
    pub root: PathBuf,
    pub profiles: Profiles,
    /// The profiles file given with --profiles, passed on to `run`'s command.
    pub profiles_file: Option<PathBuf>,
    pub sets: BTreeMap<String, String>,
    /// Set by SIGINT/SIGTERM/SIGHUP.
    pub interrupted: Arc<AtomicBool>,
    /// Processes this invocation started: reaped once stopped.
    children: HashMap<String, Child>,
}

/// Progress on stderr. A closed stderr (`| head`) must not abort a run
/// half-way and leave its stack behind, as `eprintln!`'s panic would.
fn say(message: impl AsRef<str>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{}", message.as_ref());
}

impl Runner {
    pub fn new(
        root: PathBuf,
        profiles: Profiles,
        profiles_file: Option<PathBuf>,
        sets: BTreeMap<String, String>,
        interrupted: Arc<AtomicBool>,
    ) -> Self {
        Self {
            root,
            profiles,
            profiles_file,
            sets,
            interrupted,
            children: HashMap::new(),
        }
    }

    /// .local/stack: one directory per profile.
    pub fn state_root(&self) -> PathBuf {
        self.root.join(".local/stack")
    }

    pub fn state(&self, profile: &str) -> PathBuf {
        self.state_root().join(profile)
    }

    fn pid_path(&self, profile: &str, name: &str) -> PathBuf {
        self.state(profile).join("pids").join(format!("{name}.pid"))
    }

    fn log_path(&self, profile: &str, name: &str) -> PathBuf {
        self.state(profile).join("logs").join(format!("{name}.log"))
    }

    /// The recorded process if it runs (identity checked).
    fn alive(&self, profile: &str, name: &str) -> Option<PidFile> {
        PidFile::read(&self.pid_path(profile, name)).filter(PidFile::alive)
    }

    fn load_record(&self, profile: &str) -> Result<Option<Record>, Error> {
        let path = self.state(profile).join(RECORD);
        match fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|err| Error::Usage(format!("{}: {err}", path.display()))),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(Error::io(path)(err)),
        }
    }

    /// Profiles with a record, by name.
    fn recorded(&self) -> Result<Vec<Record>, Error> {
        let mut records = Vec::new();
        let Ok(entries) = fs::read_dir(self.state_root()) else {
            return Ok(records);
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| {
                let e = e.ok()?;
                e.file_type().ok()?.is_dir().then_some(())?;
                e.file_name().into_string().ok()
            })
            .collect();
        names.sort();
        for name in names {
            if let Some(record) = self.load_record(&name)? {
                records.push(record);
            }
        }
        Ok(records)
    }

    /// Profiles of which at least one process runs.
    pub fn running_profiles(&self) -> Result<Vec<Record>, Error> {
        Ok(self
            .recorded()?
            .into_iter()
            .filter(|record| {
                record.processes.iter().any(|p| {
                    PidFile::read(&self.pid_path(&record.profile, &p.name))
                        .is_some_and(|pid| !pid.group().is_empty())
                })
            })
            .collect())
    }

    /// Serialises the commands that change what runs (two `up`s at once
    /// would both start the same process).
    fn lock(&self) -> Result<fs::File, Error> {
        use rustix::fs::{FlockOperation, flock};
        let dir = self.state_root();
        fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        let path = dir.join(".lock");
        let file = fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(Error::io(&path))?;
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
            say(format!(
                "waiting for another stack command to finish ({})",
                path.display()
            ));
            flock(&file, FlockOperation::LockExclusive)
                .map_err(|err| Error::io(&path)(err.into()))?;
        }
        Ok(file)
    }

    /// The processes of `profile` as it would start now, in start order.
    pub fn resolve(&self, profile: &str) -> Result<Vec<Process>, Error> {
        let definition = self.profiles.profile(profile)?;
        let table = ServiceTable::committed()?;
        let state = self.state(profile);
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let processes = definition.resolve(&Context {
            root: &self.root,
            state: &state,
            sets: &self.sets,
            table: &table,
            env: &env,
        })?;
        graph::start_order(processes)
    }

    pub fn up(&mut self, profile: &str) -> Result<(), Error> {
        let _lock = self.lock()?;
        let processes = self.resolve(profile)?;
        self.up_processes(profile, processes)
    }

    fn up_processes(&mut self, profile: &str, processes: Vec<Process>) -> Result<(), Error> {
        let started = Instant::now();
        let state = self.state(profile);
        for dir in [state.join("logs"), state.join("pids")] {
            fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        }
        let previous = self.load_record(profile)?;
        if let Some(previous) = &previous {
            for old in previous.processes.iter().rev() {
                if !processes.iter().any(|p| p.name == old.name) {
                    self.stop_one(profile, &old.name, "no longer in the profile");
                }
            }
        }
        // Dependents first, as `down` does.
        for process in processes.iter().rev() {
            let Some(_) = self.alive(profile, &process.name) else {
                continue;
            };
            let recorded = previous
                .as_ref()
                .and_then(|r| r.processes.iter().find(|p| p.name == process.name));
            let reason = if newer(&process.program, &self.pid_path(profile, &process.name)) {
                Some("binary rebuilt")
            } else if recorded != Some(process) {
                Some("its settings changed")
            } else {
                None
            };
            if let Some(reason) = reason {
                self.stop_one(profile, &process.name, &format!("{reason}, restarting"));
            }
        }
        self.check_ports(profile, &processes)?;
        let record = Record {
            profile: profile.to_owned(),
            processes: processes.clone(),
        };
        let json = serde_json::to_vec_pretty(&record)
            .map_err(|err| Error::Usage(format!("cannot record the profile: {err}")))?;
        let path = state.join(RECORD);
        steps::write_atomically(&path, &json).map_err(Error::io(&path))?;
        self.start_and_wait(profile, &processes)?;
        say(format!(
            "{profile}: ready in {:.1}s; logs in {}",
            started.elapsed().as_secs_f64(),
            state.join("logs").display()
        ));
        Ok(())
    }

    /// A port we need that accepts connections while our process for it is
    /// not running belongs to someone else: say so instead of half-starting
    /// next to it.
    fn check_ports(&self, profile: &str, processes: &[Process]) -> Result<(), Error> {
        for process in processes {
            if self.alive(profile, &process.name).is_some() {
                continue;
            }
            for &port in &process.ports {
                if ready::port_open(port) {
                    let holder = self
                        .running_profiles()?
                        .into_iter()
                        .find_map(|record| {
                            let holder =
                                record.processes.iter().find(|p| p.ports.contains(&port))?;
                            Some(format!(
                                "by profile {}'s {} (`cargo stack down {}`)",
                                record.profile, holder.name, record.profile
                            ))
                        })
                        .unwrap_or_else(|| self.stranger_hint());
                    return Err(Error::PortInUse {
                        port,
                        process: process.name.clone(),
                        holder,
                    });
                }
            }
        }
        Ok(())
    }

    /// Who may hold a port that none of our profiles holds.
    fn stranger_hint(&self) -> String {
        // The shell runner this replaced kept its pid files (pid only)
        // directly in .local/stack/pids/.
        let legacy = self.state_root().join("pids");
        if fs::read_dir(&legacy).is_ok_and(|mut entries| entries.next().is_some()) {
            format!(
                "by a process this stack did not start (a stack of the old envoy-ext/standalone/stack.sh? its pids are in {})",
                legacy.display()
            )
        } else {
            "by a process this stack did not start (a service started by hand?)".to_owned()
        }
    }

    /// Starts each process once everything it depends on is ready, and
    /// waits until every one is ready. Dependencies outside `processes` are
    /// taken as ready (`restart` of one process).
    fn start_and_wait(&mut self, profile: &str, processes: &[Process]) -> Result<(), Error> {
        let names: HashSet<&str> = processes.iter().map(|p| p.name.as_str()).collect();
        let mut began: HashMap<&str, Instant> = HashMap::new();
        let mut ready: HashSet<&str> = HashSet::new();
        let logs = self.state(profile).join("logs");
        loop {
            if self.interrupted.load(Ordering::SeqCst) {
                return Err(Error::Interrupted);
            }
            for process in processes {
                let name = process.name.as_str();
                let deps_ready = process
                    .depends_on
                    .iter()
                    .all(|dep| !names.contains(dep.as_str()) || ready.contains(dep.as_str()));
                if began.contains_key(name) || !deps_ready {
                    continue;
                }
                let running = self.alive(profile, name);
                for prepare in &process.prepare {
                    if running.is_none() || prepare.always {
                        steps::run(&prepare.step, &self.root, &logs)?;
                    }
                }
                if let Some(running) = running {
                    say(format!("{name}: already running (pid {})", running.pid));
                } else {
                    let log = self.log_path(profile, name);
                    let (child, record) = procs::spawn(process, &self.root, &log)?;
                    let pid_path = self.pid_path(profile, name);
                    record.write(&pid_path).map_err(Error::io(&pid_path))?;
                    self.children.insert(name.to_owned(), child);
                    say(format!(
                        "{name}: started (pid {}), log {}",
                        record.pid,
                        log.display()
                    ));
                }
                began.insert(name, Instant::now());
            }
            for process in processes {
                let name = process.name.as_str();
                let Some(since) = began.get(name) else {
                    continue;
                };
                if ready.contains(name) {
                    continue;
                }
                let log = self.log_path(profile, name);
                if self.alive(profile, name).is_none() {
                    self.reap(name);
                    return Err(Error::Start {
                        process: name.to_owned(),
                        message: "exited before it was ready".into(),
                        log,
                    });
                }
                if ready::check(&process.ready, &self.root) {
                    ready.insert(name);
                } else if since.elapsed() >= process.timeout() {
                    return Err(Error::Start {
                        process: name.to_owned(),
                        message: format!(
                            "timed out after {}s waiting for {}",
                            process.timeout().as_secs_f64(),
                            ready::describe(&process.ready)
                        ),
                        log,
                    });
                }
            }
            if ready.len() == processes.len() {
                return Ok(());
            }
            sleep(POLL);
        }
    }

    fn reap(&mut self, name: &str) {
        if let Some(mut child) = self.children.remove(name) {
            // Dead already (or it would not be reaped): collect the zombie.
            let _ = child.try_wait();
        }
    }

    /// Stops one process of `profile` (its whole group) and forgets it.
    fn stop_one(&mut self, profile: &str, name: &str, why: &str) {
        let pid_path = self.pid_path(profile, name);
        if let Some(record) = PidFile::read(&pid_path)
            && procs::stop(&record, procs::GRACE)
        {
            say(format!("{name}: stopped ({why})"));
        }
        self.reap(name);
        let _ = fs::remove_file(pid_path);
    }

    fn down_unlocked(&mut self, profile: &str) -> Result<bool, Error> {
        let Some(record) = self.load_record(profile)? else {
            return Ok(false);
        };
        for process in record.processes.iter().rev() {
            self.stop_one(profile, &process.name, "down");
        }
        // Pid files of processes a former version of the profile ran.
        let pids = self.state(profile).join("pids");
        if let Ok(entries) = fs::read_dir(&pids) {
            for entry in entries.flatten() {
                if let Some(name) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".pid"))
                {
                    self.stop_one(profile, name, "down");
                }
            }
        }
        let path = self.state(profile).join(RECORD);
        fs::remove_file(&path).map_err(Error::io(&path))?;
        Ok(true)
    }

    /// `reset PROFILE`: stop it, then delete its state directory, so the
    /// next `up` starts from nothing (a fresh database for `scale`).
    pub fn reset(&mut self, profile: &str) -> Result<(), Error> {
        // Only a profile of the file names a directory that may be deleted.
        self.profiles.profile(profile)?;
        let _lock = self.lock()?;
        self.down_unlocked(profile)?;
        let state = self.state(profile);
        match fs::remove_dir_all(&state) {
            Ok(()) => say(format!("{profile}: state deleted ({})", state.display())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                say(format!("{profile}: no state to delete"));
            }
            Err(err) => return Err(Error::io(&state)(err)),
        }
        Ok(())
    }

    /// `down PROFILE`, or every profile that runs.
    pub fn down(&mut self, profile: Option<&str>) -> Result<(), Error> {
        let _lock = self.lock()?;
        match profile {
            Some(profile) => {
                if !self.down_unlocked(profile)? {
                    say(format!("{profile}: not running"));
                }
            }
            None => {
                let records = self.recorded()?;
                if records.is_empty() {
                    say("nothing runs");
                }
                for record in records {
                    self.down_unlocked(&record.profile)?;
                    say(format!("{}: down", record.profile));
                }
            }
        }
        Ok(())
    }

    pub fn status(&self) -> Result<(), Error> {
        let records = self.recorded()?;
        if records.is_empty() {
            println!(
                "nothing runs (profiles: {})",
                self.profiles.names().join(", ")
            );
        }
        for record in records {
            println!(
                "{} ({}):",
                record.profile,
                self.state(&record.profile).display()
            );
            for process in &record.processes {
                match self.alive(&record.profile, &process.name) {
                    Some(pid) => {
                        let ready = if ready::check(&process.ready, &self.root) {
                            "ready"
                        } else {
                            "NOT READY"
                        };
                        println!("  {}: running (pid {}), {ready}", process.name, pid.pid);
                    }
                    None => println!("  {}: stopped", process.name),
                }
            }
        }
        Ok(())
    }

    /// Every process of `profile` alive and ready; what is not goes to stderr.
    pub fn running(&self, profile: &str) -> Result<bool, Error> {
        let Some(record) = self.load_record(profile)? else {
            say(format!("{profile}: not running"));
            return Ok(false);
        };
        let mut all = true;
        for process in &record.processes {
            if self.alive(profile, &process.name).is_none() {
                say(format!("{profile}: {} is not running", process.name));
                all = false;
            } else if !ready::check(&process.ready, &self.root) {
                say(format!(
                    "{profile}: {} is not ready (waiting for {})",
                    process.name,
                    ready::describe(&process.ready)
                ));
                all = false;
            }
        }
        Ok(all)
    }

    /// SIGTERM one process, wait for its drain and exit, start it again as
    /// recorded, wait until it is ready.
    pub fn restart(&mut self, profile: &str, name: &str) -> Result<(), Error> {
        let _lock = self.lock()?;
        let record = self
            .load_record(profile)?
            .ok_or_else(|| Error::NotRunning(profile.to_owned()))?;
        let process = record
            .processes
            .iter()
            .find(|p| p.name == name)
            .cloned()
            .ok_or_else(|| Error::UnknownProcess {
                profile: profile.to_owned(),
                name: name.to_owned(),
                known: record
                    .processes
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        self.stop_one(profile, name, "restart");
        self.start_and_wait(profile, &[process])
    }

    /// `run`: the profile up around a command. Returns the command's exit code.
    pub fn run(
        &mut self,
        profile: &str,
        stop_others: bool,
        command: &[String],
    ) -> Result<i32, Error> {
        let lock = self.lock()?;
        let processes = self.resolve(profile)?;
        let running = self.running_profiles()?;
        if running.iter().any(|r| r.profile == profile) {
            // Someone's stack (`just up`): refreshed and left running.
            if let Err(err) = self.up_processes(profile, processes) {
                self.say_logs(profile);
                return Err(err);
            }
            drop(lock);
            let code = self.run_command(profile, command)?;
            if code != 0 {
                self.say_logs(profile);
            }
            return Ok(code);
        }
        if let Some(other) = running.first()
            && !stop_others
        {
            return Err(Error::OtherRunning {
                other: other.profile.clone(),
            });
        }
        for other in &running {
            say(format!(
                "{}: stopping it for {profile}; it is started again afterwards",
                other.profile
            ));
            self.down_unlocked(&other.profile)?;
        }
        let outcome = match self.up_processes(profile, processes) {
            Ok(()) => {
                drop(lock);
                let code = self.run_command(profile, command);
                // A Ctrl-C that ended the command must not also cancel the
                // clean-up; a second one interrupts starting others again.
                self.interrupted.store(false, Ordering::SeqCst);
                let lock = self.lock()?;
                (code, lock)
            }
            Err(err) => (Err(err), lock),
        };
        let (code, _lock) = outcome;
        if !matches!(code, Ok(0)) {
            self.say_logs(profile);
        }
        if let Err(err) = self.down_unlocked(profile) {
            say(format!("{profile}: stopping it failed: {err}"));
        }
        for other in running {
            say(format!("{}: starting it again", other.profile));
            if let Err(err) = self.up_processes(&other.profile, other.processes) {
                say(format!(
                    "{}: starting it again failed: {err}",
                    other.profile
                ));
            }
        }
        code
    }

    fn say_logs(&self, profile: &str) {
        say(format!(
            "logs: {}",
            self.state(profile).join("logs").display()
        ));
    }

    fn run_command(&mut self, profile: &str, command: &[String]) -> Result<i32, Error> {
        use std::os::unix::process::ExitStatusExt;
        let (program, args) = command
            .split_first()
            .ok_or_else(|| Error::Usage("run: no command after --".into()))?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env("STACK_PROFILE", profile)
            .env("STACK_STATE_DIR", self.state(profile))
            .env("STACK_ROOT", &self.root);
        if let Ok(exe) = std::env::current_exe() {
            cmd.env("STACK_BIN", exe);
        }
        if let Some(file) = &self.profiles_file {
            cmd.env("STACK_PROFILES", file);
        }
        let mut child = cmd
            .spawn()
            .map_err(|err| Error::Usage(format!("run: {program}: {err}")))?;
        let mut forwarded = false;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(err) => return Err(Error::Usage(format!("run: {program}: {err}"))),
            }
            // A terminal's Ctrl-C reaches the command too; a SIGTERM to us
            // alone is passed on, and the profile is stopped once it ends.
            if self.interrupted.load(Ordering::SeqCst) && !forwarded {
                forwarded = true;
                if let Some(pid) = i32::try_from(child.id())
                    .ok()
                    .and_then(rustix::process::Pid::from_raw)
                {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                }
            }
            // The profile's processes are our children while the command
            // runs: reap one that dies (a test may kill it), or it stays a
            // zombie whose pid still counts as alive (PostgreSQL then
            // refuses to start again over its postmaster.pid).
            for started in self.children.values_mut() {
                let _ = started.try_wait();
            }
            sleep(Duration::from_millis(50));
        };
        let code = status
            .code()
            .or_else(|| status.signal().map(|signal| 128 + signal))
            .unwrap_or(1);
        say(format!("{}: exit {code}", command.join(" ")));
        Ok(code)
    }
}

/// `program` was modified after `pid_file` was written.
fn newer(program: &Path, pid_file: &Path) -> bool {
    let modified = |path: &Path| fs::metadata(path).and_then(|m| m.modified()).ok();
    match (modified(program), modified(pid_file)) {
        (Some(program), Some(pid)) => program > pid,
        _ => false,
    }
}
