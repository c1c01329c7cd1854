//! Execution: one attempt on its own task, holding an execution slot, stoppable from outside
//! (cancel, lost lease, shutdown) and bounded by `JOB_TIMEOUT_SECS`; its outcome goes to the
//! recorder.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use persistence::jobs::{self, Job};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::record::{Done, Outcome, ToBatcher};
use super::{InFlight, Shared, StopReason};
use crate::handlers::{JobContext, LogLevel, ProgressSink, injected_failure};

/// Runs one attempt and hands its outcome to the batcher. The attempt stays in the in-flight
/// map until the batcher has written its outcome.
pub(super) async fn execute(
    shared: Arc<Shared>,
    job: Job,
    permit: OwnedSemaphorePermit,
    span: tracing::Span,
) {
    let token = CancellationToken::new();
    let stop = Arc::new(AtomicU8::new(0));
    let attempt = InFlight {
        fence: job.fence,
        job_type: job.job_type,
        token: token.clone(),
        span: span.clone(),
        stop: stop.clone(),
    };
    {
        let mut inflight = shared.inflight();
        // A newer attempt supersedes every older one of the same job held here (a cancel and
        // retry within a heartbeat): stop those at once, so they free their slots and no
        // longer act; and an attempt that arrives after a newer one never starts.
        for (_, older) in inflight.range((job.id, i64::MIN)..(job.id, job.fence)) {
            older.stop(StopReason::LostLease);
        }
        if inflight
            .range((job.id, job.fence.saturating_add(1))..=(job.id, i64::MAX))
            .next()
            .is_some()
        {
            attempt.stop(StopReason::LostLease);
        }
        inflight.insert((job.id, job.fence), attempt);
    }
    if !token.is_cancelled() {
        shared.log_execution(&job);
    }
    let started = Instant::now();
    let outcome = run_handler(&shared, &job, &token, &stop).await;
    drop(permit);

    // A failure with attempts left is `retried`; `failed` is final.
    let counted = match &outcome {
        Outcome::Failed(_) if job.attempts < job.max_attempts => "retried",
        other => other.label(),
    };
    let labels = [
        ("type", job.job_type.as_str().to_owned()),
        ("outcome", counted.to_owned()),
    ];
    metrics::counter!("worker_jobs_total", &labels).increment(1);
    metrics::histogram!("worker_job_duration_seconds", &labels[..1])
        .record(started.elapsed().as_secs_f64());
    if let Outcome::Failed(error) = &outcome {
        tracing::info!(%error, "attempt failed");
        // Why it failed, in the job's own log too (written before the outcome: see `flush`).
        shared.logs.push(
            job.id,
            job.attempts,
            LogLevel::Error,
            format!("attempt {} failed: {error}", job.attempts),
        );
    }
    tracing::debug!(
        outcome = outcome.label(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "attempt ended"
    );
    let key = (job.id, job.fence);
    if shared
        .outcomes
        .send(ToBatcher::Done(Box::new(Done { job, outcome, span })))
        .await
        .is_err()
    {
        shared.forget([key]);
        tracing::error!(
            "the batcher is gone; outcome dropped (the lease will expire and the job run again)"
        );
    }
}

async fn run_handler(
    shared: &Arc<Shared>,
    job: &Job,
    token: &CancellationToken,
    stop: &AtomicU8,
) -> Outcome {
    if token.is_cancelled() {
        return Outcome::Stopped(StopReason::from_u8(stop.load(Ordering::SeqCst)));
    }
    let Some(handler) = shared.registry.get(job.job_type) else {
        return Outcome::Failed(format!(
            "this worker has no handler for type `{}`",
            job.job_type
        ));
    };
    if let Some(error) = injected_failure(&job.data, job.attempts) {
        return Outcome::Failed(error.0);
    }
    let parents = if job.depends_on.is_empty() {
        Vec::new()
    } else {
        let read = async {
            let mut conn = shared.pg.get().await?;
            persistence::dependencies::parent_results(&mut conn, &job.depends_on).await
        }
        .await;
        match read {
            Ok(parents) => parents,
            Err(error) => {
                return Outcome::Failed(format!("could not read the parents' results: {error}"));
            }
        }
    };
    let ctx = JobContext {
        id: job.id,
        data: job.data.clone(),
        attempt: job.attempts,
        cancel: token.clone(),
        progress: Arc::new(Progress {
            shared: shared.clone(),
            id: job.id,
            fence: job.fence,
            last: Mutex::new((0, Instant::now())),
        }),
        logs: shared.logs.clone(),
        parents,
    };
    let limit = Duration::from_secs(shared.settings.job_timeout_secs);
    let stopped = || Outcome::Stopped(StopReason::from_u8(stop.load(Ordering::SeqCst)));
    tokio::select! {
        biased;
        () = token.cancelled() => stopped(),
        result = tokio::time::timeout(limit, handler.run(&ctx)) => match result {
            Ok(Ok(value)) => Outcome::Completed(value),
            Ok(Err(_)) if token.is_cancelled() => stopped(),
            Ok(Err(error)) => Outcome::Failed(error.0),
            Err(_) => Outcome::Failed(format!("timed out after {} s (JOB_TIMEOUT_SECS)", limit.as_secs())),
        },
    }
}

/// Progress of one attempt: written fenced, at most every 200 ms, and published.
struct Progress {
    shared: Arc<Shared>,
    id: Uuid,
    fence: i64,
    last: Mutex<(u8, Instant)>,
}

/// Shortest interval between two progress writes of one job.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);

impl ProgressSink for Progress {
    fn report(&self, percent: u8) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            {
                let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
                if percent == last.0 || (last.1.elapsed() < PROGRESS_INTERVAL && percent < 100) {
                    return;
                }
                *last = (percent, Instant::now());
            }
            let written = async {
                let mut conn = self.shared.pg.get().await?;
                jobs::set_progress(&mut conn, self.id, self.fence, i16::from(percent)).await
            }
            .await;
            match written {
                Ok(Some(job)) => {
                    let mut batch = self.shared.queue.batch();
                    batch.publish(job.user_id, &job.to_json());
                    if let Err(error) = self.shared.queue.send(batch).await {
                        tracing::warn!(%error, "publishing progress failed");
                    }
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(job = %self.id, %error, "recording progress failed"),
            }
        })
    }
}
