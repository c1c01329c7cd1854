//! An idle worker costs nothing and still starts new work at once.

use std::time::Duration;

use serde_json::json;

use crate::harness::Env;

/// The timings the worker ships with (the harness shortens them for the other tests).
const DEFAULT_TIMINGS: [(&str, &str); 5] = [
    ("JOB_LEASE_SECS", "30"),
    ("RECONCILE_INTERVAL_SECS", "10"),
    ("REAPER_INTERVAL_MS", "1000"),
    ("PROMOTE_INTERVAL_MS", "5000"),
    ("IDLE_POLL_MS", "5000"),
];

/// CPU time (user + system, every thread, including threads that have ended) used by process
/// `pid` so far: fields 14 and 15 of `/proc/<pid>/stat`, in clock ticks of 10 ms (USER_HZ).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// The idle worker's CPU is measured over 30 s: three reconcile rounds and thirty of every
/// one-second duty, so the 10 ms granularity of the counters is under a tenth of the budget
/// and no round falls in or out of the window by chance. The worker's own counters count only
/// its own work; what other processes do to the machine meanwhile adds little to them.
const CPU_WINDOW: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_worker_uses_under_half_a_percent_of_a_core() {
    let env = Env::start().await;
    let worker = env.worker(&DEFAULT_TIMINGS).await;
    let pid = worker.child.id().unwrap();
    // Start-up (migrations check, the first reconcile's full sweep) is over after a second.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = cpu_time(pid);
    tokio::time::sleep(CPU_WINDOW).await;
    let used = cpu_time(pid) - before;
    eprintln!("idle worker used {used:?} of CPU in {CPU_WINDOW:?}");
    assert!(
        used.as_secs_f64() < CPU_WINDOW.as_secs_f64() * 0.005,
        "idle worker used {used:?} of CPU in {CPU_WINDOW:?}"
    );
}

/// A noop job submitted to an idle worker starts at once, woken by the submit rather than found
/// by a poll: from the moment the job service handled its submit (`created_at`, this machine's
/// clock) to the moment its handler started (the execution log, the same clock), through the
/// commit, the index write, the wake-up, the claim and its record. The worker waits, idle,
/// longer than any of its batching delays before each submit.
///
/// The median is held to [`STARTS_WITHIN_MS`], whatever else the machine runs: these are debug
/// binaries among the rest of the suite, where every hop also waits for a core (medians of
/// 14–183 ms were seen at 4–5 runnable tasks per core). That still fails a worker that finds new
/// jobs by polling (`IDLE_POLL_MS`, 5 s) or that adds a batching delay of a quarter second. The
/// issue's 5 ms is measured by `bench` (its "idle: noop created→started" row, release binaries,
/// with the load average beside it).
#[tokio::test(flavor = "multi_thread")]
async fn a_noop_job_submitted_to_an_idle_worker_starts_without_waiting_for_a_poll() {
    let env = Env::start().await;
    let _worker = env.worker(&DEFAULT_TIMINGS).await;
    // Warm up the connections of both processes.
    let id = env.submit(json!({"type": "noop"})).await;
    env.wait_status(id, "completed", Duration::from_secs(10))
        .await;
    let mut delays = Vec::new();
    for _ in 0..TRIES {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let id = env.submit(json!({"type": "noop"})).await;
        let job = env
            .wait_status(id, "completed", Duration::from_secs(10))
            .await;
        let started = env.executions_of(id)[0].1;
        delays.push(started - job.created_at.timestamp_millis());
    }
    delays.sort_unstable();
    let median = delays[TRIES / 2];
    eprintln!("created → started, ms: {delays:?}");
    assert!(
        median <= STARTS_WITHIN_MS,
        "created → started: median {median} ms > {STARTS_WITHIN_MS} ms ({delays:?})"
    );
}

/// Submits measured by [`a_noop_job_submitted_to_an_idle_worker_starts_without_waiting_for_a_poll`].
const TRIES: usize = 15;

/// The bound on the median start delay in the test above.
const STARTS_WITHIN_MS: i64 = 250;
