//! The worker's periodic duties: heartbeats (lease renewal and cancellation checks), reaping
//! expired leases, promoting due scheduled jobs, reconciling Redis with PostgreSQL, and the
//! queue-depth gauge. Every worker runs all of them; each is safe to run concurrently with
//! other workers' (Lua scripts remove what they return; PostgreSQL writes are conditional).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use job_queue::Recorded;
use persistence::jobs::{self, Scan};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::runtime::{Shared, StopReason, entry_of};

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

/// Renews the leases of every running attempt and stops those whose job was cancelled or
/// taken back (checked against PostgreSQL, the record).
pub async fn heartbeat(shared: &Arc<Shared>) {
    let mine: Vec<(Uuid, i64)> = shared
        .inflight()
        .iter()
        .map(|(id, f)| (*id, f.fence))
        .collect();
    if mine.is_empty() {
        return;
    }
    let ids: Vec<Uuid> = mine.iter().map(|(id, _)| *id).collect();
    if let Err(error) = shared.queue.renew(&ids, shared.lease_ms()).await {
        tracing::warn!(%error, "renewing leases failed");
    }
    let states = async {
        let mut conn = shared.pg.get().await?;
        jobs::attempt_states(&mut conn, &ids).await
    }
    .await;
    let states: HashMap<Uuid, (String, i64)> = match states {
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
    for (id, fence) in mine {
        let reason = match states.get(&id) {
            Some((status, current)) if status == "running" && *current == fence => continue,
            Some((status, _)) if status == "cancelled" => StopReason::Cancelled,
            _ => StopReason::LostLease,
        };
        if let Some(attempt) = inflight.get(&id) {
            tracing::info!(job = %id, ?reason, "stopping a running attempt");
            attempt.stop(reason);
        }
    }
}

/// Takes back jobs whose lease expired: `pending` again (or `failed` with no attempt left).
pub async fn reap(shared: &Arc<Shared>) {
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
    // A late heartbeat of our own: renew rather than take back a job we are running.
    let (own, others): (Vec<Uuid>, Vec<Uuid>) = {
        let inflight = shared.inflight();
        expired
            .into_iter()
            .partition(|id| inflight.contains_key(id))
    };
    if let Err(error) = shared.queue.renew(&own, shared.lease_ms()).await {
        tracing::warn!(%error, "renewing leases failed");
    }
    let reaped = async {
        let mut conn = shared.pg.get().await?;
        jobs::reap(&mut conn, &others).await
    }
    .await;
    let reaped = match reaped {
        Ok(rows) => rows,
        Err(error) => {
            // The leases are gone from Redis; the reconciler leases the jobs again.
            tracing::warn!(%error, "reaping failed");
            return;
        }
    };
    let mut batch = shared.queue.batch();
    for job in &reaped {
        tracing::warn!(job = %job.id, attempt = job.attempts, status = %job.status, "lease expired; job taken back");
        if job.status == "pending" {
            batch.enqueue(entry_of(job));
        }
        batch.publish(job.user_id, &job.to_json());
    }
    if let Err(error) = shared.queue.send(batch).await {
        tracing::warn!(%error, "re-enqueueing reaped jobs failed; the reconciler will");
    }
}

/// Moves due scheduled jobs to the ready set and records them `pending`.
pub async fn promote(shared: &Arc<Shared>) {
    let due = match shared.queue.promote_due(ROUND_MAX).await {
        Ok(ids) => ids,
        Err(error) => {
            tracing::warn!(%error, "promoting due jobs failed");
            return;
        }
    };
    if due.is_empty() {
        return;
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
        // The jobs are in the ready set already; claims accept `scheduled` rows too.
        Err(error) => tracing::warn!(%error, "recording promotions failed"),
    }
}

/// Re-adds to Redis every job PostgreSQL has as queued or running but Redis lost (after a
/// flush or a restart of Redis, or a crash between commit and enqueue). One worker at a time
/// does it (a Redis lock that expires before the next round).
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
    let mut added = 0;
    for scan in [Scan::Queued, Scan::Running] {
        let mut after = None;
        loop {
            let rows = async {
                let mut conn = shared.pg.get().await?;
                jobs::queue_entries(&mut conn, scan, after, RECONCILE_PAGE).await
            }
            .await;
            let rows = match rows {
                Ok(rows) => rows,
                Err(error) => {
                    tracing::warn!(%error, "reconcile scan failed");
                    return;
                }
            };
            let Some(last) = rows.last() else { break };
            after = Some(last.id);
            let missing = match shared.queue.missing(&recorded(&rows)).await {
                Ok(ids) => ids,
                Err(error) => {
                    tracing::warn!(%error, "reconcile check failed");
                    return;
                }
            };
            if missing.is_empty() {
                if rows.len() < RECONCILE_PAGE as usize {
                    break;
                }
                continue;
            }
            // Re-read the few missing rows, so that jobs claimed and finished during the
            // scan are not queued again.
            let fresh = async {
                let mut conn = shared.pg.get().await?;
                jobs::queue_entries_of(&mut conn, &missing).await
            }
            .await;
            let fresh = match fresh {
                Ok(rows) => rows,
                Err(error) => {
                    tracing::warn!(%error, "reconcile re-read failed");
                    return;
                }
            };
            match shared
                .queue
                .reconcile(&recorded(&fresh), shared.lease_ms())
                .await
            {
                Ok(ids) => added += ids.len(),
                Err(error) => {
                    tracing::warn!(%error, "reconcile write failed");
                    return;
                }
            }
            if rows.len() < RECONCILE_PAGE as usize {
                break;
            }
        }
    }
    if added > 0 {
        tracing::warn!(added, "reconciler restored jobs missing from Redis");
    }
}

fn recorded(rows: &[jobs::QueueEntry]) -> Vec<Recorded> {
    rows.iter()
        .map(|row| {
            let entry = job_queue::Entry {
                id: row.id,
                priority: row.priority,
                created_at: row.created_at,
            };
            match row.status.as_str() {
                "pending" => Recorded::Pending(entry),
                "scheduled" => Recorded::Scheduled(entry, row.run_at.unwrap_or_else(Utc::now)),
                _ => Recorded::Running(row.id),
            }
        })
        .collect()
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
