#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The dispatch index against a real Redis, each test under its own key prefix.

use std::collections::HashSet;

use std::collections::HashMap;

use chrono::{Duration, Utc};
use job_queue::{Entry, Queue, Recorded};
use test_support::TestRedis;
use uuid::Uuid;

/// Whether `id` is in the ready set.
async fn is_ready(redis: &TestRedis, id: Uuid) -> bool {
    let mut conn = redis.connection().await;
    let score: Option<f64> = redis::cmd("ZSCORE")
        .arg(format!("{}q:ready", redis.prefix()))
        .arg(id.to_string())
        .query_async(&mut conn)
        .await
        .unwrap();
    score.is_some()
}

fn queue(redis: &TestRedis) -> Queue {
    let pool = deadpool_redis::Config::from_url(redis.url())
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .unwrap();
    Queue::new(pool, redis.prefix())
}

/// One user for the tests where fairness plays no part.
const ALICE: Uuid = Uuid::from_u128(1);

fn entry(priority: i16) -> Entry {
    entry_of(ALICE, priority)
}

fn entry_of(user_id: Uuid, priority: i16) -> Entry {
    Entry {
        id: Uuid::now_v7(),
        user_id,
        priority,
    }
}

#[tokio::test]
async fn higher_priority_first_then_fifo() {
    let redis = TestRedis::new();
    let q = queue(&redis);
    let (a, b, c, d) = (entry(0), entry(0), entry(10), entry(-5));
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
async fn one_user_s_jobs_keep_submission_order_whatever_the_write_order() {
    let redis = TestRedis::new();
    let q = queue(&redis);
    let entries: Vec<Entry> = (0..20).map(|_| entry(0)).collect();
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
    for i in 0..300_u128 {
        batch.enqueue(entry_of(Uuid::from_u128(i % 7), 0));
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
    let (due, later) = (entry(0), entry(0));
    let mut batch = q.batch();
    batch
        .schedule(due, Utc::now() - Duration::seconds(1))
        .schedule(later, Utc::now() + Duration::hours(1));
    q.send(batch).await.unwrap();
    let (promoted, next) = q.promote_due(100).await.unwrap();
    assert_eq!(promoted, vec![due.id]);
    let next = next.unwrap();
    assert!(
        next > std::time::Duration::from_secs(3590) && next <= std::time::Duration::from_secs(3600)
    );
    assert!(is_ready(&redis, due.id).await);
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
    let (pending, leased, scheduled) = (entry(0), entry(5), entry(0));
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
    assert!(is_ready(&redis, pending.id).await && !is_ready(&redis, leased.id).await);
    redis.flush().await;
    assert_eq!(q.reconcile(&recorded, 5_000).await.unwrap().len(), 4);
}

async fn enqueue_all(q: &Queue, entries: &[Entry]) {
    for chunk in entries.chunks(1000) {
        let mut batch = q.batch();
        for e in chunk {
            batch.enqueue(*e);
        }
        q.send(batch).await.unwrap();
    }
}

/// User A queues 10,000 jobs, then user B one: B's job is in the next claim, and A's jobs
/// still come out in A's order.
#[tokio::test]
async fn a_user_s_job_waits_for_no_other_user_s_backlog() {
    let redis = TestRedis::new();
    let q = queue(&redis);
    let (a, b) = (Uuid::from_u128(10), Uuid::from_u128(11));
    let backlog: Vec<Entry> = (0..10_000).map(|_| entry_of(a, 0)).collect();
    enqueue_all(&q, &backlog).await;
    let first = q.claim(4, 10_000).await.unwrap();
    assert_eq!(first, backlog[..4].iter().map(|e| e.id).collect::<Vec<_>>());
    let single = entry_of(b, 0);
    enqueue_all(&q, &[single]).await;
    let next = q.claim(16, 10_000).await.unwrap();
    assert!(next.contains(&single.id), "B waits behind A's backlog");
    let a_order: Vec<Uuid> = next.into_iter().filter(|id| *id != single.id).collect();
    assert_eq!(
        a_order,
        backlog[4..4 + a_order.len()]
            .iter()
            .map(|e| e.id)
            .collect::<Vec<_>>()
    );
}

/// Priority stays strict across users: a higher priority goes first whoever submitted it and
/// however long the other users' backlogs; a lower one goes after all of them.
#[tokio::test]
async fn priority_stays_strict_whoever_submits() {
    let redis = TestRedis::new();
    let q = queue(&redis);
    let (a, b, c) = (
        Uuid::from_u128(20),
        Uuid::from_u128(21),
        Uuid::from_u128(22),
    );
    let backlog: Vec<Entry> = (0..100).map(|_| entry_of(a, 0)).collect();
    enqueue_all(&q, &backlog).await;
    let (low, high) = (entry_of(b, -1), entry_of(c, 5));
    enqueue_all(&q, &[low, high]).await;
    // Another of A's at a high priority, after C's: C's still goes first (FIFO within a round).
    let a_high = entry_of(a, 5);
    enqueue_all(&q, &[a_high]).await;
    let claimed = q.claim(1000, 10_000).await.unwrap();
    assert_eq!(claimed.len(), 103);
    assert_eq!(&claimed[..2], &[high.id, a_high.id]);
    assert_eq!(claimed[102], low.id);
}

/// Ten users, one of them submitting 90 % of the jobs, all backlogged: while every user still
/// has jobs queued, each gets an equal share of the claims (within 10 %; Jain's index ≥ 0.95).
#[tokio::test]
async fn ten_users_one_with_ninety_percent_of_the_load_get_equal_shares() {
    let redis = TestRedis::new();
    let q = queue(&redis);
    let users: Vec<Uuid> = (0..10).map(|i| Uuid::from_u128(100 + i)).collect();
    // Interleaved as they arrive: for every job of the nine others, the heavy user sends 81.
    let mut entries = Vec::new();
    for _ in 0..100 {
        for _ in 0..81 {
            entries.push(entry_of(users[0], 0));
        }
        for user in &users[1..] {
            entries.push(entry_of(*user, 0));
        }
    }
    let owner: HashMap<Uuid, Uuid> = entries.iter().map(|e| (e.id, e.user_id)).collect();
    enqueue_all(&q, &entries).await;
    // Claim in batches of 16 (a worker's free slots) until a light user runs out (100 each).
    let mut shares: HashMap<Uuid, usize> = HashMap::new();
    while shares.len() < 10 || shares.values().all(|n| *n < 100) {
        let claimed = q.claim(16, 10_000).await.unwrap();
        assert!(!claimed.is_empty());
        for id in claimed {
            *shares.entry(owner[&id]).or_default() += 1;
        }
    }
    let counts: Vec<f64> = users
        .iter()
        .map(|u| shares.get(u).copied().unwrap_or(0) as f64)
        .collect();
    let total: f64 = counts.iter().sum();
    let equal = total / counts.len() as f64;
    for (user, n) in users.iter().zip(&counts) {
        assert!(
            (n - equal).abs() <= equal * 0.10,
            "user {user} got {n} of {total} claims ({counts:?})"
        );
    }
    let jain = total * total / (counts.len() as f64 * counts.iter().map(|n| n * n).sum::<f64>());
    assert!(jain >= 0.95, "Jain's index {jain} ({counts:?})");
}

/// The order survives Redis losing everything: the reconciler re-adds pending jobs from the
/// rows, and the rebuilt order is fair again.
#[tokio::test]
async fn reconciled_pending_jobs_are_ready_in_fair_order() {
    let redis = TestRedis::new();
    let q = queue(&redis);
    let (a, b) = (Uuid::from_u128(30), Uuid::from_u128(31));
    let mut recorded: Vec<Recorded> = (0..50).map(|_| Recorded::Pending(entry_of(a, 0))).collect();
    let single = entry_of(b, 0);
    recorded.push(Recorded::Pending(single));
    assert_eq!(q.reconcile(&recorded, 5_000).await.unwrap().len(), 51);
    let first = q.claim(2, 10_000).await.unwrap();
    assert!(first.contains(&single.id), "{first:?}");
}
