//! Per-type limits (`TYPE_CONCURRENCY`, `TYPE_RATE_PER_SEC`), enforced across every worker.

use std::time::{Duration, Instant};

use serde_json::json;
use uuid::Uuid;

use crate::harness::Env;

/// Long enough that only wake-ups and rate hints, not the idle safety net, restart claims.
const NO_IDLE_POLL: (&str, &str) = ("IDLE_POLL_MS", "60000");

#[tokio::test(flavor = "multi_thread")]
async fn three_workers_never_run_more_than_two_of_a_type_limited_to_two() {
    let env = Env::start().await;
    let limit = [("TYPE_CONCURRENCY", "sleep=2,send_email=1"), NO_IDLE_POLL];
    let _workers = futures_util::future::join_all((0..3).map(|_| env.worker(&limit))).await;
    let started = Instant::now();
    let ids: Vec<Uuid> = futures_util::future::join_all(
        (0..20).map(|_| env.submit(json!({"type": "sleep", "data": {"ms": 300}}))),
    )
    .await;
    let mut most = 0;
    loop {
        // PostgreSQL marks a job running after Redis leased it, and finished before Redis
        // frees its slot: the rows never show more running than the slots taken.
        let running = env.count("running").await;
        most = most.max(running);
        assert!(running <= 2, "{running} sleep jobs running at once");
        if env.count("completed").await == 20 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "only {} of 20 completed",
            env.count("completed").await
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(most, 2, "the limit allows two at once");
    // 20 jobs of 300 ms, two at a time: at least 3 s.
    assert!(started.elapsed() >= Duration::from_millis(2900));
    for id in ids {
        assert_eq!(env.executions_of(id).len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limit_spreads_starts_across_workers() {
    let env = Env::start().await;
    let limit = [("TYPE_RATE_PER_SEC", "hash=4"), NO_IDLE_POLL];
    let (_a, _b) = tokio::join!(env.worker(&limit), env.worker(&limit));
    futures_util::future::join_all(
        (0..12).map(|i| env.submit(json!({"type": "hash", "data": {"text": format!("{i}")}}))),
    )
    .await;
    env.wait_count("completed", 12, Duration::from_secs(20))
        .await;
    let mut starts: Vec<i64> = env.executions().into_iter().map(|(_, _, at)| at).collect();
    starts.sort_unstable();
    assert_eq!(starts.len(), 12);
    // 12 starts at 4 per second: three windows, so the last starts 2 s after the first.
    let span = starts[11] - starts[0];
    assert!(span >= 1900, "12 starts within {span} ms");
    // No 900 ms stretch holds more than 4 starts (the window is Redis's second; the log's
    // times are taken a moment after the claim).
    for (i, first) in starts.iter().enumerate() {
        let within = starts[i..]
            .iter()
            .take_while(|at| **at - first < 900)
            .count();
        assert!(within <= 4, "{within} starts within 900 ms: {starts:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_type_at_its_limit_holds_back_neither_other_types_nor_their_priority_order() {
    let env = Env::start().await;
    let sleeps = [
        env.submit(json!({"type": "sleep", "data": {"ms": 1500}, "priority": 10}))
            .await,
        env.submit(json!({"type": "sleep", "data": {"ms": 1500}, "priority": 10}))
            .await,
    ];
    let mut echoes = Vec::new();
    for priority in [1, 5, 3, 7, 5] {
        echoes.push((
            priority,
            env.submit(json!({"type": "echo", "priority": priority}))
                .await,
        ));
    }
    let _worker = env
        .worker(&[
            ("TYPE_CONCURRENCY", "sleep=1"),
            ("WORKER_CONCURRENCY", "2"),
            ("CLAIM_LOOPS", "1"),
            NO_IDLE_POLL,
        ])
        .await;
    env.wait_status(sleeps[1], "completed", Duration::from_secs(20))
        .await;
    let start = |id: Uuid| env.executions_of(id)[0].1;
    let second_sleep = start(sleeps[1]);
    assert!(
        second_sleep - start(sleeps[0]) >= 1400,
        "the sleeps overlapped"
    );
    // Every echo ran while the second sleep waited for the first, by priority, then in
    // submission order.
    let mut by_start: Vec<(i64, i64, Uuid)> = echoes
        .iter()
        .map(|(priority, id)| (start(*id), *priority, *id))
        .collect();
    by_start.sort_unstable();
    assert!(by_start.iter().all(|(at, ..)| *at < second_sleep));
    let order: Vec<Uuid> = by_start.iter().map(|(.., id)| *id).collect();
    assert_eq!(
        order,
        vec![
            echoes[3].1,
            echoes[1].1,
            echoes[4].1,
            echoes[2].1,
            echoes[0].1
        ]
    );
}
