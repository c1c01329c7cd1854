//! Claiming, executing and recording jobs: `claim`, `execute` and `record`, around the
//! state they share ([`Shared`]) and the index helpers the maintenance loops use too.
//!
//! The path of a job through one worker:
//!
//! 1. A claim loop takes free execution slots (up to `CLAIM_BATCH`), pops that many ready jobs
//!    from Redis in one Lua call (which also leases them, skipping paused types and types at
//!    their `TYPE_CONCURRENCY` or `TYPE_RATE_PER_SEC` limit), and marks them `running` in
//!    PostgreSQL in one `UPDATE`, which increments `attempts` and the fencing token `fence`.
//!    Jobs not ready there (cancelled, claimed by another worker after a reconcile, scheduled
//!    and not yet due) are skipped: their leases are dropped at once and they go back where
//!    PostgreSQL says they belong.
//! 2. Each attempt runs on its own task, holding one of `WORKER_CONCURRENCY` slots, with a
//!    cancellation token and the per-attempt timeout. Attempts are known by (job, fence): a
//!    newer attempt of a job stops any older one still running here at once.
//! 3. Outcomes go to one batcher, which writes a batch in one fenced `UPDATE … FROM UNNEST`
//!    and one Redis pipeline (lease removal, retry scheduling, events). An attempt stays in
//!    the in-flight map, and so keeps its lease renewed, until its outcome is written; a
//!    write that fails is retried with backoff until it succeeds or shutdown gives up.
//!
//! Maintenance loops (see [`crate::maintenance`]) renew leases, notice cancellations, reap
//! expired leases, promote due jobs and reconcile Redis with PostgreSQL.

mod claim;
mod execute;
mod record;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use domain::job::JobStatus;
use job_queue::{Entry, JobType, Queue};
use persistence::PgPool;
use persistence::dependencies::Settled;
use persistence::jobs::{self, Job};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::Settings;
use crate::handlers::Registry;

pub use claim::{claim_loop, put_back};
pub use record::{Done, Outcome, ToBatcher, backoff, batcher};

/// Why a running attempt was stopped from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StopReason {
    /// Not stopped.
    None = 0,
    /// The job was cancelled.
    Cancelled = 1,
    /// The attempt is no longer the job's current one (lease expired and taken back).
    LostLease = 2,
    /// The worker is shutting down and hands the job back.
    Released = 3,
}

impl StopReason {
    fn from_u8(value: u8) -> Self {
        match value {
            1 => StopReason::Cancelled,
            2 => StopReason::LostLease,
            3 => StopReason::Released,
            _ => StopReason::None,
        }
    }
}

/// A running attempt.
pub struct InFlight {
    /// Its fencing token.
    pub fence: i64,
    /// Its job's type, renewed with its lease.
    pub job_type: JobType,
    /// Stops the handler.
    pub token: CancellationToken,
    /// The job's log span (see [`job_span`]).
    pub span: tracing::Span,
    stop: Arc<AtomicU8>,
}

impl InFlight {
    /// Stops the attempt for `reason` (the first reason wins).
    pub fn stop(&self, reason: StopReason) {
        let _ = self
            .stop
            .compare_exchange(0, reason as u8, Ordering::SeqCst, Ordering::SeqCst);
        self.token.cancel();
    }
}

/// State shared by every task of the worker.
pub struct Shared {
    /// Settings.
    pub settings: Settings,
    /// PostgreSQL.
    pub pg: PgPool,
    /// The dispatch index.
    pub queue: Queue,
    /// Handlers by type.
    pub registry: Registry,
    /// `TYPE_CONCURRENCY` and `TYPE_RATE_PER_SEC`, applied by every claim.
    pub limits: job_queue::TypeLimits,
    /// Attempts by (job, fence), from their start until their outcome is written.
    pub inflight: Mutex<BTreeMap<(Uuid, i64), InFlight>>,
    /// Execution slots (`WORKER_CONCURRENCY`).
    pub permits: Arc<Semaphore>,
    /// To the batcher.
    pub outcomes: mpsc::Sender<ToBatcher>,
    /// Test aid: the execution log.
    pub exec_log: Option<Mutex<std::fs::File>>,
    /// Wake-ups when jobs become ready (idle claim loops wait on it, they do not poll).
    pub wake: job_queue::ReadySignal,
    /// Set at shutdown: claim no more.
    pub stopping: CancellationToken,
    /// Set when shutdown gives up on outcomes that cannot be written (their jobs run again
    /// once their leases expire).
    pub abandon: CancellationToken,
    /// The execution tasks.
    pub tracker: TaskTracker,
    /// Job log lines waiting to be written.
    pub logs: Arc<crate::logs::LogBuffer>,
}

impl Shared {
    /// The in-flight map (a poisoned lock is still usable: entries are plain data).
    pub fn inflight(&self) -> std::sync::MutexGuard<'_, BTreeMap<(Uuid, i64), InFlight>> {
        self.inflight.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether this worker holds an attempt of job `id` (running, or its outcome not yet
    /// written).
    pub fn holds(&self, id: Uuid) -> bool {
        self.inflight()
            .range((id, i64::MIN)..=(id, i64::MAX))
            .next()
            .is_some()
    }

    /// The jobs among `ids` held here, with their types (for lease renewals).
    pub fn typed(&self, ids: &[Uuid]) -> Vec<(Uuid, JobType)> {
        let inflight = self.inflight();
        let mut typed: Vec<(Uuid, JobType)> = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(job_type) = inflight
                .range((*id, i64::MIN)..=(*id, i64::MAX))
                .map(|(_, attempt)| attempt.job_type)
                .next()
            {
                typed.push((*id, job_type));
            }
        }
        typed
    }

    /// Forgets the attempts `done` (their outcomes are written, or never will be).
    fn forget(&self, done: impl IntoIterator<Item = (Uuid, i64)>) {
        let mut inflight = self.inflight();
        for key in done {
            inflight.remove(&key);
        }
    }

    /// The lease length in milliseconds.
    pub fn lease_ms(&self) -> i64 {
        i64::try_from(self.settings.lease().as_millis()).unwrap_or(i64::MAX)
    }

    fn log_execution(&self, job: &Job) {
        if let Some(log) = &self.exec_log {
            let line = format!(
                "{} {} {}\n",
                job.id,
                job.attempts,
                Utc::now().timestamp_millis()
            );
            let mut file = log.lock().unwrap_or_else(PoisonError::into_inner);
            if let Err(error) = file.write_all(line.as_bytes()) {
                tracing::warn!(%error, "cannot write the execution log");
            }
        }
    }
}

/// The span every log line about one attempt of `job` is written in, from its claim to the
/// write of its outcome: `job_id`, the `request_id` of the HTTP request that submitted it
/// (absent for jobs submitted before request ids were stored), and `attempt`. With
/// `LOG_FORMAT=json` they appear as `span.job_id`, `span.request_id` and `span.attempt`.
pub fn job_span(job: &Job) -> tracing::Span {
    tracing::info_span!(
        "job",
        job_id = %job.id,
        request_id = job.request_id.as_deref(),
        attempt = job.attempts,
    )
}

/// Seconds from the moment a claimed attempt could first start to its start (`started_at`, set
/// by the claim): from the submit for a job to run at once, from `run_at` for a scheduled job
/// or a retry (its backoff is not waiting). `None` before the claim is recorded.
pub fn start_latency(job: &Job) -> Option<f64> {
    let started = job.started_at?;
    let ready = job
        .run_at
        .map_or(job.created_at, |run_at| run_at.max(job.created_at));
    let micros = (started - ready).num_microseconds().unwrap_or(i64::MAX);
    Some(micros.max(0) as f64 / 1e6)
}

/// The index entry of a job.
pub fn entry_of(job: &Job) -> Entry {
    entry(job.id, job.user_id, job.priority, job.job_type)
}

/// The index entry of a job from its parts.
pub fn entry(id: Uuid, user_id: Uuid, priority: i16, job_type: JobType) -> Entry {
    Entry {
        id,
        user_id,
        priority,
        job_type,
    }
}

/// Adds the queued jobs among `rows` to the ready or scheduled set, as their status says.
pub fn index(batch: &mut job_queue::Batch, rows: &[jobs::QueueEntry]) {
    for row in rows {
        let entry = entry(row.id, row.user_id, row.priority, row.job_type);
        match (row.status, row.run_at) {
            (JobStatus::Pending, _) => {
                batch.enqueue(entry);
            }
            (JobStatus::Scheduled, Some(run_at)) => {
                batch.schedule(entry, run_at);
            }
            _ => {}
        }
    }
}

/// Queues the children that [`persistence::dependencies::settle`] promoted and announces every
/// job it changed (cancelled ones are in no queue).
pub fn index_settled(batch: &mut job_queue::Batch, settled: &Settled) {
    for job in &settled.promoted {
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
    for job in &settled.cancelled {
        batch.publish(job.user_id, &job.to_json());
    }
}

async fn pause(shared: &Shared, duration: Duration) {
    tokio::select! {
        () = shared.stopping.cancelled() => {}
        () = tokio::time::sleep(duration) => {}
    }
}
