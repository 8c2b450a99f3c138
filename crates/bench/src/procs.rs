//! CPU and memory of processes, read from /proc while a run is under way.

use std::{
    fs,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

/// A process to watch, by a name for the report.
#[derive(Debug, Clone)]
pub struct Watched {
    pub name: String,
    pub pid: u32,
}

/// What one process used during a run.
#[derive(Debug, Clone)]
pub struct Usage {
    pub name: String,
    /// Average CPU over the run, in percent of one core (200% = both cores).
    pub cpu_pct: f64,
    /// Largest resident set seen during the run.
    pub rss_max_mib: f64,
}

impl Usage {
    pub fn to_json(&self) -> Value {
        json!({"process": self.name, "cpu_pct": round1(self.cpu_pct), "rss_max_mib": round1(self.rss_max_mib)})
    }
}

pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Clock ticks per second for /proc/<pid>/stat times (`getconf CLK_TCK`, 100 on Linux).
fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is fields[0]; utime is field 14, stime field 15.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Resident set size of `pid` in KiB (VmRSS).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Parent pid and command name of `pid`.
fn parent_and_comm(pid: u32) -> Option<(u32, String)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_owned();
    let ppid = stat[close + 1..].split_whitespace().nth(1)?.parse().ok()?;
    Some((ppid, comm))
}

/// The first descendant of `ancestor` whose command name is `comm`
/// (Envoy, launched by `envoy-gateway server`).
pub fn find_descendant(ancestor: u32, comm: &str) -> Option<u32> {
    let procs: Vec<(u32, u32, String)> = fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| parent_and_comm(pid).map(|(ppid, c)| (pid, ppid, c)))
        .collect();
    let mut family = vec![ancestor];
    let mut i = 0;
    while i < family.len() {
        let parent = family[i];
        for (pid, ppid, c) in &procs {
            if *ppid == parent && !family.contains(pid) {
                if c == comm {
                    return Some(*pid);
                }
                family.push(*pid);
            }
        }
        i += 1;
    }
    None
}

/// The pid recorded in a stack runner pid file (`<pid> <start time>`).
pub fn pid_file(path: &Path) -> Option<u32> {
    fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The stack's processes named in `names`, from its pid files
/// (`<state_dir>/pids/<name>.pid`); "envoy" is the Envoy that
/// `envoy-gateway server` launched. Names without a process are an error:
/// a measurement of the wrong stack is worse than none.
pub fn stack_processes(state_dir: &Path, names: &[&str]) -> Result<Vec<Watched>, String> {
    let pid_of = |name: &str| {
        pid_file(&state_dir.join("pids").join(format!("{name}.pid"))).ok_or_else(|| {
            format!(
                "no {name} pid in {} (is the stack up?)",
                state_dir.display()
            )
        })
    };
    names
        .iter()
        .map(|&name| {
            let pid = if name == "envoy" {
                let eg = pid_of("envoy-gateway")?;
                find_descendant(eg, "envoy").ok_or("no envoy process under envoy-gateway")?
            } else {
                pid_of(name)?
            };
            Ok(Watched {
                name: name.to_owned(),
                pid,
            })
        })
        .collect()
}

/// Busy and total clock ticks of the whole machine (/proc/stat), so a run
/// can say what every process together spent, the load tool included.
pub fn machine_ticks() -> Option<(u64, u64)> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    let total: u64 = ticks.iter().sum();
    // idle and iowait are the 4th and 5th columns.
    let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// Percent of one core the whole machine was busy between two
/// [`machine_ticks`] readings (200% = both cores of a 2-core machine).
pub fn machine_busy_pct(before: (u64, u64), after: (u64, u64), cores: usize) -> f64 {
    let busy = after.0.saturating_sub(before.0) as f64;
    let total = after.1.saturating_sub(before.1).max(1) as f64;
    busy / total * 100.0 * cores as f64
}

/// Samples the watched processes on a thread until [`Sampler::finish`].
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<Usage>>,
}

impl Sampler {
    pub fn start(watched: Vec<Watched>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let tck = clk_tck();
            let started = Instant::now();
            let first: Vec<Option<u64>> = watched.iter().map(|w| cpu_ticks(w.pid)).collect();
            let mut rss_max = vec![0u64; watched.len()];
            let mut last = first.clone();
            loop {
                for (i, w) in watched.iter().enumerate() {
                    if let Some(kib) = rss_kib(w.pid) {
                        rss_max[i] = rss_max[i].max(kib);
                    }
                    // A process that exits (the load tool) keeps its last reading.
                    if let Some(t) = cpu_ticks(w.pid) {
                        last[i] = Some(t);
                    }
                }
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            watched
                .iter()
                .enumerate()
                .map(|(i, w)| Usage {
                    name: w.name.clone(),
                    cpu_pct: match (first[i], last[i]) {
                        (Some(a), Some(b)) => (b.saturating_sub(a)) as f64 / tck / secs * 100.0,
                        _ => 0.0,
                    },
                    rss_max_mib: rss_max[i] as f64 / 1024.0,
                })
                .collect()
        });
        Self { stop, handle }
    }

    pub fn finish(self) -> Vec<Usage> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_and_finds_a_child_by_name() {
        let me = std::process::id();
        assert!(rss_kib(me).is_some_and(|k| k > 0));
        assert!(cpu_ticks(me).is_some());
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let found = find_descendant(me, "sleep");
        drop(child.kill());
        drop(child.wait());
        assert_eq!(found, Some(child.id()));
    }

    #[test]
    fn the_machine_is_busy_some_of_the_time() {
        let before = machine_ticks().unwrap();
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(200) {}
        let after = machine_ticks().unwrap();
        assert!(after.1 > before.1);
        let pct = machine_busy_pct(before, after, 2);
        assert!((0.0..=200.0).contains(&pct), "{pct}");
        assert_eq!(machine_busy_pct((10, 100), (60, 200), 2), 100.0);
    }

    #[test]
    fn stack_processes_come_from_pid_files() {
        let dir = std::env::temp_dir().join(format!("bench-procs-{}", std::process::id()));
        fs::create_dir_all(dir.join("pids")).unwrap();
        fs::write(
            dir.join("pids/redis.pid"),
            format!("{} 12345", std::process::id()),
        )
        .unwrap();
        let found = stack_processes(&dir, &["redis"]).unwrap();
        assert_eq!(found[0].pid, std::process::id());
        let err = stack_processes(&dir, &["redis", "ratelimit"]).unwrap_err();
        assert!(err.contains("no ratelimit pid"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sampler_reports_usage() {
        let usage = Sampler::start(vec![Watched {
            name: "me".into(),
            pid: std::process::id(),
        }]);
        std::thread::sleep(Duration::from_millis(150));
        let usage = usage.finish();
        assert_eq!(usage.len(), 1);
        assert!(usage[0].rss_max_mib > 0.0);
    }
}
