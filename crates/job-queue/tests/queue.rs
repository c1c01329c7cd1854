#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The dispatch index against a real Redis, each test under its own key prefix.

use std::collections::HashSet;

use chrono::{Duration, Utc};
use job_queue::{Entry, Queue, Recorded};
use test_support::TestRedis;
use uuid::Uuid;

fn queue(redis: &TestRedis) -> Queue {
    let pool = deadpool_redis::Config::from_url(redis.url())
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .unwrap();
    Queue::new(pool, redis.prefix())
}

fn entry(priority: i16, offset_ms: i64) -> Entry {
    Entry {
        id: Uuid::now_v7(),
        priority,
        created_at: Utc::now() + Duration::milliseconds(offset_ms),
    }
}

#[tokio::test]
async fn higher_priority_first_then_fifo() {
    let redis = TestRedis::new();
    let q = queue(&redis);
    let (a, b, c, d) = (entry(0, 0), entry(0, 1), entry(10, 2), entry(-5, -100));
    let mut batch = q.batch();
    for e in [a, b, c, d] {
        batch.enqueue(e);
    }
    q.send(batch).await.unwrap();
    assert_eq!(
        q.claim(10, 1000).await.unwrap(),
        vec![c.id, a.id, b.id, d.id]
    );
    assert_eq!(q.depth().await.unwrap().running, 4);
}

#[tokio::test]
async fn same_millisecond_keeps_submission_order() {
    let redis = TestRedis::new();
    let q = queue(&redis);
    let at = Utc::now();
    let entries: Vec<Entry> = (0..20)
        .map(|_| Entry {
            id: Uuid::now_v7(),
            priority: 0,
            created_at: at,
        })
        .collect();
    let mut batch = q.batch();
    for e in entries.iter().rev() {
        batch.enqueue(*e);
    }
    q.send(batch).await.unwrap();
    let claimed = q.claim(20, 1000).await.unwrap();
    assert_eq!(claimed, entries.iter().map(|e| e.id).collect::<Vec<_>>());
}

#[tokio::test]
async fn concurrent_claims_never_share_a_job() {
    let redis = TestRedis::new();
    let q = queue(&redis);
    let mut batch = q.batch();
    for i in 0..300 {
        batch.enqueue(entry(0, i));
    }
    q.send(batch).await.unwrap();
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let q = q.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let got = q.claim(7, 1000).await.unwrap();
                    if got.is_empty() {
                        return mine;
                    }
                    mine.extend(got);
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    assert_eq!(all.len(), 300);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 300);
}

#[tokio::test]
async fn due_jobs_are_promoted_and_expired_leases_reaped() {
    let redis = TestRedis::new();
    let q = queue(&redis);
    let (due, later) = (entry(0, 0), entry(0, 0));
    let mut batch = q.batch();
    batch
        .schedule(due, Utc::now() - Duration::seconds(1))
        .schedule(later, Utc::now() + Duration::hours(1));
    q.send(batch).await.unwrap();
    assert_eq!(q.promote_due(100).await.unwrap(), vec![due.id]);
    assert!(q.is_ready(due.id).await.unwrap());
    assert_eq!(q.claim(5, -1).await.unwrap(), vec![due.id]);
    assert_eq!(q.take_expired(100).await.unwrap(), vec![due.id]);
    assert!(q.take_expired(100).await.unwrap().is_empty());
    let mut batch = q.batch();
    batch.dequeue(later);
    q.send(batch).await.unwrap();
    assert_eq!(q.depth().await.unwrap(), job_queue::Depth::default());
}

#[tokio::test]
async fn reconcile_restores_what_redis_lost_and_skips_leased_jobs() {
    let redis = TestRedis::new();
    let q = queue(&redis);
    let (pending, leased, scheduled) = (entry(0, 0), entry(5, 0), entry(0, 0));
    let running = Uuid::now_v7();
    let mut batch = q.batch();
    batch.enqueue(leased);
    q.send(batch).await.unwrap();
    assert_eq!(q.claim(1, 10_000).await.unwrap(), vec![leased.id]);
    let recorded = [
        Recorded::Pending(pending),
        Recorded::Pending(leased),
        Recorded::Scheduled(scheduled, Utc::now() + Duration::hours(1)),
        Recorded::Running(running),
    ];
    let mut lost = vec![pending.id, scheduled.id, running];
    lost.sort();
    let mut missing = q.missing(&recorded).await.unwrap();
    missing.sort();
    assert_eq!(missing, lost);
    assert_eq!(
        q.depth().await.unwrap().ready,
        0,
        "check mode writes nothing"
    );
    let mut added = q.reconcile(&recorded, 5_000).await.unwrap();
    added.sort();
    assert_eq!(added, lost);
    assert!(
        q.reconcile(&recorded, 5_000).await.unwrap().is_empty(),
        "idempotent"
    );
    let depth = q.depth().await.unwrap();
    assert_eq!((depth.ready, depth.scheduled, depth.running), (1, 1, 2));
    assert!(q.is_ready(pending.id).await.unwrap() && !q.is_ready(leased.id).await.unwrap());
    redis.flush().await;
    assert_eq!(q.reconcile(&recorded, 5_000).await.unwrap().len(), 4);
}
