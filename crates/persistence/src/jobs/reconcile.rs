//! What the queue reconciler reads: [`QueueEntry`], [`unfinished_after`],
//! [`queue_entries_of`] and PostgreSQL's clock ([`db_now`]).

use chrono::{DateTime, Utc};
use diesel::IntoSql as _;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Int2, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::job::{JobStatus, JobType};
use uuid::Uuid;

use crate::PersistenceError;

/// What the reconciler needs to put a job back in the dispatch index.
#[derive(Debug, Clone, QueryableByName)]
pub struct QueueEntry {
    /// The job.
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: Uuid,
    /// Its owner.
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub user_id: Uuid,
    /// `pending`, `scheduled` or `running`.
    #[diesel(sql_type = Text)]
    pub status: JobStatus,
    /// Its priority.
    #[diesel(sql_type = Int2)]
    pub priority: i16,
    /// Its type.
    #[diesel(sql_type = Text)]
    pub job_type: JobType,
    /// Its submission time.
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    /// When due (scheduled jobs).
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub run_at: Option<DateTime<Utc>>,
    /// When it last entered the queue (`unfinished_jobs.queued_at`: the position of a sweep).
    #[diesel(sql_type = Timestamptz)]
    pub queued_at: DateTime<Utc>,
}

/// The columns of [`QueueEntry`], from `jobs j` joined with `unfinished_jobs u`.
const QUEUE_ENTRY: &str = "j.id, j.user_id, j.status, j.priority, j.type AS job_type, j.created_at, j.run_at, u.queued_at";

/// Up to `limit` `pending`, `scheduled` or `running` jobs that entered the queue after `after`
/// (`(queued_at, id)`), in that order. It reads `unfinished_jobs` (the backlog, never the
/// finished history) through its `(queued_at, job_id)` index, so a sweep of what changed since
/// the last one reads only those rows, whatever the backlog; from the epoch, it reads them all.
pub async fn unfinished_after(
    conn: &mut AsyncPgConnection,
    after: (DateTime<Utc>, Uuid),
    limit: i64,
) -> Result<Vec<QueueEntry>, PersistenceError> {
    let sql = format!(
        "SELECT {QUEUE_ENTRY} FROM unfinished_jobs u JOIN jobs j ON j.id = u.job_id \
         WHERE (u.queued_at, u.job_id) > ($1, $2) \
           AND j.status IN ('pending', 'scheduled', 'running') \
         ORDER BY u.queued_at, u.job_id LIMIT $3"
    );
    Ok(diesel::sql_query(sql)
        .bind::<Timestamptz, _>(after.0)
        .bind::<diesel::sql_types::Uuid, _>(after.1)
        .bind::<BigInt, _>(limit)
        .load(conn)
        .await?)
}

/// PostgreSQL's clock (`now()`), the clock of every `updated_at`.
pub async fn db_now(conn: &mut AsyncPgConnection) -> Result<DateTime<Utc>, PersistenceError> {
    Ok(diesel::select(diesel::dsl::now.into_sql::<Timestamptz>())
        .get_result(conn)
        .await?)
}

/// The current queue state of the jobs `ids` that are queued or running (a fresh re-read of
/// what a scan found missing from Redis).
pub async fn queue_entries_of(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> Result<Vec<QueueEntry>, PersistenceError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {QUEUE_ENTRY} FROM jobs j \
         JOIN unfinished_jobs u ON u.user_id = j.user_id AND u.job_id = j.id \
         WHERE j.id = ANY($1) AND j.status IN ('pending', 'scheduled', 'running')"
    );
    Ok(diesel::sql_query(sql)
        .bind::<Array<diesel::sql_types::Uuid>, _>(ids)
        .load(conn)
        .await?)
}
