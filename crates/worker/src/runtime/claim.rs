//! Claims: free execution slots, a batch of ready jobs popped and leased by one Lua call, their
//! attempts recorded in PostgreSQL by one `UPDATE`, then each started on a task of its own.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use domain::job::JobStatus;
use persistence::jobs::{self, Job};
use tracing::Instrument as _;
use uuid::Uuid;

use super::execute::execute;
use super::{Shared, index, job_span, pause, start_latency};

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
        for (job, permit) in claimed.into_iter().zip(permits) {
            if let Some(latency) = start_latency(&job) {
                metrics::histogram!("worker_job_start_latency_seconds", "type" => job.job_type.as_str())
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
        // The `running` events go out beside the next claim, not before it: this loop's round
        // trips are what a ready job waits for. (A job's later events come from the recorder,
        // after at least one PostgreSQL write, so they follow this one.)
        let queue = shared.queue.clone();
        tokio::spawn(async move {
            if let Err(error) = queue.send(batch).await {
                tracing::warn!(%error, "publishing running events failed");
            }
        });
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
        .filter(|row| row.status == JobStatus::Running)
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
