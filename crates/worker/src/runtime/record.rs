//! Recording outcomes: finished attempts are written in batches (a group commit, see
//! [`batcher`]), each by one fenced statement and one Redis pipeline.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use domain::job::JobStatus;
use persistence::dependencies::Settled;
use persistence::jobs::{self, Job};
use rand::RngExt as _;
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc};
use uuid::Uuid;

use super::{Shared, StopReason, entry_of, index_settled};

/// How an attempt ended.
#[derive(Debug)]
pub enum Outcome {
    /// The handler succeeded.
    Completed(Value),
    /// The handler failed (or timed out).
    Failed(String),
    /// Stopped: see the reason.
    Stopped(StopReason),
}

impl Outcome {
    pub(super) fn label(&self) -> &'static str {
        match self {
            Outcome::Completed(_) => "completed",
            Outcome::Failed(_) => "failed",
            Outcome::Stopped(StopReason::Cancelled) => "cancelled",
            Outcome::Stopped(StopReason::Released) => "released",
            Outcome::Stopped(_) => "lost_lease",
        }
    }
}

/// A finished attempt on its way to the batcher.
pub struct Done {
    /// The job as claimed.
    pub job: Job,
    /// How it ended.
    pub outcome: Outcome,
    /// The job's log span, for the line that records the outcome.
    pub span: tracing::Span,
}

/// Messages to the batcher.
pub enum ToBatcher {
    /// An attempt ended.
    Done(Box<Done>),
    /// Write what is buffered and stop (sent after every attempt has ended).
    Stop,
}

/// The retry delay after failed attempt `attempt` (1-based): `base · 2^(attempt-1)`, capped,
/// times a jitter factor in [0.6, 1.0]. The jitter range keeps consecutive delays growing
/// (0.6 · 2 > 1.0) while spreading retries of jobs that failed together.
pub fn backoff(base_ms: u64, max_ms: u64, attempt: i32) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(40);
    let raw = base_ms.saturating_mul(1_u64 << exponent).min(max_ms);
    let factor: f64 = rand::rng().random_range(0.6..=1.0);
    Duration::from_millis((raw as f64 * factor) as u64)
}

/// Outcome writes in flight at once.
const WRITERS: usize = 2;

/// Collects outcomes and writes them in batches until told to stop, as a group commit: an
/// outcome is written at once when a writer is free (an idle worker adds no delay), and the
/// outcomes that end while every writer is busy wait together for the next free one (under
/// load, one statement records many). `FLUSH_INTERVAL_MS` above 0 also holds each batch open
/// that long after its first outcome; `FLUSH_MAX` caps a batch.
pub async fn batcher(shared: Arc<Shared>, mut rx: mpsc::Receiver<ToBatcher>) {
    let gather = Duration::from_millis(shared.settings.flush_interval_ms);
    let max = shared.settings.flush_max.max(1);
    let writers = Arc::new(Semaphore::new(WRITERS));
    let mut tasks = tokio::task::JoinSet::new();
    let mut buffer: Vec<Done> = Vec::new();
    let mut open = true;
    while open || !buffer.is_empty() {
        if buffer.is_empty() {
            match rx.recv().await {
                Some(ToBatcher::Done(done)) => buffer.push(*done),
                Some(ToBatcher::Stop) | None => break,
            }
            if !gather.is_zero() {
                let deadline = tokio::time::Instant::now() + gather;
                while open && buffer.len() < max {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(ToBatcher::Done(done))) => buffer.push(*done),
                        Ok(Some(ToBatcher::Stop) | None) => open = false,
                        Err(_) => break,
                    }
                }
            }
        }
        // What has already arrived goes into the same write.
        while open && buffer.len() < max {
            match rx.try_recv() {
                Ok(ToBatcher::Done(done)) => buffer.push(*done),
                Ok(ToBatcher::Stop) | Err(mpsc::error::TryRecvError::Disconnected) => open = false,
                Err(mpsc::error::TryRecvError::Empty) => break,
            }
        }
        let permit = if !open || buffer.len() >= max {
            writers.clone().acquire_owned().await
        } else {
            tokio::select! {
                biased;
                permit = writers.clone().acquire_owned() => permit,
                message = rx.recv() => {
                    match message {
                        Some(ToBatcher::Done(done)) => buffer.push(*done),
                        Some(ToBatcher::Stop) | None => open = false,
                    }
                    continue;
                }
            }
        };
        let Ok(permit) = permit else {
            break;
        };
        let batch = std::mem::take(&mut buffer);
        let shared = shared.clone();
        tasks.spawn(async move {
            flush(&shared, batch).await;
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// Writes a batch of outcomes: one fenced SQL statement, one Redis pipeline (after one statement
/// for the log lines buffered so far, when there are any).
async fn flush(shared: &Shared, done: Vec<Done>) {
    // The attempts' log lines first, so that a job seen finished has its whole log.
    shared.logs.flush(&shared.pg).await;
    let settings = &shared.settings;
    let keys: Vec<(Uuid, i64)> = done.iter().map(|d| (d.job.id, d.job.fence)).collect();
    let mut outcomes = Vec::with_capacity(done.len());
    // Attempts that end without a write of their own (cancelled, superseded, fenced out).
    let mut unwritten: HashMap<Uuid, i64> = HashMap::new();
    let mut spans: HashMap<Uuid, tracing::Span> = HashMap::with_capacity(done.len());
    for Done { job, outcome, span } in done {
        spans.insert(job.id, span);
        let (status, result, last_error, retry_in_ms) = match outcome {
            Outcome::Completed(value) => (JobStatus::Completed, Some(value), None, None),
            Outcome::Failed(error) if job.attempts >= job.max_attempts => {
                (JobStatus::Failed, None, Some(error), None)
            }
            Outcome::Failed(error) => {
                let delay = backoff(
                    settings.job_retry_base_ms,
                    settings.job_retry_max_ms,
                    job.attempts,
                );
                let delay = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                (JobStatus::Scheduled, None, Some(error), Some(delay))
            }
            Outcome::Stopped(StopReason::Released) => (JobStatus::Pending, None, None, None),
            Outcome::Stopped(_) => {
                unwritten.insert(job.id, job.fence);
                continue;
            }
        };
        outcomes.push(jobs::Outcome {
            id: job.id,
            fence: job.fence,
            status,
            result,
            last_error,
            retry_in_ms,
        });
    }
    let Some((written, settled)) = write_outcomes(shared, &outcomes).await else {
        tracing::error!(
            count = outcomes.len(),
            "shutdown gave up writing outcomes; their jobs run again when their leases expire"
        );
        shared.forget(keys);
        return;
    };
    shared.forget(keys);
    let changed: HashSet<Uuid> = written.iter().map(|job| job.id).collect();
    for outcome in outcomes.iter().filter(|o| !changed.contains(&o.id)) {
        unwritten.insert(outcome.id, outcome.fence);
    }
    let mut batch = shared.queue.batch();
    for job in &written {
        if let Some(span) = spans.get(&job.id) {
            span.in_scope(|| tracing::debug!(status = %job.status, "outcome recorded"));
        }
        batch.release_lease(job.id);
        match (job.status, job.run_at) {
            (JobStatus::Scheduled, Some(run_at)) => {
                batch.schedule(entry_of(job), run_at);
            }
            (JobStatus::Pending, _) => {
                batch.enqueue(entry_of(job));
            }
            _ => {}
        }
        batch.publish(job.user_id, &job.to_json());
    }
    index_settled(&mut batch, &settled);
    release_stale_leases(shared, &unwritten, &mut batch).await;
    if let Err(error) = shared.queue.send(batch).await {
        tracing::warn!(%error, "Redis write after outcomes failed; the reaper and the reconciler will repair the index");
    }
}

/// Writes `outcomes` and settles the children of the jobs that ended (one transaction),
/// retrying with backoff until it succeeds or shutdown gives up (`None`). Meanwhile the
/// attempts stay in the in-flight map, so their leases are renewed and no other worker takes
/// their jobs back.
async fn write_outcomes(
    shared: &Shared,
    outcomes: &[jobs::Outcome],
) -> Option<(Vec<Job>, Settled)> {
    let mut delay = Duration::from_millis(50);
    loop {
        let result = async {
            let mut conn = shared.pg.get().await?;
            persistence::dependencies::finish(&mut conn, outcomes).await
        }
        .await;
        match result {
            Ok(rows) => return Some(rows),
            Err(error) => {
                tracing::warn!(%error, count = outcomes.len(), retry_in = ?delay, "recording outcomes failed");
            }
        }
        tokio::select! {
            () = shared.abandon.cancelled() => return None,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Drops the leases of attempts that ended without writing (`attempts`: job → fence), unless
/// a newer attempt holds the job (its lease is that attempt's). Without the check, a cancelled
/// attempt's end would drop the lease of the job's retry running elsewhere.
async fn release_stale_leases(
    shared: &Shared,
    attempts: &HashMap<Uuid, i64>,
    batch: &mut job_queue::Batch,
) {
    if attempts.is_empty() {
        return;
    }
    let ids: Vec<Uuid> = attempts.keys().copied().collect();
    let states = async {
        let mut conn = shared.pg.get().await?;
        jobs::attempt_states(&mut conn, &ids).await
    }
    .await;
    match states {
        Ok(rows) => {
            for (id, _, fence) in rows {
                if attempts.get(&id) == Some(&fence) {
                    batch.release_lease(id);
                }
            }
        }
        // The leases expire; the reaper then finds nothing running and drops them.
        Err(error) => tracing::warn!(%error, "reading ended attempts failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::backoff;

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        for attempt in 1..6 {
            let this = backoff(1000, 3_600_000, attempt).as_millis();
            let next = backoff(1000, 3_600_000, attempt + 1).as_millis();
            let nominal = 1000_u128 << (attempt - 1);
            assert!(
                this >= nominal * 6 / 10 && this <= nominal,
                "{attempt}: {this}"
            );
            assert!(next > this, "{attempt}: {next} <= {this}");
        }
        assert!(backoff(1000, 5000, 20).as_millis() <= 5000);
    }
}
