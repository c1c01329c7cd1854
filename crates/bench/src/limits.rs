//! The machine's own limits, measured in the same run as the phases, so that every figure can
//! be read as a ratio to what this machine (loaded as it is at that moment) can do at all:
//!
//! - **PostgreSQL single-row commits per second** from [`PG_CLIENTS`] connections, each
//!   committing one `INSERT` of one row at a time (the work of one submit: one durable commit),
//!   on a scratch table of the benchmark's database that is dropped afterwards;
//! - **Redis round trips per second** on one connection, one `PING` at a time (the latency
//!   floor of every claim, enqueue and lease renewal), with the round trip's p50 and p99.

use std::time::Duration;

use anyhow::{Context as _, Result};
use diesel_async::RunQueryDsl as _;
use serde::Serialize;
use tokio::time::Instant;

use crate::stats::Latency;

/// Connections committing at once: the job service's and the worker's pools are of this order.
pub const PG_CLIENTS: usize = 16;

/// What the machine can do, measured right before a phase.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Limits {
    /// Single-row `INSERT` commits per second from [`PG_CLIENTS`] connections.
    pub pg_commits_per_sec: f64,
    /// Sequential `PING` round trips per second on one connection.
    pub redis_round_trips_per_sec: f64,
    /// Those round trips' latency.
    pub redis_round_trip: Latency,
}

/// Measures both limits, each for `window`.
pub async fn measure(db_url: &str, redis_url: &str, window: Duration) -> Result<Limits> {
    let pg_commits_per_sec = pg_commits(db_url, window).await?;
    let (redis_round_trips_per_sec, redis_round_trip) =
        redis_round_trips(redis_url, window).await?;
    Ok(Limits {
        pg_commits_per_sec,
        redis_round_trips_per_sec,
        redis_round_trip,
    })
}

/// The scratch table's name (in the benchmark's own, fresh database).
const TABLE: &str = "bench_commit_probe";

async fn pg_commits(db_url: &str, window: Duration) -> Result<f64> {
    let mut setup = persistence::pool::connect(db_url).await?;
    diesel::sql_query(format!(
        "CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())"
    ))
    .execute(&mut setup)
    .await
    .context("create the commit probe table")?;
    let mut clients = Vec::with_capacity(PG_CLIENTS);
    for _ in 0..PG_CLIENTS {
        clients.push(persistence::pool::connect(db_url).await?);
    }
    let started = Instant::now();
    let deadline = started + window;
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut conn| {
            tokio::spawn(async move {
                let mut commits = 0_u64;
                while Instant::now() < deadline {
                    diesel::sql_query(format!("INSERT INTO {TABLE} DEFAULT VALUES"))
                        .execute(&mut conn)
                        .await?;
                    commits += 1;
                }
                Ok::<_, diesel::result::Error>(commits)
            })
        })
        .collect();
    let mut commits = 0;
    for task in tasks {
        commits += task.await??;
    }
    let elapsed = started.elapsed();
    diesel::sql_query(format!("DROP TABLE {TABLE}"))
        .execute(&mut setup)
        .await
        .context("drop the commit probe table")?;
    Ok(commits as f64 / elapsed.as_secs_f64().max(1e-9))
}

async fn redis_round_trips(redis_url: &str, window: Duration) -> Result<(f64, Latency)> {
    let mut conn = redis::Client::open(redis_url)?
        .get_multiplexed_async_connection()
        .await
        .context("connect to Redis")?;
    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < window {
        let sent = Instant::now();
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        samples.push(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
    }
    let rate = samples.len() as f64 / started.elapsed().as_secs_f64().max(1e-9);
    Ok((rate, Latency::from_micros(&mut samples)))
}
