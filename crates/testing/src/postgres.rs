//! Throwaway PostgreSQL servers for tests (and later the stack runner).
//!
//! [`PgServer::start`] runs `initdb` and the `postgres` server from the
//! local installation (`PG_BIN`, else the newest
//! `/usr/lib/postgresql/<n>/bin`, else `PATH`) on a fresh data directory in
//! the temp dir, listening on a unix socket there only (no TCP port to
//! collide with anything). The server dies with its owner:
//!
//! - [`Drop`] kills it and removes the directory;
//! - a crash of the test process cannot leave it behind either: it is
//!   started under `setpriv --pdeathsig KILL` from a keeper thread that
//!   lives as long as the process, so the kernel kills it when the process
//!   ends however it ends; directories of dead processes are removed by the
//!   next start.
//!
//! `initdb` refuses to run as root: as root, both run as the `postgres`
//! system user (`id -u postgres`).
//!
//! [`shared`] is one server per test binary; [`PgServer::create_database`]
//! gives each test its own empty database on it.

use std::{
    os::unix::{fs::MetadataExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use crate::TestError;

const DIR_PREFIX: &str = "pg-test-";
const PORT: &str = "5432";

/// See the module docs.
#[derive(Debug)]
pub struct PgServer {
    bin: PathBuf,
    dir: PathBuf,
    owner: Option<(u32, u32)>,
    child: Option<Child>,
    next_db: AtomicUsize,
}

/// The directory of the PostgreSQL programs.
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return PathBuf::from(dir);
    }
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("postgres").exists())
        .max();
    newest.map(|(_, bin)| bin).unwrap_or_default()
}

/// The (uid, gid) to run PostgreSQL as: `postgres` when we are root.
fn owner() -> Result<Option<(u32, u32)>, TestError> {
    if std::fs::metadata("/proc/self")?.uid() != 0 {
        return Ok(None);
    }
    let id = |flag: &str| -> Result<u32, TestError> {
        let out = Command::new("id").args([flag, "postgres"]).output()?;
        if !out.status.success() {
            return Err("running as root, and there is no `postgres` user to run \
                        PostgreSQL as (initdb refuses root)"
                .into());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
    };
    Ok(Some((id("-u")?, id("-g")?)))
}

/// Spawns commands from one thread that never ends, so `--pdeathsig`
/// (which fires when the spawning *thread* exits) fires only when the
/// whole process does.
fn spawn_kept(command: Command) -> Result<Child, TestError> {
    type Job = (Command, mpsc::Sender<std::io::Result<Child>>);
    static KEEPER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("pg-keeper".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
                // The sender lives in a static: never reached.
                loop {
                    std::thread::park();
                }
            })
            .map(|_| ())
            .unwrap_or_else(|err| eprintln!("cannot start the pg-keeper thread: {err}"));
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    keeper
        .lock()
        .map_err(|_| "pg-keeper lock poisoned")?
        .send((command, reply_tx))
        .map_err(|_| "pg-keeper thread is gone")?;
    Ok(reply_rx.recv()??)
}

/// Removes the directories of earlier runs whose process is gone.
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl PgServer {
    /// Initializes a data directory and starts a server on it; returns once
    /// it accepts connections.
    pub fn start() -> Result<Self, TestError> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        remove_stale_dirs();
        let bin = bin_dir();
        let owner = owner()?;
        let dir = std::env::temp_dir().join(format!(
            "{DIR_PREFIX}{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data"))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))?;
            std::os::unix::fs::chown(dir.join("data"), Some(uid), Some(gid))?;
        }
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(dir.join("data"))
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .stdout(Stdio::null());
        if let Some((uid, gid)) = owner {
            initdb.uid(uid).gid(gid);
        }
        let out = initdb.output().map_err(|err| {
            format!(
                "cannot run {} (install PostgreSQL or set PG_BIN): {err}",
                bin.join("initdb").display()
            )
        })?;
        if !out.status.success() {
            return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        let mut server = Self {
            bin,
            dir,
            owner,
            child: None,
            next_db: AtomicUsize::new(0),
        };
        server.restart()?;
        Ok(server)
    }

    /// The socket directory (also the `host` of connection strings).
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// A connection string for database `db` (superuser `postgres`).
    pub fn url(&self, db: &str) -> String {
        format!(
            "host={} port={PORT} user=postgres dbname={db}",
            self.dir.display()
        )
    }

    /// Starts the server on the existing data directory (after [`Self::kill`]).
    pub fn restart(&mut self) -> Result<(), TestError> {
        self.kill();
        let mut command = Command::new("setpriv");
        command
            .args(["--pdeathsig", "KILL", "--"])
            .arg(self.bin.join("postgres"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-k")
            .arg(&self.dir)
            .args(["-p", PORT, "-c", "listen_addresses="])
            // fsync off is safe for a throwaway server: a killed postmaster
            // loses nothing committed (the WAL is written at commit), only an
            // OS crash would.
            .args(["-c", "fsync=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=300"])
            .args(["-c", "shared_buffers=32MB", "-c", "log_min_messages=fatal"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((uid, gid)) = self.owner {
            command.uid(uid).gid(gid);
        }
        self.child = Some(spawn_kept(command)?);
        self.wait_ready(Duration::from_secs(30))
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), TestError> {
        let start = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                return Err(format!("postgres exited at startup: {status}").into());
            }
            let ready = Command::new(self.bin.join("pg_isready"))
                .arg("-q")
                .arg("-h")
                .arg(&self.dir)
                .args(["-p", PORT])
                .status()?;
            if ready.success() {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(format!("postgres not ready within {limit:?}").into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server at once (SIGKILL: a crash, no shutdown checkpoint).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            // Backends notice the postmaster is gone and exit; a restart
            // waits for them through the lock file, so wait a little here.
            let pid_file = self.dir.join("data").join("postmaster.pid");
            let start = Instant::now();
            while pid_file.exists() && start.elapsed() < Duration::from_secs(5) {
                if !self.backends_alive() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn backends_alive(&self) -> bool {
        let data = self.dir.join("data");
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
            })
            .any(|e| {
                std::fs::read(e.path().join("cmdline")).is_ok_and(|cmdline| {
                    String::from_utf8_lossy(&cmdline).contains(&*data.to_string_lossy())
                })
            })
    }

    /// Runs `sql` as the superuser on database `postgres`.
    pub fn psql(&self, sql: &str) -> Result<(), TestError> {
        let out = Command::new(self.bin.join("psql"))
            .arg("-h")
            .arg(&self.dir)
            .args([
                "-p",
                PORT,
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
                "-c",
                sql,
            ])
            .output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr)).into())
        }
    }

    /// A new, empty database; returns its connection string.
    pub fn create_database(&self) -> Result<String, TestError> {
        let name = format!("test_{}", self.next_db.fetch_add(1, Ordering::Relaxed));
        self.psql(&format!("CREATE DATABASE {name}"))?;
        Ok(self.url(&name))
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The server this test binary shares (started on first use; the kernel
/// stops it when the binary exits).
pub fn shared() -> Result<&'static PgServer, TestError> {
    static SHARED: OnceLock<Result<PgServer, String>> = OnceLock::new();
    SHARED
        .get_or_init(|| PgServer::start().map_err(|err| err.to_string()))
        .as_ref()
        .map_err(|err| format!("cannot start PostgreSQL for the tests: {err}").into())
}

/// Which store backend a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Postgres,
}

impl Backend {
    /// The `--database-url` for this backend: none in memory, a fresh
    /// database on the [`shared`] server otherwise.
    pub fn database_url(self) -> Result<Option<String>, TestError> {
        match self {
            Self::Memory => Ok(None),
            Self::Postgres => Ok(Some(shared()?.create_database()?)),
        }
    }
}
