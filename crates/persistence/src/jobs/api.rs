//! What the job service calls: insert, find, list, cancel, retry, stats and the
//! status transitions behind them.

use chrono::{DateTime, Utc};
use diesel::IntoSql as _;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Int2, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::job::{JobStatus, JobType};
use uuid::Uuid;

use super::{JOB_COLUMNS, Job, NewJob};
use crate::PersistenceError;
use crate::schema::{jobs, unfinished_jobs, users};

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
        job.job_type.into_sql::<Text>(),
        (&job.data).into_sql::<Jsonb>(),
        job.priority.into_sql::<Int2>(),
        job.status.into_sql::<Text>(),
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
    pub status: Option<JobStatus>,
    /// Only this type.
    pub job_type: Option<JobType>,
    /// Strictly older than this `(created_at, id)` (the page cursor).
    pub before: Option<(DateTime<Utc>, Uuid)>,
    /// Page size.
    pub limit: i64,
}

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
    if let Some(status) = query.status {
        q = q.filter(jobs::status.eq(status));
        // No index of `jobs` names `status` (state changes stay heap-only updates): the
        // unfinished ones are found through `unfinished_jobs`, the backlog; a final status
        // filters the newest-first scan of the history, where most rows are final.
        if !status.is_final() {
            let mut backlog = unfinished_jobs::table
                .select(unfinished_jobs::job_id)
                .into_boxed();
            if let Some(user) = query.user_id {
                backlog = backlog.filter(unfinished_jobs::user_id.eq(user));
            }
            q = q.filter(jobs::id.eq_any(backlog));
        }
    }
    if let Some(job_type) = query.job_type {
        q = q.filter(jobs::job_type.eq(job_type));
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
        was: JobStatus,
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
        was: JobStatus,
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
    pub by_status: Vec<(JobStatus, i64)>,
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
    let groups: Vec<(JobStatus, i16, i64)> = query.load(conn).await?;
    let mut stats = Stats::default();
    for (status, priority, n) in groups {
        if status == JobStatus::Pending {
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

/// Counts every job per status (a test aid).
#[cfg(feature = "testing")]
pub async fn count_by_status(
    conn: &mut AsyncPgConnection,
) -> Result<Vec<(JobStatus, i64)>, PersistenceError> {
    Ok(jobs::table
        .group_by(jobs::status)
        .select((jobs::status, diesel::dsl::count_star()))
        .load(conn)
        .await?)
}
