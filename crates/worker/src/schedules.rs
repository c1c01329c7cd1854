//! The scheduler: every worker fires due schedules (see [`persistence::schedules::fire_due`]
//! for why that creates exactly one job per due time however many workers run).
//!
//! It does not poll. After each round it sleeps until the earliest `next_run_at` of any
//! active schedule (read from PostgreSQL with PostgreSQL's clock, so a worker's own clock does
//! not matter), until the job service publishes that a schedule was created or resumed (its
//! first due time may be earlier), or at most `SCHEDULE_MAX_SLEEP_SECS`, a safety net for a
//! wake-up lost while Redis was unreachable.
//!
//! The jobs it creates are `pending`; they are added to the Redis ready set after the
//! transaction commits. If that write fails (or Redis lost everything), the reconciler finds
//! them in PostgreSQL like any other job: Redis plays no part in deciding what fires.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::schedule::CronSchedule;
use job_queue::ReadySignal;
use persistence::schedules::{self, Schedule};
use tokio_util::sync::CancellationToken;

use crate::runtime::{Shared, entry_of};

/// Most schedules fired by one transaction.
pub const FIRE_BATCH: i64 = 100;
/// Pause after a database error.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);
/// Pause when a schedule is due but another worker holds it (it is firing it right now).
const HELD_ELSEWHERE: Duration = Duration::from_millis(50);

/// Fires due schedules until `stop` fires, sleeping in between (see the module docs).
pub async fn scheduler_loop(shared: Arc<Shared>, wake: ReadySignal, stop: CancellationToken) {
    let longest = Duration::from_secs(shared.settings.schedule_max_sleep_secs);
    loop {
        let woken = wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let wait = fire_round(&shared).await.min(longest);
        tokio::select! {
            () = stop.cancelled() => return,
            () = woken => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Fires everything due now; returns how long until the next due time.
async fn fire_round(shared: &Shared) -> Duration {
    loop {
        let fired = async {
            let mut conn = shared.pg.get().await?;
            schedules::fire_due(&mut conn, FIRE_BATCH, next_due_time).await
        }
        .await;
        let fired = match fired {
            Ok(fired) => fired,
            Err(error) => {
                tracing::warn!(%error, "firing schedules failed; trying again shortly");
                return RETRY_AFTER_ERROR;
            }
        };
        if !fired.jobs.is_empty() {
            metrics::counter!("worker_schedule_jobs_total").increment(fired.jobs.len() as u64);
            let mut batch = shared.queue.batch();
            for job in &fired.jobs {
                tracing::debug!(job = %job.id, schedule = ?job.schedule_id, "schedule fired");
                batch.enqueue(entry_of(job));
                batch.publish(job.user_id, &job.to_json());
            }
            if let Err(error) = shared.queue.send(batch).await {
                tracing::warn!(%error, count = fired.jobs.len(), "enqueueing scheduled jobs failed; the reconciler will");
            }
        }
        if (fired.schedules as i64) < FIRE_BATCH {
            break;
        }
    }
    let next = async {
        let mut conn = shared.pg.get().await?;
        schedules::next_due(&mut conn).await
    }
    .await;
    match next {
        Ok((Some(next), now)) if next > now => (next - now).to_std().unwrap_or(HELD_ELSEWHERE),
        Ok((Some(_), _)) => HELD_ELSEWHERE,
        Ok((None, _)) => Duration::MAX,
        Err(error) => {
            tracing::warn!(%error, "reading the next due schedule failed");
            RETRY_AFTER_ERROR
        }
    }
}

/// The first due time of `schedule` after `after`. A stored expression that no longer parses
/// (it was checked when created) stops the schedule, loudly.
fn next_due_time(schedule: &Schedule, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match CronSchedule::parse(&schedule.cron, Some(&schedule.timezone)) {
        Ok(cron) => cron.next_after(after),
        Err(errors) => {
            tracing::error!(schedule = %schedule.id, ?errors, "a stored schedule no longer parses; it stops");
            None
        }
    }
}
