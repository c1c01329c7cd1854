//! Claiming, executing and recording jobs.
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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::future::BoxFuture;
use job_queue::{Entry, JobType, Queue};
use persistence::PgPool;
use persistence::dependencies::Settled;
use persistence::jobs::{self, Job};
use rand::RngExt as _;
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::Settings;
use crate::handlers::{JobContext, LogLevel, ProgressSink, Registry, injected_failure};

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
    /// Its job's type (`None`: a type this build does not know), renewed with its lease.
    pub job_type: Option<JobType>,
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
    fn label(&self) -> &'static str {
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
                .find_map(|(_, attempt)| attempt.job_type)
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

/// The index entry of a job (`None` for a type this build does not know: such a row cannot
/// come from the API, and no worker here could run it).
pub fn entry_of(job: &Job) -> Option<Entry> {
    entry(job.id, job.user_id, job.priority, &job.job_type)
}

/// The index entry of a job from its parts (`None` for an unknown type, logged).
pub fn entry(id: Uuid, user_id: Uuid, priority: i16, job_type: &str) -> Option<Entry> {
    match job_type.parse::<JobType>() {
        Ok(job_type) => Some(Entry {
            id,
            user_id,
            priority,
            job_type,
        }),
        Err(_) => {
            tracing::warn!(job = %id, %job_type, "a job of an unknown type is left out of the queue");
            None
        }
    }
}

/// One claim loop: runs until shutdown starts.
pub async fn claim_loop(shared: Arc<Shared>) {
    let lease_ms = shared.lease_ms();
    let idle = Duration::from_millis(shared.settings.idle_poll_ms);
    loop {
        let first = tokio::select! {
            biased;
            () = shared.stopping.cancelled() => return,
            permit = shared.permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let mut permits = vec![first];
        while permits.len() < shared.settings.claim_batch {
            match shared.permits.clone().try_acquire_owned() {
                Ok(permit) => permits.push(permit),
                Err(_) => break,
            }
        }
        // Listening before looking, so that jobs made ready after the claim found nothing
        // wake this loop at once.
        let wake = shared.wake.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        let claim = match shared
            .queue
            .claim_within(permits.len(), lease_ms, &shared.limits)
            .await
        {
            Ok(claim) => claim,
            Err(error) => {
                tracing::warn!(%error, "claim failed; retrying");
                drop(permits);
                pause(&shared, Duration::from_millis(500)).await;
                continue;
            }
        };
        if claim.paused_unknown {
            // Redis lost its mirror of the paused types: nothing starts until it is rewritten
            // from PostgreSQL.
            drop(permits);
            if let Err(error) = crate::maintenance::mirror_paused(&shared.pg, &shared.queue).await {
                tracing::warn!(%error, "restoring the paused types in Redis failed; retrying");
                pause(&shared, Duration::from_millis(500)).await;
            }
            continue;
        }
        let ids = claim.ids;
        if ids.is_empty() {
            drop(permits);
            // Jobs held back by a type's rate may start when its window moves on; those held
            // back by a concurrency limit or a pause are announced on the wake channel.
            let wait = claim.retry_in.map_or(idle, |retry| retry.min(idle));
            tokio::select! {
                () = shared.stopping.cancelled() => {}
                () = wake => {}
                () = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        permits.truncate(ids.len());
        let claimed = match claim_rows(&shared, &ids).await {
            Ok(claimed) => claimed,
            Err(error) => {
                // The jobs stay leased in Redis and ready in PostgreSQL: when the leases
                // expire, the reaper puts them back in the ready set.
                tracing::warn!(%error, count = ids.len(), "recording claims failed");
                pause(&shared, Duration::from_millis(500)).await;
                continue;
            }
        };
        if claimed.len() < ids.len() {
            let taken: HashSet<Uuid> = claimed.iter().map(|job| job.id).collect();
            let skipped: Vec<Uuid> = ids.into_iter().filter(|id| !taken.contains(id)).collect();
            put_back(&shared, &skipped).await;
        }
        let mut batch = shared.queue.batch();
        for job in &claimed {
            batch.publish(job.user_id, &job.to_json());
        }
        if let Err(error) = shared.queue.send(batch).await {
            tracing::warn!(%error, "publishing running events failed");
        }
        for (job, permit) in claimed.into_iter().zip(permits) {
            if let Some(latency) = start_latency(&job) {
                metrics::histogram!("worker_job_start_latency_seconds", "type" => job.job_type.clone())
                    .record(latency);
            }
            let span = job_span(&job);
            span.in_scope(|| {
                tracing::debug!(job_type = %job.job_type, "job claimed");
            });
            shared
                .tracker
                .spawn(execute(shared.clone(), job, permit, span.clone()).instrument(span));
        }
    }
}

async fn pause(shared: &Shared, duration: Duration) {
    tokio::select! {
        () = shared.stopping.cancelled() => {}
        () = tokio::time::sleep(duration) => {}
    }
}

/// Puts jobs popped from the ready set but not claimed in PostgreSQL back where PostgreSQL says
/// they belong, and drops their leases: `pending` to the ready set, `scheduled` to the
/// scheduled set at its `run_at`, finished jobs nowhere. A job `running` elsewhere keeps its
/// lease (it is that attempt's). On failure the leases stay and the reaper does it later.
pub async fn put_back(shared: &Shared, ids: &[Uuid]) {
    let rows = async {
        let mut conn = shared.pg.get().await?;
        jobs::queue_entries_of(&mut conn, ids).await
    }
    .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(error) => {
            tracing::warn!(%error, count = ids.len(), "reading skipped claims failed");
            return;
        }
    };
    let running: HashSet<Uuid> = rows
        .iter()
        .filter(|row| row.status == "running")
        .map(|row| row.id)
        .collect();
    let mut batch = shared.queue.batch();
    for id in ids.iter().filter(|id| !running.contains(id)) {
        batch.release_lease(*id);
    }
    index(&mut batch, &rows);
    if let Err(error) = shared.queue.send(batch).await {
        tracing::warn!(%error, "putting back skipped claims failed; the reaper will");
    }
}

/// Adds the queued jobs among `rows` to the ready or scheduled set, as their status says.
pub fn index(batch: &mut job_queue::Batch, rows: &[jobs::QueueEntry]) {
    for row in rows {
        let Some(entry) = entry(row.id, row.user_id, row.priority, &row.job_type) else {
            continue;
        };
        match (row.status.as_str(), row.run_at) {
            ("pending", _) => {
                batch.enqueue(entry);
            }
            ("scheduled", Some(run_at)) => {
                batch.schedule(entry, run_at);
            }
            _ => {}
        }
    }
}

/// Marks the claimed ids running in PostgreSQL, in claim (priority) order.
async fn claim_rows(
    shared: &Shared,
    ids: &[Uuid],
) -> Result<Vec<Job>, persistence::PersistenceError> {
    let mut conn = shared.pg.get().await?;
    let mut claimed = jobs::claim(&mut conn, ids).await?;
    let order: HashMap<Uuid, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    claimed.sort_by_key(|job| order.get(&job.id).copied().unwrap_or(usize::MAX));
    Ok(claimed)
}

/// Runs one attempt and hands its outcome to the batcher. The attempt stays in the in-flight
/// map until the batcher has written its outcome.
async fn execute(shared: Arc<Shared>, job: Job, permit: OwnedSemaphorePermit, span: tracing::Span) {
    let token = CancellationToken::new();
    let stop = Arc::new(AtomicU8::new(0));
    let attempt = InFlight {
        fence: job.fence,
        job_type: job.job_type.parse().ok(),
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
        ("type", job.job_type.clone()),
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
    let Some(handler) = shared.registry.get(&job.job_type) else {
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

/// Collects outcomes and writes them in batches until told to stop.
pub async fn batcher(shared: Arc<Shared>, mut rx: mpsc::Receiver<ToBatcher>) {
    let interval = Duration::from_millis(shared.settings.flush_interval_ms);
    let writers = Arc::new(Semaphore::new(4));
    let mut tasks = tokio::task::JoinSet::new();
    let mut stopping = false;
    while !stopping {
        let first = match rx.recv().await {
            Some(ToBatcher::Done(done)) => *done,
            Some(ToBatcher::Stop) | None => break,
        };
        let mut buffer = vec![first];
        let deadline = tokio::time::Instant::now() + interval;
        while buffer.len() < shared.settings.flush_max {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(ToBatcher::Done(done))) => buffer.push(*done),
                Ok(Some(ToBatcher::Stop) | None) => {
                    stopping = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let Ok(permit) = writers.clone().acquire_owned().await else {
            break;
        };
        let shared = shared.clone();
        tasks.spawn(async move {
            flush(&shared, buffer).await;
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
            Outcome::Completed(value) => ("completed", Some(value), None, None),
            Outcome::Failed(error) if job.attempts >= job.max_attempts => {
                ("failed", None, Some(error), None)
            }
            Outcome::Failed(error) => {
                let delay = backoff(
                    settings.job_retry_base_ms,
                    settings.job_retry_max_ms,
                    job.attempts,
                );
                let delay = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                ("scheduled", None, Some(error), Some(delay))
            }
            Outcome::Stopped(StopReason::Released) => ("pending", None, None, None),
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
        match (job.status.as_str(), job.run_at, entry_of(job)) {
            ("scheduled", Some(run_at), Some(entry)) => {
                batch.schedule(entry, run_at);
            }
            ("pending", _, Some(entry)) => {
                batch.enqueue(entry);
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

/// Queues the children that [`persistence::dependencies::settle`] promoted and announces every
/// job it changed (cancelled ones are in no queue).
pub fn index_settled(batch: &mut job_queue::Batch, settled: &Settled) {
    for job in &settled.promoted {
        match (job.status.as_str(), job.run_at, entry_of(job)) {
            ("scheduled", Some(run_at), Some(entry)) => {
                batch.schedule(entry, run_at);
            }
            ("pending", _, Some(entry)) => {
                batch.enqueue(entry);
            }
            _ => {}
        }
        batch.publish(job.user_id, &job.to_json());
    }
    for job in &settled.cancelled {
        batch.publish(job.user_id, &job.to_json());
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
