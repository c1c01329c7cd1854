//! A job's life with one worker: order, retries, schedules, cancellation, progress, events.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::Env;
use domain::job::JobStatus;

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread")]
async fn higher_priority_runs_first_then_submission_order() {
    let env = Env::start().await;
    let _worker = env.worker(&[("WORKER_CONCURRENCY", "1")]).await;
    // Long enough for the four submits below to land while it runs, even on a loaded machine.
    let sleep = env
        .submit(json!({"type": "sleep", "data": {"ms": 3000}}))
        .await;
    env.wait_status(sleep, "running", T).await;
    let a = env.submit(json!({"type": "noop", "priority": 0})).await;
    let b = env.submit(json!({"type": "noop", "priority": 0})).await;
    let c = env.submit(json!({"type": "noop", "priority": 0})).await;
    let urgent = env.submit(json!({"type": "noop", "priority": 10})).await;
    for id in [sleep, a, b, c, urgent] {
        env.wait_status(id, "completed", T).await;
    }
    let executions = env.executions();
    let order: Vec<_> = executions.iter().map(|(id, ..)| *id).collect();
    assert_eq!(order, vec![sleep, urgent, a, b, c]);
    // One slot: the next job starts only once the sleep has run its 3 s (both times are the
    // worker's own clock, so no batching or database delay blurs them).
    let (sleep_started, urgent_started) = (executions[0].2, executions[1].2);
    assert!(
        urgent_started >= sleep_started + 3000,
        "urgent started {} ms after the sleep",
        urgent_started - sleep_started
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn at_equal_priority_users_take_turns() {
    let env = Env::start().await;
    let _worker = env.worker(&[("WORKER_CONCURRENCY", "1")]).await;
    let other = env.another_user().await;
    // The blocker holds the one slot until every job below is queued, however long the
    // submits take on a loaded machine: it is cancelled then (a fixed sleep raced them).
    let blocker = env
        .submit(json!({"type": "sleep", "data": {"ms": 120_000}}))
        .await;
    env.wait_status(blocker, "running", T).await;
    // The first user queues a backlog, then the second user one job.
    let mut backlog = Vec::new();
    for n in 0..20 {
        backlog.push(env.submit(json!({"type": "noop", "data": {"n": n}})).await);
    }
    let single = env.submit_as(&other, json!({"type": "noop"})).await;
    let ran = env.executions();
    assert_eq!(ran.len(), 1, "a job ran beside the blocker: {ran:?}");
    let (status, _) = env.post(&format!("/api/jobs/{blocker}/cancel")).await;
    assert_eq!(status, 200);
    env.wait_status(single, "completed", T).await;
    for id in &backlog {
        env.wait_status(*id, "completed", T).await;
    }
    let order: Vec<_> = env.executions().iter().map(|(id, ..)| *id).collect();
    // Served in turn: the first user had the running job's turn, so the second user's job
    // runs next, not after the twenty; the first user's jobs keep their order.
    assert_eq!(&order[..2], &[blocker, single]);
    let rest: Vec<_> = order
        .iter()
        .filter(|id| backlog.contains(id))
        .copied()
        .collect();
    assert_eq!(rest, backlog);
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_complete_fail_and_back_off_with_growing_delays() {
    let env = Env::start().await;
    let _worker = env.worker(&[]).await;
    let flaky = env
        .submit(json!({"type": "echo", "data": {"failTimes": 2, "v": 1}}))
        .await;
    let doomed = env
        .submit(json!({"type": "noop", "data": {"shouldFail": true}, "max_attempts": 4}))
        .await;

    let job = env.wait_status(flaky, "completed", T).await;
    assert_eq!(job.attempts, 3);
    assert_eq!(job.result, Some(json!({"failTimes": 2, "v": 1})));
    assert_eq!(job.progress, 100);

    let job = env.wait_status(doomed, "failed", T).await;
    assert_eq!(job.attempts, 4);
    assert_eq!(job.attempts, job.max_attempts);
    assert!(
        job.last_error
            .as_deref()
            .is_some_and(|e| e.contains("shouldFail")),
        "{job:?}"
    );
    assert!(job.finished_at.is_some());

    let runs = env.executions_of(doomed);
    assert_eq!(
        runs.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    // Retry n waits at least 0.6 · JOB_RETRY_BASE_MS · 2^(n-1) (the jitter's floor); claim and
    // write latency only add to a gap, so lower bounds hold on any machine while a strict
    // comparison of neighbouring gaps would hinge on that latency.
    let gaps: Vec<i64> = runs.windows(2).map(|w| w[1].1 - w[0].1).collect();
    let floors = [180, 360, 720];
    assert!(
        gaps.iter().zip(floors).all(|(gap, floor)| *gap >= floor),
        "delays double from JOB_RETRY_BASE_MS (300 ms): {gaps:?}, floors {floors:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_jobs_wait_for_run_at() {
    let env = Env::start().await;
    let _worker = env.worker(&[]).await;
    let run_at = chrono::Utc::now() + chrono::Duration::milliseconds(3000);
    let id = env
        .submit(json!({"type": "noop", "run_at": run_at.to_rfc3339()}))
        .await;
    assert_eq!(env.job(id).await.status, JobStatus::Scheduled);
    let job = env.wait_status(id, "completed", T).await;
    assert!(
        job.started_at.unwrap() >= run_at - chrono::Duration::milliseconds(5),
        "{job:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_pending_scheduled_and_running_jobs_and_retry_one() {
    let env = Env::start().await;
    let _worker = env.worker(&[("WORKER_CONCURRENCY", "1")]).await;
    let long = env
        .submit(json!({"type": "sleep", "data": {"ms": 60000}}))
        .await;
    env.wait_status(long, "running", T).await;
    let queued = env.submit(json!({"type": "noop"})).await;
    let later = env
        .submit(json!({"type": "noop", "run_at": "2099-01-01T00:00:00Z"}))
        .await;

    for id in [queued, later, long] {
        let (status, body) = env.post(&format!("/api/jobs/{id}/cancel")).await;
        assert_eq!(
            (status, body["job"]["status"].as_str()),
            (200, Some("cancelled"))
        );
    }
    // The running sleep stops at its next check, which frees the only slot long before its
    // 60 s are up.
    let after = env.submit(json!({"type": "noop"})).await;
    env.wait_status(after, "completed", T).await;
    assert_eq!(env.job(long).await.status, JobStatus::Cancelled);
    assert!(env.executions_of(queued).is_empty() && env.executions_of(later).is_empty());

    let (status, body) = env.post(&format!("/api/jobs/{queued}/retry")).await;
    assert_eq!(
        (
            status,
            body["job"]["status"].as_str(),
            body["job"]["attempts"].as_i64()
        ),
        (200, Some("pending"), Some(0))
    );
    let job = env.wait_status(queued, "completed", T).await;
    assert_eq!(job.attempts, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn progress_and_events_are_published_for_every_change() {
    let env = Env::start().await;
    let client = redis::Client::open(env.redis.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub
        .subscribe(job_queue::events_channel(env.redis.prefix(), env.user.id))
        .await
        .unwrap();
    let _worker = env.worker(&[]).await;
    let id = env
        .submit(json!({"type": "sleep", "data": {"ms": 1200}}))
        .await;
    let mid = env
        .wait_for(id, T, |job| {
            job.status == JobStatus::Running && job.progress > 0
        })
        .await;
    assert!(mid.progress < 100);
    env.wait_status(id, "completed", T).await;

    use futures_util::StreamExt as _;
    let mut stream = pubsub.on_message();
    let mut seen: Vec<(String, i64)> = Vec::new();
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_millis(500), stream.next()).await
    {
        let event: Value = serde_json::from_str(&message.get_payload::<String>().unwrap()).unwrap();
        assert_eq!(event["event"], "jobUpdated");
        let job = &event["data"]["job"];
        seen.push((
            job["status"].as_str().unwrap().to_owned(),
            job["progress"].as_i64().unwrap(),
        ));
    }
    assert_eq!(seen.first().map(|s| s.0.as_str()), Some("pending"));
    assert_eq!(seen.last(), Some(&("completed".to_owned(), 100)));
    assert!(seen.iter().any(|(s, p)| s == "running" && *p == 0));
    assert!(
        seen.iter()
            .any(|(s, p)| s == "running" && *p > 0 && *p < 100),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn handlers_produce_their_results_and_send_email_and_metrics() {
    let env = Env::start().await;
    let smtp = test_support::smtp::SmtpCapture::start().await;
    let worker = env
        .worker(&[
            ("SMTP_URL", &smtp.url()),
            ("MAIL_FROM", "Vault <vault@example.com>"),
        ])
        .await;
    let hash = env
        .submit(json!({"type": "hash", "data": {"text": "abc", "algorithm": "sha256"}}))
        .await;
    let email = env
        .submit(json!({"type": "send_email", "data": {"to": env.user.email, "subject": "Hi", "body": "Hello there"}}))
        .await;
    let job = env.wait_status(hash, "completed", T).await;
    assert_eq!(
        job.result.unwrap()["hex"],
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    env.wait_status(email, "completed", T).await;
    let messages = smtp.wait_for(&env.user.email, 1).await;
    assert!(messages[0].data.contains("Hello there"));
    assert_eq!(messages[0].header("Subject"), Some("Hi"));

    let deadline = tokio::time::Instant::now() + T;
    let metrics = loop {
        let metrics = reqwest::get(format!("{}/metrics", worker.base_url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains("worker_jobs_total{type=\"hash\",outcome=\"completed\"} 1")
            && metrics.contains("queue_depth{state=\"ready\"}")
        {
            break metrics;
        }
        assert!(tokio::time::Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(metrics.contains("worker_job_duration_seconds"));
    let health = reqwest::get(format!("{}/healthz", worker.base_url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_retries_final_failures_and_start_latency_per_type() {
    let env = Env::start().await;
    let worker = env.worker(&[]).await;
    let retried = env
        .submit(json!({"type": "noop", "data": {"failTimes": 1}, "max_attempts": 2}))
        .await;
    let failed = env
        .submit(json!({"type": "noop", "data": {"shouldFail": true}, "max_attempts": 1}))
        .await;
    // Due in 3 s: its start latency counts from `run_at`, not from the submit.
    let run_at = (chrono::Utc::now() + chrono::Duration::seconds(3)).to_rfc3339();
    let scheduled = env
        .submit(json!({"type": "echo", "data": {"n": 1}, "run_at": run_at}))
        .await;
    env.wait_status(retried, "completed", T).await;
    env.wait_status(failed, "failed", T).await;
    env.wait_status(scheduled, "completed", T).await;

    let wanted = [
        ("worker_jobs_total{type=\"noop\",outcome=\"retried\"}", 1.0),
        (
            "worker_jobs_total{type=\"noop\",outcome=\"completed\"}",
            1.0,
        ),
        ("worker_jobs_total{type=\"noop\",outcome=\"failed\"}", 1.0),
        (
            "worker_jobs_total{type=\"echo\",outcome=\"completed\"}",
            1.0,
        ),
        // Every attempt's start: two of the retried job, one of the failed one.
        ("worker_job_start_latency_seconds_count{type=\"noop\"}", 3.0),
        ("worker_job_start_latency_seconds_count{type=\"echo\"}", 1.0),
        ("worker_job_duration_seconds_count{type=\"noop\"}", 3.0),
        ("worker_lease_reaps_total", 0.0),
    ];
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let mut seen = Vec::new();
        for (series, value) in wanted {
            seen.push((series, Env::metric(&worker, series).await, value));
        }
        if seen.iter().all(|(_, got, want)| got == want) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let page = reqwest::get(format!("{}/metrics", worker.base_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.lines()
            .any(|l| l.starts_with("worker_lease_reaps_total ")),
        "the reap counter exists before any reap:\n{page}"
    );
    let echo_wait = Env::metric(
        &worker,
        "worker_job_start_latency_seconds_sum{type=\"echo\"}",
    )
    .await;
    assert!(
        (0.0..2.5).contains(&echo_wait),
        "a scheduled job's start latency counts from its run_at: {echo_wait} s"
    );
}

/// The worker binary's own metrics listener (`METRICS_ADDR`, what Prometheus scrapes in a worker
/// pod) exports every worker metric that the shipped Grafana dashboard and alert rules name.
#[tokio::test(flavor = "multi_thread")]
async fn the_worker_binary_exports_every_worker_metric_that_deploy_names() {
    use test_support::deploy::{exported, wanted_metrics};

    let env = Env::start().await;
    let metrics_addr = format!("127.0.0.1:{}", test_support::free_port());
    let _worker = env.worker(&[("METRICS_ADDR", &metrics_addr)]).await;
    let done = env.submit(json!({"type": "noop"})).await;
    let retried = env
        .submit(json!({"type": "noop", "data": {"failTimes": 1}, "max_attempts": 2}))
        .await;
    let failed = env
        .submit(json!({"type": "noop", "data": {"shouldFail": true}, "max_attempts": 1}))
        .await;
    env.wait_status(done, "completed", T).await;
    env.wait_status(retried, "completed", T).await;
    env.wait_status(failed, "failed", T).await;

    let wanted: Vec<String> = wanted_metrics()
        .into_iter()
        .filter(|name| name.starts_with("worker_") || name == "queue_depth")
        .collect();
    assert!(wanted.len() >= 5, "{wanted:?}");
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let page = reqwest::get(format!("http://{metrics_addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let have = exported(&page);
        let missing: Vec<&String> = wanted.iter().filter(|name| !have.contains(*name)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "deploy/ names worker metrics the worker does not export: {missing:?}\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
