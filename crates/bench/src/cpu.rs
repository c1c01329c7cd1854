//! CPU time used by each process during a phase, read from `/proc` (Linux), so the report shows
//! which process was busy: the services, the benchmark's own client, PostgreSQL or Redis.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

/// Whose CPU time is tracked: the children by pid, the database servers by command name.
#[derive(Debug, Clone)]
pub struct Watched {
    /// Label and pid of each child process.
    pub pids: Vec<(String, u32)>,
}

/// Cumulative CPU ticks per label at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    at: Instant,
    ticks: BTreeMap<String, u64>,
}

/// CPU use over a phase: percent of one core per process (200 % = both cores of a 2-core box).
#[derive(Debug, Clone, Serialize)]
pub struct CpuUse {
    /// Label → percent of one core.
    pub percent_of_one_core: BTreeMap<String, f64>,
}

impl Watched {
    /// Reads the counters now.
    pub fn snapshot(&self) -> Snapshot {
        let mut ticks = BTreeMap::new();
        ticks.insert(
            "bench (client)".to_owned(),
            process_ticks(std::process::id()).unwrap_or(0),
        );
        for (label, pid) in &self.pids {
            ticks.insert(label.clone(), process_ticks(*pid).unwrap_or(0));
        }
        // Database servers: every process with that command name. PostgreSQL runs one backend
        // per connection, so this also counts other databases' clients on the same server.
        let (postgres, redis) = server_ticks();
        ticks.insert("postgres (all)".to_owned(), postgres);
        ticks.insert("redis-server".to_owned(), redis);
        // Everything the machine did, so that other work (a compiler, another test run) shows.
        ticks.insert(MACHINE.to_owned(), machine_busy_ticks().unwrap_or(0));
        Snapshot {
            at: Instant::now(),
            ticks,
        }
    }
}

impl Snapshot {
    /// CPU use between `self` and the later `end`. A process that started or ended in between is
    /// counted from zero or up to its last reading.
    pub fn until(&self, end: &Snapshot) -> CpuUse {
        let secs = end.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let hz = clock_ticks_per_sec();
        let percent_of_one_core = end
            .ticks
            .iter()
            .map(|(label, &after)| {
                let before = self.ticks.get(label).copied().unwrap_or(0);
                let used = after.saturating_sub(before) as f64 / hz;
                (label.clone(), (used / secs * 1000.0).round() / 10.0)
            })
            .collect();
        CpuUse {
            percent_of_one_core,
        }
    }
}

/// Label of the whole machine's busy time (all CPUs, every process).
pub const MACHINE: &str = "machine (all processes)";

/// Busy time of all CPUs (`/proc/stat`: user, nice, system, irq, softirq, steal), in ticks.
fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let pick = [0, 1, 2, 5, 6, 7];
    Some(pick.iter().filter_map(|&i| fields.get(i)).sum())
}

/// utime + stime of one process, in clock ticks.
fn process_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the whole line are utime and stime; `rest` starts at field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // Children that were waited for (PostgreSQL's short-lived processes) count too.
    Some(utime + stime)
}

/// Summed ticks of every `postgres` and every `redis-server` process.
fn server_ticks() -> (u64, u64) {
    let (mut postgres, mut redis) = (0, 0);
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return (0, 0);
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
            continue;
        };
        match comm.trim() {
            "postgres" => postgres += process_ticks(pid).unwrap_or(0),
            "redis-server" => redis += process_ticks(pid).unwrap_or(0),
            _ => {}
        }
    }
    (postgres, redis)
}

/// `getconf CLK_TCK`, 100 on every mainstream Linux.
fn clock_ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|&hz| hz > 0.0)
        .unwrap_or(100.0)
}
