//! How soon a job submitted to an idle system starts: single `noop` submits, each after the
//! system has been idle for a while, timed from `created_at` (the job service handled the
//! submit) to `started_at` (the worker's claim statement).

use std::time::Duration;

use anyhow::{Result, bail};
use tokio::time::Instant;

use crate::db::Db;
use crate::load::Api;
use crate::stats::Latency;

/// Submits measured.
pub const SUBMITS: usize = 20;
/// Idle time before each submit: longer than any batching delay of the worker.
const IDLE: Duration = Duration::from_millis(100);

/// `created_at` → `started_at` of [`SUBMITS`] jobs submitted one at a time to an idle system.
pub async fn start_latency(api: &Api, db: &mut Db) -> Result<Latency> {
    let mut samples = Vec::with_capacity(SUBMITS);
    for _ in 0..SUBMITS {
        tokio::time::sleep(IDLE).await;
        let id = api.probe_submit().await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let life = loop {
            if let Some(life) = db.life_times().await?.remove(&id) {
                break life;
            }
            if Instant::now() >= deadline {
                bail!("job {id} did not complete within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let micros = (life.started - life.created)
            .num_microseconds()
            .unwrap_or(0);
        samples.push(u64::try_from(micros).unwrap_or(0));
    }
    Ok(Latency::from_micros(&mut samples))
}
