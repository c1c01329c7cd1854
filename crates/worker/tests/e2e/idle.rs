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

/// CPU time (user + system) used by process `pid` so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // The clock tick is 100 Hz on Linux (USER_HZ).
    Duration::from_millis(ticks * 10)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_worker_uses_under_half_a_percent_of_a_core() {
    let env = Env::start().await;
    let worker = env.worker(&DEFAULT_TIMINGS).await;
    let pid = worker.child.id().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = cpu_time(pid);
    let window = Duration::from_secs(10);
    tokio::time::sleep(window).await;
    let used = cpu_time(pid) - before;
    eprintln!("idle worker used {used:?} of CPU in {window:?}");
    assert!(
        used.as_secs_f64() < window.as_secs_f64() * 0.005,
        "idle worker used {used:?} of CPU in {window:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_worker_starts_a_new_job_at_once_without_polling() {
    let env = Env::start().await;
    let _worker = env.worker(&DEFAULT_TIMINGS).await;
    let mut delays = Vec::new();
    for _ in 0..5 {
        // Idle for a while (far less than IDLE_POLL_MS, so only a wake-up can start it soon).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let sent = chrono::Utc::now().timestamp_millis();
        let id = env.submit(json!({"type": "noop"})).await;
        env.wait_status(id, "completed", Duration::from_secs(10))
            .await;
        let started = env.executions_of(id)[0].1;
        delays.push(started - sent);
    }
    delays.sort_unstable();
    // The median; on an unloaded machine it is a few milliseconds (see the benchmark).
    assert!(delays[2] <= 100, "submit to start: {delays:?} ms");
}
