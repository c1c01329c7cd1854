//! Races that once lost or repeated work: each test failed before its fix.

use std::time::Duration;

use serde_json::json;

use crate::harness::{Env, LoseAnswer};
use domain::job::JobStatus;

const T: Duration = Duration::from_secs(20);

/// Cancel a running job and retry it at once: the worker claims the new attempt while the
/// cancelled one still runs. Attempts are known by (job, fence), so the newer attempt stops
/// the older at once (freeing its slot), and the older's end cannot touch the newer's entry.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_cancelled_and_retried_within_a_heartbeat_runs_its_retry_once() {
    let env = Env::start().await;
    let _worker = env.worker(&[("WORKER_CONCURRENCY", "2")]).await;
    let id = env
        .submit(json!({"type": "sleep", "data": {"ms": 8000}}))
        .await;
    env.wait_for(id, T, |job| {
        job.status == JobStatus::Running && job.progress > 0
    })
    .await;
    let (cancel, _) = env.post(&format!("/api/jobs/{id}/cancel")).await;
    let (retry, _) = env.post(&format!("/api/jobs/{id}/retry")).await;
    assert_eq!((cancel, retry), (200, 200));
    env.wait_for(id, T, |job| {
        job.status == JobStatus::Running && job.attempts == 1
    })
    .await;
    // The second slot is the retry's; the cancelled attempt must have given the first one up,
    // long before its 8 s are over.
    let probe = env.submit(json!({"type": "noop"})).await;
    let submitted = std::time::Instant::now();
    env.wait_status(probe, "completed", T).await;
    assert!(
        submitted.elapsed() < Duration::from_secs(4),
        "the cancelled attempt kept its slot for {:?}",
        submitted.elapsed()
    );
    let job = env.wait_status(id, "completed", T).await;
    assert_eq!(job.attempts, 1, "{job:?}");
    // Two leases' worth later, nothing was taken back or run again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let job = env.job(id).await;
    assert_eq!((job.status.as_str(), job.attempts), ("completed", 1));
    assert_eq!(
        env.executions_of(id).len(),
        2,
        "the cancelled attempt and the retry"
    );
}

/// Completions cannot be written for a while (a trigger refuses them, as a PostgreSQL outage
/// would): the attempt stays leased, its write is retried, and the job completes once, on its
/// first attempt, when writes work again.
#[tokio::test(flavor = "multi_thread")]
async fn an_outcome_that_cannot_be_written_yet_keeps_its_lease_until_it_is() {
    let env = Env::start().await;
    env.sql(
        "CREATE FUNCTION refuse_completion() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'simulated outage'; END $$",
    )
    .await;
    env.sql(
        "CREATE TRIGGER outage BEFORE UPDATE ON jobs FOR EACH ROW \
         WHEN (NEW.status = 'completed') EXECUTE FUNCTION refuse_completion()",
    )
    .await;
    let _worker = env.worker(&[]).await;
    let id = env.submit(json!({"type": "echo", "data": {"v": 1}})).await;
    env.wait_status(id, "running", T).await;
    // Well over two leases (JOB_LEASE_SECS=2) without a written outcome.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let job = env.job(id).await;
    assert_eq!(
        (job.status.as_str(), job.attempts),
        ("running", 1),
        "not taken back while its outcome waits: {job:?}"
    );
    env.sql("DROP TRIGGER outage ON jobs").await;
    let job = env.wait_status(id, "completed", T).await;
    assert_eq!(job.attempts, 1);
    assert_eq!(env.executions_of(id).len(), 1);
}

/// A worker whose clock runs a minute ahead (libfaketime) joins while another runs a job:
/// leases are Redis's clock, so it does not take the live job back.
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_whose_clock_runs_ahead_does_not_reap_live_jobs() {
    let faketime = std::env::var("TEST_FAKETIME_LIB")
        .unwrap_or_else(|_| "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1".to_owned());
    assert!(
        std::path::Path::new(&faketime).exists(),
        "{faketime} is missing: install libfaketime (scripts/test does)"
    );
    let env = Env::start().await;
    let _honest = env.worker(&[]).await;
    let id = env
        .submit(json!({"type": "sleep", "data": {"ms": 4000}}))
        .await;
    env.wait_for(id, T, |job| {
        job.status == JobStatus::Running && job.progress > 0
    })
    .await;
    let _ahead = env
        .worker(&[
            ("LD_PRELOAD", &faketime),
            ("FAKETIME", "+60s"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ])
        .await;
    let job = env.wait_status(id, "completed", T).await;
    assert_eq!(job.attempts, 1, "{job:?}");
    assert_eq!(env.executions_of(id).len(), 1);
}

/// A stale ready entry (a reconcile racing a failure, a double enqueue) for a job waiting for
/// its retry, and one for a cancelled job: the claim skips both in PostgreSQL, drops their
/// leases at once, and the retry still waits for its backoff.
#[tokio::test(flavor = "multi_thread")]
async fn a_stale_ready_entry_neither_skips_the_backoff_nor_leaves_a_lease() {
    let env = Env::start().await;
    let _worker = env
        .worker(&[("JOB_RETRY_BASE_MS", "20000"), ("JOB_LEASE_SECS", "30")])
        .await;
    let flaky = env
        .submit(json!({"type": "echo", "data": {"failTimes": 1}}))
        .await;
    let cancelled = env
        .submit(json!({"type": "noop", "run_at": "2099-01-01T00:00:00Z"}))
        .await;
    let (status, _) = env.post(&format!("/api/jobs/{cancelled}/cancel")).await;
    assert_eq!(status, 200);
    env.wait_status(flaky, "scheduled", T).await;
    let mut redis = env.redis_conn().await;
    let _: () = redis::pipe()
        .zadd(env.key("ready:echo"), flaky.to_string(), 0)
        .zadd(env.key("ready:noop"), cancelled.to_string(), 0)
        .query_async(&mut redis)
        .await
        .unwrap();
    // Both stale entries are claimed within a few idle polls.
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let (echo, noop): (i64, i64) = redis::pipe()
            .zcard(env.key("ready:echo"))
            .zcard(env.key("ready:noop"))
            .query_async(&mut redis)
            .await
            .unwrap();
        if echo + noop == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in [flaky, cancelled] {
        let lease: Option<f64> = redis::cmd("ZSCORE")
            .arg(env.key("lease"))
            .arg(id.to_string())
            .query_async(&mut redis)
            .await
            .unwrap();
        assert_eq!(lease, None, "the skipped claim of {id} left its lease");
    }
    // Its retry still waits for the backoff (at least 0.6 · JOB_RETRY_BASE_MS = 12 s, far
    // more than this test takes), and it is back in the scheduled set.
    let job = env.job(flaky).await;
    assert_eq!((job.status.as_str(), job.attempts), ("scheduled", 1));
    assert_eq!(env.executions_of(flaky).len(), 1, "retried early");
    let scheduled: Vec<String> = redis::cmd("ZRANGE")
        .arg(env.key("scheduled"))
        .arg(0)
        .arg(-1)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(scheduled.iter().any(|m| m.starts_with(&flaky.to_string())));
    assert!(env.executions_of(cancelled).is_empty());
}

/// A claim whose answer is lost after Redis applied it (a proxy swallows it) leaves its job
/// leased to nobody. When the lease expires the reaper puts the job back (the reconciler,
/// 10 min away here, is not needed), and it runs once.
#[tokio::test(flavor = "multi_thread")]
async fn a_claim_that_times_out_after_redis_applied_it_runs_once_soon() {
    let proxy = LoseAnswer::start().await;
    let env = Env::start().await;
    let _worker = env
        .worker(&[
            ("REDIS_URL", &proxy.url),
            ("REDIS_TIMEOUT_MS", "300"),
            ("RECONCILE_INTERVAL_SECS", "600"),
        ])
        .await;
    let id = uuid::Uuid::now_v7();
    proxy.lose_answer_with(&id.to_string());
    // The job goes in straight (as the job service would), so its id is known beforehand.
    env.sql(&format!(
        "INSERT INTO jobs (id, user_id, type, status, created_at, updated_at) \
         VALUES ('{id}', '{}', 'noop', 'pending', now(), now())",
        env.user.id
    ))
    .await;
    let mut redis = env.redis_conn().await;
    let _: () = redis::cmd("ZADD")
        .arg(env.key("ready:noop"))
        .arg(0)
        .arg(id.to_string())
        .query_async(&mut redis)
        .await
        .unwrap();
    let job = env.wait_status(id, "completed", T).await;
    assert_eq!(job.attempts, 1, "{job:?}");
    assert_eq!(env.executions_of(id).len(), 1);
}

/// While Redis keeps its data, a reconcile round reads only the queued jobs that changed since
/// the last one (and finds a job whose enqueue was lost); after Redis lost data, it reads them
/// all once and restores everything.
#[tokio::test(flavor = "multi_thread")]
async fn the_reconciler_reads_every_queued_job_only_after_redis_lost_data() {
    let env = Env::start().await;
    let submits = (0..100).map(|i| {
        env.submit(json!({"type": "noop", "data": {"n": i}, "run_at": "2099-01-01T00:00:00Z"}))
    });
    futures_util::future::join_all(submits).await;
    env.sql("UPDATE unfinished_jobs SET queued_at = now() - interval '1 hour'")
        .await;
    let worker = env.worker(&[("RECONCILE_INTERVAL_SECS", "1")]).await;
    let full = r#"worker_reconcile_rows_total{sweep="full"}"#;
    let changes = r#"worker_reconcile_rows_total{sweep="changes"}"#;
    let deadline = tokio::time::Instant::now() + T;
    while Env::metric(&worker, full).await < 100.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no full sweep at start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A few more rounds: none reads the old backlog again.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(Env::metric(&worker, full).await, 100.0);
    assert_eq!(Env::metric(&worker, changes).await, 0.0);

    // A job whose index write was lost after its commit is found by the cheap sweep.
    let lost = env
        .submit(json!({"type": "noop", "run_at": "2099-01-01T00:00:00Z"}))
        .await;
    let mut redis = env.redis_conn().await;
    let scheduled = env.key("scheduled");
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg(&scheduled)
        .arg(0)
        .arg(-1)
        .query_async(&mut redis)
        .await
        .unwrap();
    let member = members
        .iter()
        .find(|m| m.starts_with(&lost.to_string()))
        .unwrap();
    let _: () = redis::cmd("ZREM")
        .arg(&scheduled)
        .arg(member)
        .query_async(&mut redis)
        .await
        .unwrap();
    let count = |redis: redis::aio::MultiplexedConnection| {
        let scheduled = scheduled.clone();
        async move {
            let mut redis = redis;
            redis::cmd("ZCARD")
                .arg(&scheduled)
                .query_async::<i64>(&mut redis)
                .await
                .unwrap()
        }
    };
    let deadline = tokio::time::Instant::now() + T;
    while count(redis.clone()).await < 101 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "lost enqueue not restored"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(Env::metric(&worker, full).await, 100.0);

    // Redis loses everything: one full sweep restores all of it.
    env.redis.flush().await;
    let deadline = tokio::time::Instant::now() + T;
    while count(redis.clone()).await < 101 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "flushed index not restored"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The rows are counted when the sweep ends, a moment after its last write to Redis.
    let deadline = tokio::time::Instant::now() + T;
    while Env::metric(&worker, full).await < 201.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the restore was not a full sweep"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
