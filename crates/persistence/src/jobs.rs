//! The `jobs` table: the record of every job.
//!
//! Status writes made by workers are *fenced*: a claim increments `fence` (and `attempts`), and
//! every later write of that attempt matches `status = 'running' AND fence = <claimed fence>`.
//! An attempt that lost its lease (reaped, cancelled, released) therefore cannot overwrite a
//! newer attempt's outcome, and a job can never be recorded as completed twice: the second
//! write matches no row. Batch variants use `UNNEST` so that one statement carries many jobs.

use chrono::{DateTime, SubsecRound as _, Utc};
use diesel::IntoSql as _;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Int2, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::job_view::JobView;
use serde_json::Value;
use uuid::Uuid;

use crate::PersistenceError;
use crate::schema::{jobs, unfinished_jobs, users};

/// The columns of [`Job`] for hand-written SQL (`type` is read as `job_type`).
pub(crate) const JOB_COLUMNS: &str = "j.id, j.user_id, j.type AS job_type, j.data, j.priority, j.status, \
    j.attempts, j.max_attempts, j.progress, j.result, j.last_error, j.run_at, j.idempotency_key, \
    j.fence, j.created_at, j.updated_at, j.started_at, j.finished_at, j.request_id, \
    j.depends_on, j.schedule_id";

/// One row of `jobs`.
#[derive(Debug, Clone, PartialEq, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = jobs, check_for_backend(diesel::pg::Pg))]
pub struct Job {
    /// Job id (UUID v7, so ids sort by creation time).
    pub id: Uuid,
    /// The owner.
    pub user_id: Uuid,
    /// The job type name (`noop`, `sleep`, …).
    pub job_type: String,
    /// The submitted data.
    pub data: Value,
    /// Dispatch priority, −1000..=1000.
    pub priority: i16,
    /// Lifecycle state (`waiting`, `pending`, `scheduled`, `running`, `completed`, `failed`,
    /// `cancelled`).
    pub status: String,
    /// Claimed attempts so far.
    pub attempts: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// 0..=100.
    pub progress: i16,
    /// The handler's result, once completed.
    pub result: Option<Value>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When a scheduled job becomes due.
    pub run_at: Option<DateTime<Utc>>,
    /// The submitter's `Idempotency-Key`, if any.
    pub idempotency_key: Option<String>,
    /// Fencing token of the current attempt (never shown to clients).
    pub fence: i64,
    /// Submission time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Start of the latest attempt.
    pub started_at: Option<DateTime<Utc>>,
    /// When the job reached `completed` or `failed` (or `cancelled`).
    pub finished_at: Option<DateTime<Utc>>,
    /// The id of the HTTP request that submitted it (`X-Request-Id`), for the worker's logs.
    pub request_id: Option<String>,
    /// Its parents (jobs it waits for), in the order given; empty for most jobs.
    pub depends_on: Vec<Uuid>,
    /// The schedule that created it, if any (see [`crate::schedules`]).
    pub schedule_id: Option<Uuid>,
}

impl Job {
    /// The job object of the API (`GET /api/jobs/{id}`, `jobUpdated` events).
    pub fn view(&self) -> JobView<'_> {
        JobView {
            id: self.id,
            user_id: self.user_id,
            job_type: &self.job_type,
            data: &self.data,
            priority: self.priority,
            status: &self.status,
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            progress: self.progress,
            result: self.result.as_ref(),
            last_error: self.last_error.as_deref(),
            run_at: self.run_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            depends_on: &self.depends_on,
            schedule_id: self.schedule_id,
        }
    }

    /// [`Job::view`] as a JSON value.
    pub fn to_json(&self) -> Value {
        // Serializing the view cannot fail: it has no maps with non-string keys.
        serde_json::to_value(self.view()).unwrap_or(Value::Null)
    }

    /// [`Job::view`] as JSON text, serialized directly without building a
    /// `serde_json::Value` first (a batch renders each job once, for its event and its answer).
    pub fn to_json_string(&self) -> String {
        // As above, this cannot fail; the fallback only keeps the signature infallible.
        serde_json::to_string(&self.view()).unwrap_or_else(|_| "null".to_owned())
    }
}

/// A job to insert.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = jobs)]
pub struct NewJob {
    /// New id (UUID v7).
    pub id: Uuid,
    /// The owner.
    pub user_id: Uuid,
    /// Type name.
    pub job_type: String,
    /// Data (already validated).
    pub data: Value,
    /// Priority.
    pub priority: i16,
    /// `pending`, or `scheduled` for a future `run_at`.
    pub status: String,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// When due, for a scheduled job.
    pub run_at: Option<DateTime<Utc>>,
    /// The submitter's `Idempotency-Key`.
    pub idempotency_key: Option<String>,
    /// Submission time (also the queue's FIFO order within a priority).
    pub created_at: DateTime<Utc>,
    /// Same as `created_at`.
    pub updated_at: DateTime<Utc>,
    /// The id of the submitting HTTP request.
    pub request_id: Option<String>,
}

impl NewJob {
    /// The row as an insert of this job stores it: every column as given or the table's
    /// default (no attempts, no progress, fence 0, `updated_at` = `created_at`). Timestamps
    /// are cut to whole microseconds, as PostgreSQL keeps them, so the job answered is the job
    /// read back later.
    pub fn into_stored(self) -> Job {
        let created_at = self.created_at.trunc_subsecs(6);
        Job {
            id: self.id,
            user_id: self.user_id,
            job_type: self.job_type,
            data: self.data,
            priority: self.priority,
            status: self.status,
            attempts: 0,
            max_attempts: self.max_attempts,
            progress: 0,
            result: None,
            last_error: None,
            run_at: self.run_at.map(|at| at.trunc_subsecs(6)),
            idempotency_key: self.idempotency_key,
            fence: 0,
            created_at,
            updated_at: self.updated_at.trunc_subsecs(6),
            started_at: None,
            finished_at: None,
            request_id: self.request_id,
            depends_on: Vec::new(),
            schedule_id: None,
        }
    }
}

/// What [`insert`] did.
#[derive(Debug, Clone)]
pub enum Inserted {
    /// A new row.
    Created(Job),
    /// The user's earlier job with the same idempotency key.
    Existing(Job),
}

/// Inserts `job`; with an idempotency key already used by the same user, returns that job
/// instead (`INSERT … ON CONFLICT DO NOTHING`, then a read: concurrent duplicates create one row).
pub async fn insert(
    conn: &mut AsyncPgConnection,
    job: &NewJob,
) -> Result<Inserted, PersistenceError> {
    // `INSERT … SELECT <binds>` rather than `INSERT … VALUES`: diesel marks every single-row
    // VALUES insert as not cacheable (its columns may be DEFAULT), so it would be parsed and
    // planned on every submit; this form is prepared once per connection (measured: ~40% more
    // inserts per second from PostgreSQL).
    let values = diesel::select((
        job.id.into_sql::<diesel::sql_types::Uuid>(),
        job.user_id.into_sql::<diesel::sql_types::Uuid>(),
        job.job_type.as_str().into_sql::<Text>(),
        (&job.data).into_sql::<Jsonb>(),
        job.priority.into_sql::<Int2>(),
        job.status.as_str().into_sql::<Text>(),
        job.max_attempts.into_sql::<diesel::sql_types::Int4>(),
        job.run_at.into_sql::<Nullable<Timestamptz>>(),
        job.idempotency_key.as_deref().into_sql::<Nullable<Text>>(),
        job.created_at.into_sql::<Timestamptz>(),
        job.updated_at.into_sql::<Timestamptz>(),
        job.request_id.as_deref().into_sql::<Nullable<Text>>(),
    ));
    let created = diesel::insert_into(jobs::table)
        .values(values)
        .into_columns((
            jobs::id,
            jobs::user_id,
            jobs::job_type,
            jobs::data,
            jobs::priority,
            jobs::status,
            jobs::max_attempts,
            jobs::run_at,
            jobs::idempotency_key,
            jobs::created_at,
            jobs::updated_at,
            jobs::request_id,
        ))
        .on_conflict_do_nothing()
        .returning(Job::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    if let Some(created) = created {
        return Ok(Inserted::Created(created));
    }
    let Some(key) = &job.idempotency_key else {
        // Only the idempotency index can make ON CONFLICT skip a fresh v7 id.
        return Err(PersistenceError::Conflict {
            constraint: "jobs_pkey".to_owned(),
        });
    };
    let existing = jobs::table
        .filter(jobs::user_id.eq(job.user_id))
        .filter(jobs::idempotency_key.eq(key))
        .select(Job::as_select())
        .first(conn)
        .await?;
    Ok(Inserted::Existing(existing))
}

/// The job `id`, if it exists and (when `owner` is given) belongs to `owner`.
pub async fn find(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    owner: Option<Uuid>,
) -> Result<Option<Job>, PersistenceError> {
    // Two static queries rather than one boxed query: static ones are prepared once per
    // connection and reused, which matters on the hottest read.
    let query = jobs::table.find(id).select(Job::as_select());
    let job = match owner {
        Some(owner) => query.filter(jobs::user_id.eq(owner)).first(conn).await,
        None => query.first(conn).await,
    };
    Ok(job.optional()?)
}

/// Filters and position of a page of [`list`].
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Only this user's jobs (`None`: everyone's).
    pub user_id: Option<Uuid>,
    /// Only this status.
    pub status: Option<String>,
    /// Only this type.
    pub job_type: Option<String>,
    /// Strictly older than this `(created_at, id)` (the page cursor).
    pub before: Option<(DateTime<Utc>, Uuid)>,
    /// Page size.
    pub limit: i64,
}

/// The statuses of a job that has not finished: the rows of `unfinished_jobs`.
pub const UNFINISHED: [&str; 4] = ["waiting", "pending", "scheduled", "running"];

/// A page of jobs, newest first, by keyset on `(created_at DESC, id DESC)` (served by the
/// `jobs_by_user` and `jobs_by_created` indexes, so a page costs the same wherever it is in a
/// million rows).
pub async fn list(
    conn: &mut AsyncPgConnection,
    query: &ListQuery,
) -> Result<Vec<Job>, PersistenceError> {
    let mut q = jobs::table.select(Job::as_select()).into_boxed();
    if let Some(user) = query.user_id {
        q = q.filter(jobs::user_id.eq(user));
    }
    if let Some(status) = &query.status {
        q = q.filter(jobs::status.eq(status.clone()));
        // No index of `jobs` names `status` (state changes stay heap-only updates): the
        // unfinished ones are found through `unfinished_jobs`, the backlog; a final status
        // filters the newest-first scan of the history, where most rows are final.
        if UNFINISHED.contains(&status.as_str()) {
            let mut backlog = unfinished_jobs::table
                .select(unfinished_jobs::job_id)
                .into_boxed();
            if let Some(user) = query.user_id {
                backlog = backlog.filter(unfinished_jobs::user_id.eq(user));
            }
            q = q.filter(jobs::id.eq_any(backlog));
        }
    }
    if let Some(job_type) = &query.job_type {
        q = q.filter(jobs::job_type.eq(job_type.clone()));
    }
    if let Some((at, id)) = query.before {
        // A row comparison, so PostgreSQL uses it as an index bound rather than a filter.
        q = q.filter(
            diesel::dsl::sql::<Bool>("(jobs.created_at, jobs.id) < (")
                .bind::<Timestamptz, _>(at)
                .sql(", ")
                .bind::<diesel::sql_types::Uuid, _>(id)
                .sql(")"),
        );
    }
    Ok(q.order((jobs::created_at.desc(), jobs::id.desc()))
        .limit(query.limit)
        .load(conn)
        .await?)
}

/// What [`cancel`] or [`retry`] did.
#[derive(Debug, Clone)]
pub enum Transition {
    /// Changed; `was` is the status it had.
    Done {
        /// The job after the change.
        job: Job,
        /// Its status before.
        was: String,
    },
    /// The job's status does not allow the change.
    Refused(Job),
    /// No such job (for this owner).
    NotFound,
}

/// Applies `set` to the job `id` (of `owner`, when given) if its status is one of `from`
/// (an SQL list), then tells apart a refused change from a job that does not exist.
async fn transition(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    owner: Option<Uuid>,
    set: &str,
    from: &str,
) -> Result<Transition, PersistenceError> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(embed)]
        job: Job,
        #[diesel(sql_type = Text)]
        was: String,
    }
    let sql = format!(
        "UPDATE jobs j SET {set}, updated_at = now() \
         FROM (SELECT id, status FROM jobs WHERE id = $1 FOR UPDATE) old \
         WHERE j.id = old.id AND ($2::uuid IS NULL OR j.user_id = $2) AND j.status IN ({from}) \
         RETURNING {JOB_COLUMNS}, old.status AS was"
    );
    let row: Option<Row> = diesel::sql_query(sql)
        .bind::<diesel::sql_types::Uuid, _>(id)
        .bind::<Nullable<diesel::sql_types::Uuid>, _>(owner)
        .get_result(conn)
        .await
        .optional()?;
    if let Some(row) = row {
        return Ok(Transition::Done {
            job: row.job,
            was: row.was,
        });
    }
    Ok(match find(conn, id, owner).await? {
        Some(job) => Transition::Refused(job),
        None => Transition::NotFound,
    })
}

/// Cancels a `waiting`, `pending`, `scheduled` or `running` job (its waiting descendants:
/// [`crate::dependencies::cancel`]).
pub async fn cancel(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    owner: Option<Uuid>,
) -> Result<Transition, PersistenceError> {
    transition(
        conn,
        id,
        owner,
        "status = 'cancelled', finished_at = now()",
        "'waiting', 'pending', 'scheduled', 'running'",
    )
    .await
}

/// Puts a `failed` or `cancelled` job back to `pending` (`waiting` for a job with parents: see
/// [`crate::dependencies::retry`]), attempts, progress and error cleared.
pub async fn retry(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    owner: Option<Uuid>,
) -> Result<Transition, PersistenceError> {
    transition(
        conn,
        id,
        owner,
        "status = CASE WHEN j.depends_on = '{}' THEN 'pending' ELSE 'waiting' END, \
         attempts = 0, progress = 0, last_error = NULL, result = NULL, \
         run_at = NULL, started_at = NULL, finished_at = NULL",
        "'failed', 'cancelled'",
    )
    .await
}

/// Job counts for `/api/jobs/stats`.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Jobs per status (only statuses that occur).
    pub by_status: Vec<(String, i64)>,
    /// `pending` jobs per priority.
    pub pending_by_priority: Vec<(i16, i64)>,
}

/// Counts the jobs of `owner`, or of everyone, in one statement (grouped by status and
/// priority, then summed here).
pub async fn stats(
    conn: &mut AsyncPgConnection,
    owner: Option<Uuid>,
) -> Result<Stats, PersistenceError> {
    let mut query = jobs::table
        .group_by((jobs::status, jobs::priority))
        .select((jobs::status, jobs::priority, diesel::dsl::count_star()))
        .into_boxed();
    if let Some(owner) = owner {
        query = query.filter(jobs::user_id.eq(owner));
    }
    let groups: Vec<(String, i16, i64)> = query.load(conn).await?;
    let mut stats = Stats::default();
    for (status, priority, n) in groups {
        if status == "pending" {
            stats.pending_by_priority.push((priority, n));
        }
        match stats.by_status.iter_mut().find(|(s, _)| *s == status) {
            Some((_, total)) => *total += n,
            None => stats.by_status.push((status, n)),
        }
    }
    Ok(stats)
}

/// The email address of a user and whether it is verified (for `send_email` checks).
pub async fn user_email(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
) -> Result<Option<(String, bool)>, PersistenceError> {
    Ok(users::table
        .filter(users::id.eq(user_id))
        .select((users::email, users::email_verified))
        .first(conn)
        .await
        .optional()?)
}

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
    pub status: &'static str,
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
    let statuses: Vec<&str> = outcomes.iter().map(|o| o.status).collect();
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
) -> Result<Vec<(Uuid, String, i64)>, PersistenceError> {
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
    pub status: String,
    /// Its priority.
    #[diesel(sql_type = Int2)]
    pub priority: i16,
    /// Its type.
    #[diesel(sql_type = Text)]
    pub job_type: String,
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

/// Counts every job per status (a test aid).
#[cfg(feature = "testing")]
pub async fn count_by_status(
    conn: &mut AsyncPgConnection,
) -> Result<Vec<(String, i64)>, PersistenceError> {
    Ok(jobs::table
        .group_by(jobs::status)
        .select((jobs::status, diesel::dsl::count_star()))
        .load(conn)
        .await?)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The same object, whatever the order of its keys.
    fn parsed(text: &str) -> Value {
        serde_json::from_str(text).unwrap_or(Value::Null)
    }

    #[test]
    fn the_text_form_is_the_map_form() {
        let at = Utc::now();
        let mut job = Job {
            id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            job_type: "echo".to_owned(),
            data: json!({"b": [1, 2.5, "x\"y"], "a": {"n": null}}),
            priority: -3,
            status: "completed".to_owned(),
            attempts: 2,
            max_attempts: 5,
            progress: 100,
            result: Some(json!({"ok": true})),
            last_error: Some("once \"failed\"".to_owned()),
            run_at: Some(at),
            idempotency_key: Some("k".to_owned()),
            fence: 7,
            created_at: at,
            updated_at: at,
            started_at: Some(at),
            finished_at: Some(at),
            request_id: Some("r".to_owned()),
            depends_on: vec![Uuid::now_v7(), Uuid::now_v7()],
            schedule_id: Some(Uuid::now_v7()),
        };
        assert_eq!(parsed(&job.to_json_string()), job.to_json());
        job.result = None;
        job.last_error = None;
        job.run_at = None;
        job.started_at = None;
        job.finished_at = None;
        job.depends_on = Vec::new();
        job.schedule_id = None;
        assert_eq!(parsed(&job.to_json_string()), job.to_json());
    }
}
