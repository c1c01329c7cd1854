//! What the worker's runtime calls: claim, finish (with [`Outcome`]), set_progress,
//! attempt_states, reap and promote, each fenced as the module documentation of
//! [`crate::jobs`] describes.

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Int2, Jsonb, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::job::JobStatus;
use serde_json::Value;
use uuid::Uuid;

use super::{JOB_COLUMNS, Job};
use crate::PersistenceError;
use crate::schema::jobs;

/// Marks the jobs `ids` that are ready to run as `running` for a new attempt (`attempts` and
/// `fence` + 1) and returns them. Ready means `pending`, or `scheduled` and due (a promotion
/// whose PostgreSQL write has not landed yet); a `scheduled` job not yet due (a stale ready
/// entry) keeps its backoff. Ids not ready (cancelled, claimed elsewhere, not due) are left out.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> Result<Vec<Job>, PersistenceError> {
    update_each(
        conn,
        ids,
        "status = 'running', attempts = j.attempts + 1, fence = j.fence + 1, progress = 0, \
         started_at = now(), updated_at = now()",
        "(j.status = 'pending' OR (j.status = 'scheduled' AND j.run_at <= now()))",
    )
    .await
}

/// Applies `set` to the jobs `ids` that match `filter` and returns the changed rows; one
/// statement whatever the number of ids, none for no ids.
async fn update_each(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
    set: &str,
    filter: &str,
) -> Result<Vec<Job>, PersistenceError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "UPDATE jobs j SET {set} WHERE j.id = ANY($1) AND {filter} RETURNING {JOB_COLUMNS}"
    );
    Ok(diesel::sql_query(sql)
        .bind::<Array<diesel::sql_types::Uuid>, _>(ids)
        .load(conn)
        .await?)
}

/// The end of one attempt, written by [`finish`].
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The job.
    pub id: Uuid,
    /// The fence of the attempt.
    pub fence: i64,
    /// `completed`, `failed` (no attempts left), `scheduled` (retry after `retry_in_ms`) or
    /// `pending` (released unfinished at shutdown: the attempt is given back, so a job released
    /// on its last attempt still gets it and `attempts` never exceeds `max_attempts`).
    pub status: JobStatus,
    /// The result of a completed job.
    pub result: Option<Value>,
    /// The error of a failed attempt.
    pub last_error: Option<String>,
    /// Retry delay, for `scheduled`: `run_at` becomes PostgreSQL's `now()` plus this (no
    /// worker's clock decides it).
    pub retry_in_ms: Option<i64>,
}

/// Records many attempt outcomes in one statement, each fenced by `status = 'running' AND
/// fence = <its fence>`; returns the rows that changed (stale outcomes are dropped).
pub async fn finish(
    conn: &mut AsyncPgConnection,
    outcomes: &[Outcome],
) -> Result<Vec<Job>, PersistenceError> {
    if outcomes.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = outcomes.iter().map(|o| o.id).collect();
    let fences: Vec<i64> = outcomes.iter().map(|o| o.fence).collect();
    let statuses: Vec<JobStatus> = outcomes.iter().map(|o| o.status).collect();
    let results: Vec<Option<Value>> = outcomes.iter().map(|o| o.result.clone()).collect();
    let errors: Vec<Option<String>> = outcomes.iter().map(|o| o.last_error.clone()).collect();
    let delays: Vec<Option<i64>> = outcomes.iter().map(|o| o.retry_in_ms).collect();
    let sql = format!(
        "UPDATE jobs j SET status = u.status, \
           attempts = CASE WHEN u.status = 'pending' THEN j.attempts - 1 ELSE j.attempts END, \
           result = COALESCE(u.result, j.result), \
           last_error = CASE WHEN u.status = 'completed' THEN j.last_error ELSE COALESCE(u.last_error, j.last_error) END, \
           progress = CASE WHEN u.status = 'completed' THEN 100 ELSE j.progress END, \
           run_at = CASE WHEN u.status = 'scheduled' \
             THEN now() + u.delay_ms * interval '1 millisecond' ELSE j.run_at END, \
           finished_at = CASE WHEN u.status IN ('completed', 'failed') THEN now() ELSE NULL END, \
           updated_at = now() \
         FROM UNNEST($1::uuid[], $2::int8[], $3::text[], $4::jsonb[], $5::text[], $6::int8[]) \
           AS u(id, fence, status, result, last_error, delay_ms) \
         WHERE j.id = u.id AND j.status = 'running' AND j.fence = u.fence \
         RETURNING {JOB_COLUMNS}"
    );
    Ok(diesel::sql_query(sql)
        .bind::<Array<diesel::sql_types::Uuid>, _>(ids)
        .bind::<Array<BigInt>, _>(fences)
        .bind::<Array<Text>, _>(statuses)
        .bind::<Array<Nullable<Jsonb>>, _>(results)
        .bind::<Array<Nullable<Text>>, _>(errors)
        .bind::<Array<Nullable<BigInt>>, _>(delays)
        .load(conn)
        .await?)
}

/// Records the progress of a running attempt (fenced); `None` when the attempt is no longer
/// the job's current one (cancelled, reaped).
pub async fn set_progress(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    fence: i64,
    progress: i16,
) -> Result<Option<Job>, PersistenceError> {
    let sql = format!(
        "UPDATE jobs j SET progress = $3, updated_at = now() \
         WHERE j.id = $1 AND j.status = 'running' AND j.fence = $2 AND j.progress <> $3 \
         RETURNING {JOB_COLUMNS}"
    );
    Ok(diesel::sql_query(sql)
        .bind::<diesel::sql_types::Uuid, _>(id)
        .bind::<BigInt, _>(fence)
        .bind::<Int2, _>(progress)
        .get_result(conn)
        .await
        .optional()?)
}

/// The status and current attempt (`fence`) of every job in `ids`, so a worker can tell
/// whether its attempts are still the jobs' current ones (and why not: cancelled, or taken back).
pub async fn attempt_states(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, JobStatus, i64)>, PersistenceError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(jobs::table
        .filter(jobs::id.eq_any(ids))
        .select((jobs::id, jobs::status, jobs::fence))
        .load(conn)
        .await?)
}

/// Takes back running jobs whose lease expired: back to `pending`, or `failed` when no
/// attempt is left. Returns the changed rows.
pub async fn reap(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> Result<Vec<Job>, PersistenceError> {
    update_each(
        conn,
        ids,
        "status = CASE WHEN j.attempts >= j.max_attempts THEN 'failed' ELSE 'pending' END, \
         last_error = 'attempt ' || j.attempts || ' lost its lease (worker stopped or hung)', \
         finished_at = CASE WHEN j.attempts >= j.max_attempts THEN now() ELSE NULL END, \
         updated_at = now()",
        "j.status = 'running'",
    )
    .await
}

/// Moves due `scheduled` jobs among `ids` to `pending`; returns the changed rows.
pub async fn promote(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> Result<Vec<Job>, PersistenceError> {
    update_each(
        conn,
        ids,
        "status = 'pending', updated_at = now()",
        "j.status = 'scheduled'",
    )
    .await
}
