#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The dispatch index against a real Redis, each test under its own key prefix.

use std::collections::HashSet;

use std::collections::HashMap;

use chrono::{Duration, Utc};
use job_queue::{Entry, JobType, Queue, Recorded, TypeLimits};
use test_support::TestRedis;
use uuid::Uuid;

/// Whether `id` is in the ready set.
async fn is_ready(redis: &TestRedis, id: Uuid) -> bool {
    let mut conn = redis.connection().await;
    let score: Option<f64> = redis::cmd("ZSCORE")
        .arg(format!("{}q:ready:noop", redis.prefix()))
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
        job_type: JobType::Noop,
    }
}

fn typed(job_type: JobType, priority: i16) -> Entry {
    Entry {
        job_type,
        ..entry(priority)
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
        Recorded::Running(running, JobType::Sleep),
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

fn limits(concurrency: &[(JobType, u32)], rate: &[(JobType, u32)]) -> TypeLimits {
    TypeLimits {
        concurrency: concurrency.iter().copied().collect(),
        rate_per_sec: rate.iter().copied().collect(),
    }
}

async fn enqueue_each(q: &Queue, entries: &[Entry]) {
    let mut batch = q.batch();
    for e in entries {
        batch.enqueue(*e);
    }
    q.send(batch).await.unwrap();
}

/// A queue whose pause mirror says nothing is paused (as a worker's first claim would write).
async fn unpaused(redis: &TestRedis) -> Queue {
    let q = queue(redis);
    assert!(q.mirror_paused(1, &[]).await.unwrap());
    q
}

#[tokio::test]
async fn a_concurrency_limit_holds_across_claims_and_a_released_slot_is_reused() {
    let redis = TestRedis::new();
    let q = unpaused(&redis).await;
    let emails: Vec<Entry> = (0..5).map(|_| typed(JobType::SendEmail, 5)).collect();
    let noops: Vec<Entry> = (0..3).map(|_| typed(JobType::Noop, 0)).collect();
    enqueue_each(&q, &emails).await;
    enqueue_each(&q, &noops).await;
    let limit = limits(&[(JobType::SendEmail, 2)], &[]);
    // Two claimers (two workers): together they never hold more than two emails.
    let first = q.claim_within(1, 10_000, &limit).await.unwrap().ids;
    let second = q.claim_within(100, 10_000, &limit).await.unwrap().ids;
    assert_eq!(first, vec![emails[0].id]);
    let mut expected = vec![emails[1].id];
    expected.extend(noops.iter().map(|e| e.id));
    assert_eq!(
        second, expected,
        "the limited type does not hold back the others"
    );
    assert!(
        q.claim_within(100, 10_000, &limit)
            .await
            .unwrap()
            .ids
            .is_empty()
    );
    // Without the limit the rest would go at once: the limit is what held them.
    let mut batch = q.batch();
    batch.release_lease(emails[0].id);
    q.send(batch).await.unwrap();
    assert_eq!(
        q.claim_within(100, 10_000, &limit).await.unwrap().ids,
        vec![emails[2].id]
    );
    assert!(
        q.claim_within(100, 10_000, &limit)
            .await
            .unwrap()
            .ids
            .is_empty()
    );
    assert_eq!(q.depth().await.unwrap().ready, 2);
}

#[tokio::test]
async fn a_slot_held_by_a_dead_worker_frees_when_its_lease_lapses() {
    let redis = TestRedis::new();
    let q = unpaused(&redis).await;
    let emails: Vec<Entry> = (0..2).map(|_| typed(JobType::SendEmail, 0)).collect();
    enqueue_each(&q, &emails).await;
    let limit = limits(&[(JobType::SendEmail, 1)], &[]);
    // Leased for 300 ms and never renewed nor released: the worker died.
    assert_eq!(
        q.claim_within(10, 300, &limit).await.unwrap().ids,
        vec![emails[0].id]
    );
    assert!(
        q.claim_within(10, 10_000, &limit)
            .await
            .unwrap()
            .ids
            .is_empty()
    );
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(
        q.claim_within(10, 10_000, &limit).await.unwrap().ids,
        vec![emails[1].id]
    );
    // Reaping the dead lease does not free a second slot.
    assert_eq!(q.take_expired(10).await.unwrap(), vec![emails[0].id]);
    let mut batch = q.batch();
    batch.enqueue(emails[0]);
    q.send(batch).await.unwrap();
    assert!(
        q.claim_within(10, 10_000, &limit)
            .await
            .unwrap()
            .ids
            .is_empty()
    );
}

#[tokio::test]
async fn renewed_leases_keep_their_slots() {
    let redis = TestRedis::new();
    let q = unpaused(&redis).await;
    let emails: Vec<Entry> = (0..2).map(|_| typed(JobType::SendEmail, 0)).collect();
    enqueue_each(&q, &emails).await;
    let limit = limits(&[(JobType::SendEmail, 1)], &[]);
    assert_eq!(
        q.claim_within(10, 300, &limit).await.unwrap().ids,
        vec![emails[0].id]
    );
    q.renew(&[(emails[0].id, JobType::SendEmail)], 10_000)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert!(
        q.claim_within(10, 10_000, &limit)
            .await
            .unwrap()
            .ids
            .is_empty()
    );
}

#[tokio::test]
async fn a_rate_limit_spreads_starts_over_seconds_and_says_when_to_look_again() {
    let redis = TestRedis::new();
    let q = unpaused(&redis).await;
    let emails: Vec<Entry> = (0..7).map(|_| typed(JobType::SendEmail, 0)).collect();
    enqueue_each(&q, &emails).await;
    let limit = limits(&[], &[(JobType::SendEmail, 3)]);
    let started = std::time::Instant::now();
    let first = q.claim_within(100, 10_000, &limit).await.unwrap();
    assert_eq!(first.ids.len(), 3);
    assert_eq!(first.retry_in, None);
    let held = q.claim_within(100, 10_000, &limit).await.unwrap();
    assert!(held.ids.is_empty());
    let retry = held.retry_in.expect("a hint when the window is full");
    assert!(retry <= std::time::Duration::from_millis(1000), "{retry:?}");
    let mut taken = first.ids;
    while taken.len() < 7 {
        let claim = q.claim_within(100, 10_000, &limit).await.unwrap();
        assert!(claim.ids.len() <= 3);
        taken.extend(&claim.ids);
        if let Some(wait) = claim.retry_in {
            tokio::time::sleep(wait).await;
        }
    }
    // 7 starts at 3 per second: the 7th cannot start before 2 s.
    assert!(started.elapsed() >= std::time::Duration::from_millis(1900));
    assert_eq!(taken, emails.iter().map(|e| e.id).collect::<Vec<_>>());
}

#[tokio::test]
async fn priority_stays_strict_across_types_with_one_type_held_back() {
    let redis = TestRedis::new();
    let q = unpaused(&redis).await;
    let order = [
        typed(JobType::Sleep, 0),
        typed(JobType::SendEmail, 9),
        typed(JobType::Hash, 3),
        typed(JobType::Noop, 3),
        typed(JobType::Echo, 7),
        typed(JobType::SendEmail, 8),
        typed(JobType::Noop, -2),
        typed(JobType::Hash, 3),
    ];
    enqueue_each(&q, &order).await;
    let limit = limits(&[(JobType::SendEmail, 1)], &[]);
    let claimed = q.claim_within(100, 10_000, &limit).await.unwrap().ids;
    let id = |i: usize| order[i].id;
    // Priority first; at equal priority, submission order; one email only.
    assert_eq!(
        claimed,
        vec![id(1), id(4), id(2), id(3), id(7), id(0), id(6)]
    );
}

#[tokio::test]
async fn paused_types_wait_and_nothing_starts_while_the_pause_mirror_is_unknown() {
    let redis = TestRedis::new();
    let q = queue(&redis);
    let (sleeper, noop) = (typed(JobType::Sleep, 5), typed(JobType::Noop, 0));
    enqueue_each(&q, &[sleeper, noop]).await;
    let none = TypeLimits::default();
    let claim = q.claim_within(10, 10_000, &none).await.unwrap();
    assert!(claim.paused_unknown && claim.ids.is_empty());
    assert!(q.mirror_paused(3, &[JobType::Sleep]).await.unwrap());
    assert_eq!(
        q.claim_within(10, 10_000, &none).await.unwrap().ids,
        vec![noop.id]
    );
    assert!(
        q.claim_within(10, 10_000, &none)
            .await
            .unwrap()
            .ids
            .is_empty()
    );
    // An older state never overwrites a newer one.
    assert!(!q.mirror_paused(2, &[]).await.unwrap());
    assert!(
        q.claim_within(10, 10_000, &none)
            .await
            .unwrap()
            .ids
            .is_empty()
    );
    assert!(q.mirror_paused(4, &[]).await.unwrap());
    assert_eq!(
        q.claim_within(10, 10_000, &none).await.unwrap().ids,
        vec![sleeper.id]
    );
}

#[tokio::test]
async fn freeing_a_slot_that_ready_jobs_wait_for_wakes_idle_workers() {
    use futures_util::StreamExt as _;
    let redis = TestRedis::new();
    let q = unpaused(&redis).await;
    let emails: Vec<Entry> = (0..2).map(|_| typed(JobType::SendEmail, 0)).collect();
    enqueue_each(&q, &emails).await;
    let limit = limits(&[(JobType::SendEmail, 1)], &[]);
    let client = redis::Client::open(redis.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(q.wake_channel()).await.unwrap();
    assert_eq!(
        q.claim_within(10, 10_000, &limit).await.unwrap().ids.len(),
        1
    );
    assert!(
        q.claim_within(10, 10_000, &limit)
            .await
            .unwrap()
            .ids
            .is_empty()
    );
    let mut batch = q.batch();
    batch.release_lease(emails[0].id);
    q.send(batch).await.unwrap();
    let woken = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        pubsub.on_message().next(),
    )
    .await;
    assert!(
        matches!(woken, Ok(Some(_))),
        "no wake-up after the slot was freed"
    );
}

/// A sweep records its mark only if Redis kept its data while it ran: a flush in the middle of
/// a sweep (which may have erased entries the sweep had just restored) leaves no mark, so the
/// next sweep reads every queued job again.
#[tokio::test]
async fn a_sweep_during_which_redis_lost_data_is_not_recorded() {
    let redis = TestRedis::new();
    let q = queue(&redis);
    // Nothing recorded: a full sweep, which records itself.
    let first = q.sweep_mark().await.unwrap();
    assert_eq!(first.since, None);
    let at = Utc::now();
    assert!(q.set_sweep_mark(&first, at).await.unwrap());
    let second = q.sweep_mark().await.unwrap();
    assert_eq!(
        second.since.map(|s| s.timestamp_millis()),
        Some(at.timestamp_millis())
    );
    // Redis is flushed while a sweep of the changes runs: it must not record itself.
    redis.flush().await;
    assert!(!q.set_sweep_mark(&second, Utc::now()).await.unwrap());
    let third = q.sweep_mark().await.unwrap();
    assert_eq!(third.since, None, "the sweep after the flush must be full");
    // Flushed again during that full sweep: not recorded either.
    redis.flush().await;
    assert!(!q.set_sweep_mark(&third, Utc::now()).await.unwrap());
    assert_eq!(q.sweep_mark().await.unwrap().since, None);
    // A full sweep that another sweep overtook (its lock expired) leaves the newer one's mark.
    let slow = q.sweep_mark().await.unwrap();
    let fast = q.sweep_mark().await.unwrap();
    assert!(q.set_sweep_mark(&fast, Utc::now()).await.unwrap());
    assert!(!q.set_sweep_mark(&slow, Utc::now()).await.unwrap());
}
