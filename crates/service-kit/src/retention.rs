//! The periodic retention task of a process: [`persistence::retention::run`] every
//! `RETENTION_INTERVAL_SECS`, rows removed counted in `retention_deleted_rows_total{table}`.

use std::time::Duration;

use persistence::retention::{self, Sweep};

/// Starts the task on the current runtime. The first sweep runs a minute after start (not
/// during a rollout's start-up burst), then every `interval`. `lock_key` names the advisory
/// lock that lets one replica at a time sweep these tables.
pub fn spawn(
    database_url: String,
    lock_key: i64,
    sweeps: Vec<Sweep>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(
            tokio::time::Instant::now() + interval.min(Duration::from_secs(60)),
            interval,
        );
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            sweep_once(&database_url, lock_key, &sweeps).await;
        }
    })
}

/// One sweep now, logged and counted (errors are logged: the next tick tries again).
pub async fn sweep_once(database_url: &str, lock_key: i64, sweeps: &[Sweep]) {
    match retention::run(database_url, lock_key, sweeps, chrono::Utc::now()).await {
        Ok(Some(removed)) => {
            for (table, rows) in &removed {
                metrics::counter!("retention_deleted_rows_total", "table" => *table)
                    .increment(*rows);
            }
            tracing::info!(?removed, "retention sweep done");
        }
        Ok(None) => tracing::debug!("retention: another replica is sweeping"),
        Err(error) => {
            tracing::warn!(%error, "retention sweep failed; retrying at the next interval")
        }
    }
}
