//! Losing things: a worker killed mid-job, Redis flushed, SIGTERM, several workers at once.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use crate::harness::Env;
use domain::job::JobStatus;

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_s_job_completes_exactly_once_after_its_lease_expires() {
    let env = Env::start().await;
    let mut first = env.worker(&[]).await;
    let id = env
        .submit(json!({"type": "sleep", "data": {"ms": 2500}}))
        .await;
    env.wait_for(id, Duration::from_secs(10), |job| {
        job.status == JobStatus::Running && job.progress > 0
    })
    .await;
    first.kill().await;
    let second = env.worker(&[]).await;
    let job = env
        .wait_status(id, "completed", Duration::from_secs(30))
        .await;
    assert_eq!(job.attempts, 2, "the killed attempt counts");
    // The survivor's reaper took the job back, and counted it.
    assert_eq!(Env::metric(&second, "worker_lease_reaps_total").await, 1.0);
    let runs = env.executions_of(id);
    assert_eq!(runs.iter().map(|(a, _)| *a).collect::<Vec<_>>(), vec![1, 2]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let job = env.job(id).await;
    assert_eq!(
        (job.status.as_str(), job.attempts),
        ("completed", 2),
        "not run again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_survive_a_redis_flush() {
    let env = Env::start().await;
    let mut ids = Vec::new();
    for chunk in 0..4 {
        let submits =
            (0..25).map(|i| env.submit(json!({"type": "echo", "data": {"n": chunk * 25 + i}})));
        ids.extend(futures_util::future::join_all(submits).await);
    }
    assert_eq!(env.count("pending").await, 100);
    env.redis.flush().await;
    let _worker = env.worker(&[]).await;
    env.wait_count("completed", 100, Duration::from_secs(30))
        .await;
    let executions = env.executions();
    assert_eq!(executions.len(), 100);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_run_a_thousand_jobs_each_exactly_once() {
    let env = Env::start().await;
    let _a = env.worker(&[("WORKER_CONCURRENCY", "16")]).await;
    let _b = env.worker(&[("WORKER_CONCURRENCY", "16")]).await;
    for chunk in 0..20 {
        let submits =
            (0..50).map(|i| env.submit(json!({"type": "noop", "data": {"n": chunk * 50 + i}})));
        futures_util::future::join_all(submits).await;
    }
    env.wait_count("completed", 1000, Duration::from_secs(60))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut per_job: HashMap<uuid::Uuid, usize> = HashMap::new();
    for (id, ..) in env.executions() {
        *per_job.entry(id).or_default() += 1;
    }
    assert_eq!(per_job.len(), 1000);
    let doubles: Vec<_> = per_job.iter().filter(|(_, n)| **n != 1).collect();
    assert!(doubles.is_empty(), "executed more than once: {doubles:?}");
    assert_eq!(env.count("completed").await, 1000);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_short_jobs_releases_long_ones_and_exits_zero() {
    let env = Env::start().await;
    // A grace period well beyond the short job's 800 ms, so a loaded machine still finishes it.
    let mut worker = env.worker(&[("SHUTDOWN_GRACE_SECS", "4")]).await;
    let short = env
        .submit(json!({"type": "sleep", "data": {"ms": 800}}))
        .await;
    // On its last attempt: the release gives the attempt back, so the next claim does not
    // take it past `max_attempts`.
    let long = env
        .submit(json!({"type": "sleep", "data": {"ms": 60000}, "max_attempts": 1}))
        .await;
    env.wait_status(short, "running", Duration::from_secs(10))
        .await;
    env.wait_status(long, "running", Duration::from_secs(10))
        .await;
    let status = worker
        .terminate(Duration::from_secs(15))
        .await
        .expect("worker exits");
    assert!(status.success(), "{status:?}");
    assert_eq!(env.job(short).await.status, JobStatus::Completed);
    let job = env.job(long).await;
    assert_eq!(
        (job.status.as_str(), job.attempts),
        ("pending", 0),
        "released, attempt given back"
    );
    // Another worker picks the released job up at once, within `max_attempts`.
    let _next = env.worker(&[]).await;
    let job = env
        .wait_status(long, "running", Duration::from_secs(10))
        .await;
    assert_eq!((job.attempts, job.max_attempts), (1, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_job_whose_lease_redis_lost_is_rescued_by_the_reconciler() {
    let env = Env::start().await;
    let mut first = env.worker(&[]).await;
    let id = env
        .submit(json!({"type": "sleep", "data": {"ms": 3000}}))
        .await;
    // Wait for progress, not just `running`: the handler (and its execution record) starts a
    // moment after the row is marked running, and a kill in between would leave no record.
    env.wait_for(id, Duration::from_secs(10), |job| {
        job.status == JobStatus::Running && job.progress > 0
    })
    .await;
    first.kill().await;
    env.redis.flush().await;
    let _second = env.worker(&[]).await;
    let job = env
        .wait_status(id, "completed", Duration::from_secs(30))
        .await;
    assert_eq!(job.attempts, 2);
    assert_eq!(env.executions_of(id).len(), 2);
}
