//! Pid files that know which process they mean: the pid plus the process's
//! start time (field 22 of /proc/<pid>/stat, in clock ticks since boot), so
//! a pid the kernel has since given to another process is never signalled.

use std::{fs, io, path::Path};

/// What a pid file records, `<pid> <start time>\n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidFile {
    pub pid: u32,
    pub start_time: u64,
}

/// The fields of /proc/<pid>/stat the runner needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub state: char,
    pub pgrp: u32,
    pub start_time: u64,
}

impl Stat {
    /// A zombie has exited; it only waits for its parent to reap it.
    pub fn exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// /proc/<pid>/stat, or None when there is no such process.
pub fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_stat(text: &str) -> Option<Stat> {
    // The command name may contain spaces and parentheses: the fields
    // start after the last ')'. rest[0] is field 3 (state).
    let rest: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    Some(Stat {
        state: rest.first()?.chars().next()?,
        pgrp: rest.get(2)?.parse().ok()?,
        start_time: rest.get(19)?.parse().ok()?,
    })
}

impl PidFile {
    /// The record of the live process `pid`.
    pub fn of(pid: u32) -> Option<Self> {
        stat(pid).map(|stat| Self {
            pid,
            start_time: stat.start_time,
        })
    }

    pub fn parse(text: &str) -> Option<Self> {
        let mut words = text.split_whitespace();
        let pid = words.next()?.parse().ok()?;
        // A pid alone (the old shell runner's pid file) cannot be verified: not ours.
        let start_time = words.next()?.parse().ok()?;
        words.next().is_none().then_some(Self { pid, start_time })
    }

    pub fn read(path: &Path) -> Option<Self> {
        Self::parse(&fs::read_to_string(path).ok()?)
    }

    pub fn write(&self, path: &Path) -> io::Result<()> {
        crate::steps::write_atomically(
            path,
            format!("{} {}\n", self.pid, self.start_time).as_bytes(),
        )
    }

    /// The recorded process itself still runs (not a zombie, not a newer
    /// process under the same pid).
    pub fn alive(&self) -> bool {
        stat(self.pid).is_some_and(|stat| stat.start_time == self.start_time && !stat.exited())
    }

    /// The live members of the process group the recorded process leads,
    /// itself included. Its children survive it in the group; the kernel
    /// does not hand out a pid still used as a group id, so while a member
    /// lives the group is ours. A different process under the pid means the
    /// group is long gone.
    pub fn group(&self) -> Vec<u32> {
        if stat(self.pid).is_some_and(|stat| stat.start_time != self.start_time) {
            return Vec::new();
        }
        let Ok(entries) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                stat(*pid).is_some_and(|stat| {
                    stat.pgrp == self.pid && !stat.exited() && stat.start_time >= self.start_time
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_an_awkward_command_name() {
        let line = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 1 0 0 0 5 6 0 0 20 0 1 0 987654 1000 10 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: 'S',
                pgrp: 4242,
                start_time: 987654
            })
        );
    }

    #[test]
    fn pid_file_round_trip_and_legacy_files() {
        let record = PidFile {
            pid: 12,
            start_time: 345,
        };
        assert_eq!(PidFile::parse("12 345\n"), Some(record));
        // The old shell runner wrote the pid alone: unverifiable, so never ours.
        assert_eq!(PidFile::parse("12\n"), None);
        assert_eq!(PidFile::parse("12 345 6"), None);
        assert_eq!(PidFile::parse(""), None);
    }

    #[test]
    fn identity_is_pid_and_start_time() {
        let me = PidFile::of(std::process::id()).unwrap();
        assert!(me.alive());
        let recycled = PidFile {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(
            !recycled.alive(),
            "same pid, another start time: another process"
        );
        assert!(recycled.group().is_empty());
    }

    #[test]
    fn a_group_outlives_its_leader() {
        // A leader (sh, in its own group via setsid) that starts a sleep and
        // exits: the sleep is still the recorded group's member.
        let dir = std::env::temp_dir().join(format!("stack-group-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let out = dir.join("sleep.pid");
        let mut leader = std::process::Command::new("setsid")
            .args([
                "sh",
                "-c",
                "sleep 30 & echo $! > \"$0\"; sleep 1",
                out.to_str().unwrap(),
            ])
            .spawn()
            .unwrap();
        let record = PidFile::of(leader.id()).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while fs::read_to_string(&out).map_or(true, |s| s.trim().is_empty()) {
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let sleeper: u32 = fs::read_to_string(&out).unwrap().trim().parse().unwrap();
        leader.wait().unwrap();
        assert!(!record.alive());
        assert_eq!(record.group(), vec![sleeper]);
        assert!(crate::procs::stop(
            &record,
            std::time::Duration::from_secs(5)
        ));
        assert!(record.group().is_empty());
        assert!(stat(sleeper).is_none_or(|s| s.exited()));
        fs::remove_dir_all(dir).unwrap();
    }
}
