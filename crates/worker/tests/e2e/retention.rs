//! Retention of finished jobs: old ones go in batches, recent and unfinished ones stay, one
//! worker at a time sweeps, and the worker process does it by itself.

use std::time::{Duration, Instant};

use diesel::sql_types::{Text, Uuid as SqlUuid};
use diesel_async::RunQueryDsl as _;

use crate::harness::Env;

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Inserts `n` jobs of `status` created and finished `created_days` / `finished_days` ago.
async fn insert(
    env: &Env,
    tag: &str,
    n: i64,
    status: &str,
    created_days: i64,
    finished: Option<i64>,
) {
    let mut conn = env.pool.get().await.unwrap();
    diesel::sql_query(format!(
        "INSERT INTO jobs (id, user_id, type, data, status, created_at, updated_at, finished_at) \
         SELECT gen_random_uuid(), $1, 'noop', jsonb_build_object('tag', $2::text), $3, \
                now() - interval '{created_days} days', now(), {} \
         FROM generate_series(1, {n})",
        finished.map_or("NULL".to_owned(), |d| format!(
            "now() - interval '{d} days'"
        ))
    ))
    .bind::<SqlUuid, _>(env.user.id)
    .bind::<Text, _>(tag)
    .bind::<Text, _>(status)
    .execute(&mut conn)
    .await
    .unwrap();
}

async fn left(env: &Env, tag: &str) -> i64 {
    let mut conn = env.pool.get().await.unwrap();
    diesel::sql_query("SELECT count(*) AS n FROM jobs WHERE data->>'tag' = $1")
        .bind::<Text, _>(tag)
        .get_result::<Count>(&mut conn)
        .await
        .unwrap()
        .n
}

async fn seed(env: &Env) {
    // 2,500 old completed jobs: more than two batches.
    insert(env, "old-completed", 2500, "completed", 40, Some(35)).await;
    insert(env, "old-cancelled", 3, "cancelled", 40, Some(31)).await;
    insert(env, "recent-completed", 3, "completed", 40, Some(1)).await;
    insert(env, "failed-40-days", 3, "failed", 41, Some(40)).await;
    insert(env, "failed-100-days", 3, "failed", 101, Some(100)).await;
    insert(env, "old-pending", 3, "pending", 100, None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn old_finished_jobs_go_in_batches_and_the_rest_stays() {
    let env = Env::start().await;
    seed(&env).await;
    let settings = worker::Settings::default();
    let sweeps = settings.retention_sweeps();

    // Another replica holds the lock: this one leaves the work to it.
    let mut holder = persistence::pool::connect(env.db.url()).await.unwrap();
    diesel::sql_query(format!(
        "SELECT pg_advisory_lock({})",
        worker::RETENTION_LOCK
    ))
    .execute(&mut holder)
    .await
    .unwrap();
    let skipped = persistence::retention::run(
        env.db.url(),
        worker::RETENTION_LOCK,
        &sweeps,
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    assert!(skipped.is_none());
    assert_eq!(left(&env, "old-completed").await, 2500);
    drop(holder);

    let removed = persistence::retention::run(
        env.db.url(),
        worker::RETENTION_LOCK,
        &sweeps,
        chrono::Utc::now(),
    )
    .await
    .unwrap()
    .expect("the lock is free");
    let jobs: u64 = removed
        .iter()
        .filter(|(t, _)| *t == "jobs")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(jobs, 2500 + 3 + 3);
    for (tag, want) in [
        ("old-completed", 0),
        ("old-cancelled", 0),
        ("failed-100-days", 0),
        ("recent-completed", 3),
        ("failed-40-days", 3),
        ("old-pending", 3),
    ] {
        assert_eq!(left(&env, tag).await, want, "{tag}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_sweeps_by_itself_and_counts_what_it_removed() {
    let env = Env::start().await;
    seed(&env).await;
    let worker = env.worker(&[("RETENTION_INTERVAL_SECS", "1")]).await;
    // The counter is written once the whole sweep is done (every status): wait for it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let removed = loop {
        let metrics = reqwest::get(format!("{}/metrics", worker.base_url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let value = metrics
            .lines()
            .find(|l| l.starts_with("retention_deleted_rows_total{table=\"jobs\"}"))
            .and_then(|line| line.rsplit(' ').next()?.parse::<f64>().ok());
        if let Some(value) = value.filter(|v| *v >= 2506.0) {
            break value;
        }
        assert!(
            Instant::now() < deadline,
            "no sweep counted in time: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(removed, 2506.0);
    assert_eq!(left(&env, "old-completed").await, 0);
    assert_eq!(left(&env, "failed-100-days").await, 0);
    assert_eq!(left(&env, "recent-completed").await, 3);
}
