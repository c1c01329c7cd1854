//! The Grafana dashboard and the alert rules that ship in `deploy/` name only metrics that the
//! services really export: a renamed metric breaks this test, not an operator's dashboard.
//!
//! One process runs the auth service, a job service and a worker with its own metrics listener
//! (`METRICS_ADDR`, as deployed). They share the process's metrics recorder, so the job
//! service's `/metrics` page shows all three; the worker's metrics must also be on the page its
//! own listener serves, the one Prometheus scrapes for a worker pod. A short session makes
//! every metric appear: sign-in attempts, requests, a socket receiving a job's updates, jobs
//! run, retried and failed, and the reaper's rounds. (The worker binary, in its own process, is
//! checked the same way by the worker crate's tests.) The queries are read and parsed by
//! `test_support::deploy`.

use std::time::{Duration, Instant};

use domain::Role;
use serde_json::json;
use test_support::deploy::{exported, wanted_metrics};

use crate::helpers::Stack;

#[tokio::test(flavor = "multi_thread")]
async fn shipped_dashboards_and_alerts_name_only_exported_metrics() {
    let stack = Stack::start(1).await;
    let worker_metrics = format!("127.0.0.1:{}", test_support::free_port());
    let settings = worker::Settings {
        database_url: stack._db.url().to_owned(),
        redis_url: stack.redis_url.clone(),
        redis_prefix: stack.redis.prefix().to_owned(),
        worker_addr: "127.0.0.1:0".to_owned(),
        metrics_addr: Some(worker_metrics.clone()),
        db_pool_size: 4,
        redis_pool_size: 4,
        job_retry_base_ms: 50,
        reaper_interval_ms: 200,
        ..worker::Settings::default()
    };
    let _worker = tokio::spawn(async move {
        if let Err(error) = worker::run(settings).await {
            panic!("worker: {error}");
        }
    });

    // The auth service on the same database, for its sign-in metrics.
    let auth = auth_service::Application::build(auth_service::Settings {
        database_url: stack._db.url().to_owned(),
        redis_url: stack.redis_url.clone(),
        redis_prefix: stack.redis.prefix().to_owned(),
        auth_addr: "127.0.0.1:0".to_owned(),
        bcrypt_cost: 4,
        ..auth_service::Settings::default()
    })
    .await
    .unwrap();
    let auth_url = format!("http://127.0.0.1:{}", auth.port());
    tokio::spawn(auth.run());
    let login = stack
        .http
        .post(format!("{auth_url}/api/auth/login"))
        .json(&json!({"email": "nobody@example.com", "password": "wrong password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 401);

    // A socket that sees a job through to the end, and a job that fails.
    let user = stack.user(Role::User).await;
    let mut ws = stack.connect(0, &user).await;
    stack
        .submit(0, &user, json!({"type": "sleep", "data": {"ms": 300}}))
        .await;
    ws.until(|frame| frame["data"]["job"]["status"] == "completed")
        .await;
    stack
        .submit(
            0,
            &user,
            json!({"type": "noop", "data": {"shouldFail": true}, "max_attempts": 1}),
        )
        .await;
    // Retried once, then completed.
    stack
        .submit(
            0,
            &user,
            json!({"type": "noop", "data": {"failTimes": 1}, "max_attempts": 2}),
        )
        .await;
    // A job for later keeps the queue gauges non-empty whatever the worker has done.
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    stack
        .submit(0, &user, json!({"type": "noop", "run_at": later}))
        .await;

    let wanted = wanted_metrics();
    // The worker's own metrics: on its listener.
    let from_worker = |name: &String| name.starts_with("worker_") || name == "queue_depth";
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let have = exported(&stack.metrics(0).await);
        let worker_page = match stack
            .http
            .get(format!("http://{worker_metrics}/metrics"))
            .send()
            .await
        {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let on_worker = exported(&worker_page);
        let missing: Vec<&String> = wanted.iter().filter(|name| !have.contains(*name)).collect();
        let missing_on_worker: Vec<&String> = wanted
            .iter()
            .filter(|name| from_worker(name) && !on_worker.contains(*name))
            .collect();
        if missing.is_empty() && missing_on_worker.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "deploy/ names metrics that no service exports: {missing:?}; \
             not on the worker's METRICS_ADDR page: {missing_on_worker:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for name in [
        "worker_job_start_latency_seconds_bucket",
        "worker_lease_reaps_total",
        "worker_jobs_total",
    ] {
        assert!(wanted.contains(name), "deploy/ no longer shows {name}");
    }
}
