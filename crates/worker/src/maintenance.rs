//! The worker's periodic duties: heartbeats (lease renewal and cancellation checks), reaping
//! expired leases, promoting due scheduled jobs, reconciling Redis with PostgreSQL, and the
//! queue-depth gauge. Every worker runs all of them; each is safe to run concurrently with
//! other workers' (Lua scripts remove what they return; PostgreSQL writes are conditional).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use domain::job::JobStatus;
use job_queue::Recorded;
use persistence::jobs;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::runtime::{self, Shared, StopReason, entry_of};

/// Most jobs handled by one reap or promotion round.
const ROUND_MAX: usize = 1000;
/// Rows per reconciliation query.
const RECONCILE_PAGE: i64 = 2000;

/// Runs `step` every `every` until `stop` fires.
pub async fn every<F, Fut>(every: Duration, stop: CancellationToken, mut step: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = interval.tick() => step().await,
        }
    }
}

/// Renews the leases of every attempt held here and stops those whose job was cancelled or
/// taken back (checked against PostgreSQL, the record).
pub async fn heartbeat(shared: &Arc<Shared>) {
    let mine: Vec<(Uuid, i64)> = shared.inflight().keys().copied().collect();
    if mine.is_empty() {
        return;
    }
    let mut ids: Vec<Uuid> = mine.iter().map(|(id, _)| *id).collect();
    ids.dedup();
    if let Err(error) = shared
        .queue
        .renew(&shared.typed(&ids), shared.lease_ms())
        .await
    {
        tracing::warn!(%error, "renewing leases failed");
    }
    let states = async {
        let mut conn = shared.pg.get().await?;
        jobs::attempt_states(&mut conn, &ids).await
    }
    .await;
    let states: HashMap<Uuid, (JobStatus, i64)> = match states {
        Ok(rows) => rows
            .into_iter()
            .map(|(id, status, fence)| (id, (status, fence)))
            .collect(),
        Err(error) => {
            tracing::warn!(%error, "checking running jobs failed");
            return;
        }
    };
    let inflight = shared.inflight();
    for key in mine {
        let reason = match states.get(&key.0) {
            Some((JobStatus::Running, current)) if *current == key.1 => continue,
            Some((JobStatus::Cancelled, current)) if *current == key.1 => StopReason::Cancelled,
            _ => StopReason::LostLease,
        };
        if let Some(attempt) = inflight.get(&key)
            && !attempt.token.is_cancelled()
        {
            attempt
                .span
                .in_scope(|| tracing::info!(fence = key.1, ?reason, "stopping an attempt"));
            attempt.stop(reason);
        }
    }
}

/// Takes back jobs whose lease expired: running ones become `pending` again (or `failed` with
/// no attempt left); queued ones whose claim was never recorded (a claim whose answer timed
/// out, a worker that died between claim and record) go back to the ready or scheduled set.
pub async fn reap(shared: &Arc<Shared>) {
    // Touched every round, so that the series exists (at 0) before the first reap.
    let reaps = metrics::counter!("worker_lease_reaps_total");
    reaps.increment(0);
    let expired = match shared.queue.take_expired(ROUND_MAX).await {
        Ok(ids) => ids,
        Err(error) => {
            tracing::warn!(%error, "reading expired leases failed");
            return;
        }
    };
    if expired.is_empty() {
        return;
    }
    // A late heartbeat of our own: renew rather than take back a job we hold.
    let (own, others): (Vec<Uuid>, Vec<Uuid>) =
        expired.into_iter().partition(|id| shared.holds(*id));
    if let Err(error) = shared
        .queue
        .renew(&shared.typed(&own), shared.lease_ms())
        .await
    {
        tracing::warn!(%error, "renewing leases failed");
    }
    if others.is_empty() {
        return;
    }
    let reaped = async {
        let mut conn = shared.pg.get().await?;
        let (reaped, settled) = persistence::dependencies::reap(&mut conn, &others).await?;
        let taken: HashSet<Uuid> = reaped.iter().map(|job| job.id).collect();
        let rest: Vec<Uuid> = others
            .iter()
            .copied()
            .filter(|id| !taken.contains(id))
            .collect();
        let queued = jobs::queue_entries_of(&mut conn, &rest).await?;
        Ok::<_, persistence::PersistenceError>((reaped, settled, queued))
    }
    .await;
    let (reaped, settled, queued) = match reaped {
        Ok(rows) => rows,
        Err(error) => {
            // The leases are gone from Redis and PostgreSQL still says `running`: only a full
            // sweep reads running jobs, so ask for one; it gives them leases again, which
            // expire and are reaped anew.
            tracing::warn!(%error, "reaping failed; the next reconcile reads every job");
            if let Err(error) = shared.queue.forget_sweep_mark().await {
                tracing::warn!(%error, "asking for a full reconcile failed");
            }
            return;
        }
    };
    reaps.increment(reaped.len() as u64);
    let mut batch = shared.queue.batch();
    for job in &reaped {
        runtime::job_span(job).in_scope(|| {
            tracing::warn!(status = %job.status, "lease expired; job taken back");
        });
        if job.status == JobStatus::Pending {
            batch.enqueue(entry_of(job));
        }
        batch.publish(job.user_id, &job.to_json());
    }
    runtime::index_settled(&mut batch, &settled);
    if !queued.is_empty() {
        tracing::warn!(count = queued.len(), "claims never recorded; jobs put back");
        runtime::index(&mut batch, &queued);
    }
    if let Err(error) = shared.queue.send(batch).await {
        tracing::warn!(%error, "re-enqueueing reaped jobs failed; the reconciler will");
    }
}

/// Moves due scheduled jobs to the ready set and records them `pending`, then sleeps until the
/// next one is due, a job is scheduled (the batch that schedules it publishes a wake-up), or
/// `PROMOTE_INTERVAL_MS` passes, whichever comes first: no polling while nothing is due.
pub async fn promote_loop(shared: Arc<Shared>, stop: CancellationToken) {
    let longest = Duration::from_millis(shared.settings.promote_interval_ms);
    loop {
        let wake = shared.wake.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        let wait = promote(&shared).await.unwrap_or(longest).min(longest);
        tokio::select! {
            () = stop.cancelled() => return,
            () = wake => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// One promotion round; returns how long until the next scheduled job is due (`None`: none, or
/// Redis could not say).
async fn promote(shared: &Arc<Shared>) -> Option<Duration> {
    let (due, next) = match shared.queue.promote_due(ROUND_MAX).await {
        Ok(found) => found,
        Err(error) => {
            tracing::warn!(%error, "promoting due jobs failed");
            return None;
        }
    };
    if due.is_empty() {
        return next;
    }
    let promoted = async {
        let mut conn = shared.pg.get().await?;
        jobs::promote(&mut conn, &due).await
    }
    .await;
    match promoted {
        Ok(rows) => {
            let mut batch = shared.queue.batch();
            for job in &rows {
                batch.publish(job.user_id, &job.to_json());
            }
            if let Err(error) = shared.queue.send(batch).await {
                tracing::warn!(%error, "publishing promotions failed");
            }
        }
        // The jobs are in the ready set already; claims accept `scheduled` rows once due.
        Err(error) => tracing::warn!(%error, "recording promotions failed"),
    }
    // More may be due at once (more than one round's worth).
    Some(if due.len() >= ROUND_MAX {
        Duration::ZERO
    } else {
        next.unwrap_or(Duration::MAX)
    })
}

/// Re-adds to Redis every job PostgreSQL has as queued or running but Redis lost. One worker
/// at a time does it (a Redis lock that expires before the next round); see [`sweep`].
pub async fn reconcile(shared: &Arc<Shared>) {
    let ttl_ms = (shared.settings.reconcile_interval_secs * 1000)
        .saturating_sub(100)
        .max(100);
    match shared.queue.try_lock("reconcile", ttl_ms).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(error) => {
            tracing::warn!(%error, "reconcile lock failed");
            return;
        }
    }
    repair_waiting(shared).await;
    if let Err(error) = mirror_paused(&shared.pg, &shared.queue).await {
        tracing::warn!(%error, "mirroring the paused types failed");
    }
    match sweep(&shared.pg, &shared.queue, shared.lease_ms()).await {
        Ok(done) => {
            let kind = if done.full { "full" } else { "changes" };
            metrics::counter!("worker_reconcile_rows_total", "sweep" => kind)
                .increment(done.scanned as u64);
            metrics::counter!("worker_reconcile_restored_total").increment(done.restored as u64);
            if !done.recorded {
                tracing::warn!(
                    full = done.full,
                    "Redis lost data during the reconcile; the next one reads every queued job"
                );
            }
            if done.restored > 0 {
                tracing::warn!(
                    restored = done.restored,
                    full = done.full,
                    "reconciler restored jobs missing from Redis"
                );
            }
        }
        Err(error) => tracing::warn!(%error, "reconcile failed"),
    }
}

/// Rows of the backlog read per reconcile round, looking for waiting jobs to settle.
const WAITING_PAGE: i64 = 1000;

/// Where the pass over the backlog goes on at the next round (`(user_id, job_id)` of
/// `unfinished_jobs`; it wraps around at the end).
static WAITING_CURSOR: std::sync::Mutex<(Uuid, Uuid)> =
    std::sync::Mutex::new((Uuid::nil(), Uuid::nil()));

/// Settles waiting jobs whose settle was missed: every parent completed, or one failed or was
/// cancelled, yet the job still waits (a crash between a parent's outcome and its children
/// cannot cause it, since both commit together; a manual change or a bug can). Reads one page
/// of the backlog (`unfinished_jobs`) per round, so the cost per round is bounded whatever
/// its size.
pub async fn repair_waiting(shared: &Arc<Shared>) {
    let after = *WAITING_CURSOR
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let repaired = async {
        let mut conn = shared.pg.get().await?;
        let page = persistence::dependencies::waiting_page(&mut conn, after, WAITING_PAGE).await?;
        let settled = persistence::dependencies::repair(&mut conn, &page.settleable).await?;
        let next = page.next.unwrap_or((Uuid::nil(), Uuid::nil()));
        Ok::<_, persistence::PersistenceError>((next, settled))
    }
    .await;
    let (next, settled) = match repaired {
        Ok(done) => done,
        Err(error) => {
            tracing::warn!(%error, "repairing waiting jobs failed");
            return;
        }
    };
    *WAITING_CURSOR
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = next;
    if settled.is_empty() {
        return;
    }
    tracing::warn!(
        promoted = settled.promoted.len(),
        cancelled = settled.cancelled.len(),
        "reconciler settled waiting jobs whose parents had finished"
    );
    metrics::counter!("worker_reconcile_settled_total")
        .increment((settled.promoted.len() + settled.cancelled.len()) as u64);
    let mut batch = shared.queue.batch();
    runtime::index_settled(&mut batch, &settled);
    if let Err(error) = shared.queue.send(batch).await {
        tracing::warn!(%error, "queueing repaired jobs failed; the next sweep will");
    }
}

/// Time subtracted from the last sweep's start: a change whose transaction began before that
/// sweep but committed after it carries an earlier `queued_at` (PostgreSQL's `now()` is the
/// transaction's start).
const SWEEP_SLACK_SECS: i64 = 5;

/// What one [`sweep`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    /// Every queued job was read (Redis lost data, or no sweep is recorded).
    pub full: bool,
    /// Rows read.
    pub scanned: usize,
    /// Jobs put back into Redis.
    pub restored: usize,
    /// Whether the sweep was recorded as the mark the next one starts from (not when Redis
    /// lost data while it ran: then the next sweep is a full one).
    pub recorded: bool,
}

/// Why a sweep stopped.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// PostgreSQL failed.
    #[error(transparent)]
    Database(#[from] persistence::PersistenceError),
    /// Redis failed.
    #[error(transparent)]
    Queue(#[from] job_queue::QueueError),
}

/// Compares PostgreSQL's queued and running jobs with Redis and re-adds what Redis lacks.
///
/// Cost: when Redis kept its data since the last sweep ([`job_queue::Queue::sweep_mark`]),
/// only the jobs that entered the queue since then are read (a job-service crash between
/// commit and enqueue, a failed Redis write after commit); only after Redis lost data
/// (flushed, restarted, failed over), or a reap could not be recorded ([`reap`]), is every
/// unfinished job read, running ones included. Either way the cost never grows with a
/// backlog that Redis still holds.
pub async fn sweep(
    pg: &persistence::PgPool,
    queue: &job_queue::Queue,
    lease_ms: i64,
) -> Result<Sweep, SweepError> {
    let mark = queue.sweep_mark().await?;
    let started = {
        let mut conn = pg
            .get()
            .await
            .map_err(persistence::PersistenceError::from)?;
        jobs::db_now(&mut conn).await?
    };
    let full = mark.since.is_none();
    let mut done = Sweep {
        full,
        scanned: 0,
        restored: 0,
        recorded: false,
    };
    let mut after = match mark.since {
        Some(since) => (
            since - chrono::Duration::seconds(SWEEP_SLACK_SECS),
            Uuid::nil(),
        ),
        None => (chrono::DateTime::UNIX_EPOCH, Uuid::nil()),
    };
    loop {
        let rows = {
            let mut conn = pg
                .get()
                .await
                .map_err(persistence::PersistenceError::from)?;
            jobs::unfinished_after(&mut conn, after, RECONCILE_PAGE).await?
        };
        let Some(last) = rows.last() else { break };
        after = (last.queued_at, last.id);
        done.scanned += rows.len();
        done.restored += restore(pg, queue, &rows, lease_ms).await?;
        if rows.len() < RECONCILE_PAGE as usize {
            break;
        }
    }
    done.recorded = queue.set_sweep_mark(&mark, started).await?;
    Ok(done)
}

/// Re-adds the jobs among `rows` that Redis lacks; returns how many.
async fn restore(
    pg: &persistence::PgPool,
    queue: &job_queue::Queue,
    rows: &[jobs::QueueEntry],
    lease_ms: i64,
) -> Result<usize, SweepError> {
    let missing = queue.missing(&recorded(rows)).await?;
    if missing.is_empty() {
        return Ok(0);
    }
    // Re-read the few missing rows, so that jobs claimed and finished during the scan are not
    // queued again.
    let fresh = {
        let mut conn = pg
            .get()
            .await
            .map_err(persistence::PersistenceError::from)?;
        jobs::queue_entries_of(&mut conn, &missing).await?
    };
    Ok(queue.reconcile(&recorded(&fresh), lease_ms).await?.len())
}

fn recorded(rows: &[jobs::QueueEntry]) -> Vec<Recorded> {
    rows.iter()
        .map(|row| {
            let entry = runtime::entry(row.id, row.user_id, row.priority, row.job_type);
            match row.status {
                JobStatus::Pending => Recorded::Pending(entry),
                JobStatus::Scheduled => {
                    Recorded::Scheduled(entry, row.run_at.unwrap_or_else(Utc::now))
                }
                _ => Recorded::Running(row.id, entry.job_type),
            }
        })
        .collect()
}

/// Writes Redis's mirror of the paused types from PostgreSQL (the record), unless the mirror
/// is as new already. Claims find nothing while Redis has no mirror (after a flush), and then
/// call this; the reconciler calls it every round, so a mirror write lost by the job service
/// is repaired within `RECONCILE_INTERVAL_SECS`.
pub async fn mirror_paused(
    pg: &persistence::PgPool,
    queue: &job_queue::Queue,
) -> Result<(), SweepError> {
    let state = {
        let mut conn = pg
            .get()
            .await
            .map_err(persistence::PersistenceError::from)?;
        persistence::queue_pause::get(&mut conn).await?
    };
    let paused: Vec<job_queue::JobType> = state
        .paused_types
        .iter()
        .filter_map(|t| t.parse().ok())
        .collect();
    queue.mirror_paused(state.version, &paused).await?;
    Ok(())
}

/// Updates the `queue_depth{state}` gauge.
pub async fn depth(shared: &Arc<Shared>) {
    match shared.queue.depth().await {
        Ok(depth) => {
            metrics::gauge!("queue_depth", "state" => "ready").set(depth.ready as f64);
            metrics::gauge!("queue_depth", "state" => "scheduled").set(depth.scheduled as f64);
            metrics::gauge!("queue_depth", "state" => "running").set(depth.running as f64);
        }
        Err(error) => tracing::debug!(%error, "reading queue depth failed"),
    }
}
