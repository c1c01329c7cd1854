//! Many jobs in one transaction: `POST /api/jobs/submit-batch`.
//!
//! The rows go in with one multi-row `INSERT … SELECT FROM UNNEST(…)`, so a batch of a thousand
//! jobs costs one statement, not a thousand. The batch is all or nothing: it runs in one
//! transaction, and anything that stops one row stops them all.
//!
//! An `Idempotency-Key` names the whole batch: its jobs are stored with the keys
//! [`batch_key`]`(key, 0..n)`, which no single submit can produce (a header value cannot hold
//! a line feed). A batch sent again with the same key finds the jobs of the first one and
//! returns them instead; two identical batches racing insert one set of rows (the unique index
//! `jobs_idempotency_key` makes the loser's rows conflict, and its transaction is rolled back).
//! [`batch_replay_keys`] lists the keys to look for.

use diesel::prelude::*;
use diesel::sql_types::{Array, Int2, Int4, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use domain::job::JobStatus;
use uuid::Uuid;

use crate::PersistenceError;
use crate::jobs::{Job, NewJob};
use crate::schema::jobs;

/// Most jobs in one batch (the contract's limit).
pub const MAX_BATCH: usize = 1000;

/// The stored idempotency key of job `index` of a batch sent with `Idempotency-Key: key`.
pub fn batch_key(key: &str, index: usize) -> String {
    format!("{key}\n{index}")
}

/// Every key a batch sent with `Idempotency-Key: key` may have stored, in batch order.
pub fn batch_replay_keys(key: &str) -> Vec<String> {
    (0..MAX_BATCH).map(|i| batch_key(key, i)).collect()
}

/// What [`insert_batch`] did.
#[derive(Debug, Clone)]
pub enum BatchInserted {
    /// New rows, in the order given.
    Created(Vec<Job>),
    /// The jobs of an earlier batch with the same idempotency key, in that batch's order.
    Existing(Vec<Job>),
    /// Nothing stored: these jobs (by position) name parents that do not exist or belong to
    /// another user (the same answer for both, so that nobody learns of others' jobs).
    UnknownParents(Vec<(usize, Vec<Uuid>)>),
}

/// Inserts `batch` (all of one user) in one transaction with one statement and returns the
/// rows in the order given. When the jobs carry idempotency keys and `replay_keys` (the keys an
/// earlier sending of the same request would have stored, in order) finds jobs of `user_id`,
/// returns those instead, in that order.
///
/// `depends_on[i]` lists the parents of job `i` (empty: none). They must be jobs of `user_id`
/// that exist already (a job cannot name another job of the same batch). They are locked
/// (`FOR SHARE`, id order) before the rows go in, and each job with parents starts `waiting`,
/// or as submitted (`pending`/`scheduled`) when every parent has completed, or `cancelled`,
/// naming the parent, when one has failed or was cancelled (see [`crate::dependencies`]).
pub async fn insert_batch(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    batch: Vec<NewJob>,
    depends_on: Vec<Vec<Uuid>>,
    replay_keys: &[String],
) -> Result<BatchInserted, PersistenceError> {
    if !replay_keys.is_empty() {
        let earlier = existing(conn, user_id, replay_keys).await?;
        if !earlier.is_empty() {
            return Ok(BatchInserted::Existing(earlier));
        }
    }
    if replay_keys.is_empty() && depends_on.iter().all(Vec::is_empty) {
        // Nothing to lock and no key to race on: one statement is all or nothing by itself,
        // so it runs without BEGIN and COMMIT (two round trips fewer).
        let rows = submitted_states(&batch);
        insert_rows(conn, &batch, &rows, &depends_on, OnConflict::Fail).await?;
        return Ok(BatchInserted::Created(stored_jobs(batch, rows, depends_on)));
    }
    let inserted = conn
        .transaction(async move |conn| {
            let mut rows = submitted_states(&batch);
            let unknown = start_states(conn, user_id, &depends_on, &mut rows).await?;
            if !unknown.is_empty() {
                return Ok(BatchInserted::UnknownParents(unknown));
            }
            let stored = insert_rows(conn, &batch, &rows, &depends_on, OnConflict::Skip).await?;
            if stored < batch.len() {
                // A concurrent request with the same key won the race: roll back, return its jobs.
                return Err(PersistenceError::Conflict {
                    constraint: "jobs_idempotency_key".to_owned(),
                });
            }
            let edges: Vec<(Uuid, Uuid)> = batch
                .iter()
                .zip(&depends_on)
                .flat_map(|(job, parents)| parents.iter().map(|p| (*p, job.id)))
                .collect();
            crate::dependencies::insert_edges(conn, &edges).await?;
            Ok(BatchInserted::Created(stored_jobs(batch, rows, depends_on)))
        })
        .await;
    match inserted {
        Ok(answer) => Ok(answer),
        Err(PersistenceError::Conflict { constraint })
            if constraint == "jobs_idempotency_key" && !replay_keys.is_empty() =>
        {
            let earlier = existing(conn, user_id, replay_keys).await?;
            if earlier.is_empty() {
                return Err(PersistenceError::Conflict { constraint });
            }
            Ok(BatchInserted::Existing(earlier))
        }
        Err(error) => Err(error),
    }
}

/// The starting state of a row where it differs from the submitted one.
pub(crate) struct Row {
    status: JobStatus,
    last_error: Option<String>,
    finished: bool,
}

/// Every row as submitted (no parents to settle).
fn submitted_states(batch: &[NewJob]) -> Vec<Row> {
    batch
        .iter()
        .map(|job| Row {
            status: job.status,
            last_error: None,
            finished: false,
        })
        .collect()
}

/// What [`insert_rows`] does with a row that conflicts with an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnConflict {
    /// Fails the statement (no row goes in).
    Fail,
    /// Skips the row; the others go in.
    Skip,
}

/// One row of [`insert_each`]'s answer.
#[derive(Debug)]
pub enum EachInserted {
    /// Stored as given ([`NewJob::into_stored`] is the row).
    Created,
    /// Skipped: its user already has this job with the same idempotency key.
    Existing(Box<Job>),
    /// Not stored: it conflicts with a row that is not its user's job with the same
    /// idempotency key (only a fresh id colliding, which v7 ids make practically impossible).
    Conflict(PersistenceError),
}

/// Inserts independent jobs (of any users, without parents) with one statement and no
/// explicit transaction, so one round trip stores and commits them all: a group commit of
/// single submits. A row whose idempotency key its user already used (by an earlier job, or
/// an earlier row of `batch`) is skipped and answered with that job; the others go in.
/// Returns one answer per job, in the order given.
///
/// An error fails every row: nothing was stored, unless the connection broke while the
/// statement committed (the caller, which cannot know, must not insert the same ids again
/// blindly). A row the database refuses (such as one whose user no longer exists) fails the
/// whole statement: the caller then stores the jobs one by one to learn which.
pub async fn insert_each(
    conn: &mut AsyncPgConnection,
    batch: &[NewJob],
) -> Result<Vec<EachInserted>, PersistenceError> {
    let rows = submitted_states(batch);
    let none: Vec<Vec<Uuid>> = vec![Vec::new(); batch.len()];
    if batch.iter().all(|job| job.idempotency_key.is_none()) {
        insert_rows(conn, batch, &rows, &none, OnConflict::Fail).await?;
        return Ok(batch.iter().map(|_| EachInserted::Created).collect());
    }
    let stored: std::collections::HashSet<Uuid> =
        insert_rows_returning_ids(conn, batch, &rows, &none)
            .await?
            .into_iter()
            .collect();
    let mut answers = Vec::with_capacity(batch.len());
    for job in batch {
        if stored.contains(&job.id) {
            answers.push(EachInserted::Created);
            continue;
        }
        let earlier = match &job.idempotency_key {
            Some(key) => jobs::table
                .filter(jobs::user_id.eq(job.user_id))
                .filter(jobs::idempotency_key.eq(key))
                .select(Job::as_select())
                .first(conn)
                .await
                .optional()?,
            None => None,
        };
        answers.push(match earlier {
            Some(earlier) => EachInserted::Existing(Box::new(earlier)),
            None => EachInserted::Conflict(PersistenceError::Conflict {
                constraint: "jobs_pkey".to_owned(),
            }),
        });
    }
    Ok(answers)
}

/// Locks the parents of every job and settles each job's starting state in `rows`; returns
/// the jobs that name unknown parents (then nothing else matters).
async fn start_states(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    depends_on: &[Vec<Uuid>],
    rows: &mut [Row],
) -> Result<Vec<(usize, Vec<Uuid>)>, PersistenceError> {
    let all: std::collections::BTreeSet<Uuid> = depends_on.iter().flatten().copied().collect();
    if all.is_empty() {
        return Ok(Vec::new());
    }
    let all: Vec<Uuid> = all.into_iter().collect();
    let known: std::collections::HashMap<Uuid, JobStatus> =
        crate::dependencies::lock_parents(conn, user_id, &all)
            .await?
            .into_iter()
            .collect();
    let mut unknown = Vec::new();
    for (i, (parents, row)) in depends_on.iter().zip(rows.iter_mut()).enumerate() {
        if parents.is_empty() {
            continue;
        }
        let missing: Vec<Uuid> = parents
            .iter()
            .copied()
            .filter(|p| !known.contains_key(p))
            .collect();
        if !missing.is_empty() {
            unknown.push((i, missing));
            continue;
        }
        let ended = parents.iter().find_map(|p| match known.get(p) {
            Some(JobStatus::Failed) => Some(format!("parent job {p} failed")),
            Some(JobStatus::Cancelled) => Some(format!("parent job {p} was cancelled")),
            _ => None,
        });
        if let Some(error) = ended {
            row.status = JobStatus::Cancelled;
            row.last_error = Some(error);
            row.finished = true;
        } else if !parents
            .iter()
            .all(|p| known.get(p) == Some(&JobStatus::Completed))
        {
            row.status = JobStatus::Waiting;
        }
    }
    Ok(unknown)
}

/// The fourteen column arrays of the insert statements.
struct Columns<'a> {
    ids: Vec<Uuid>,
    users: Vec<Uuid>,
    types: Vec<&'a str>,
    data: Vec<&'a serde_json::Value>,
    priorities: Vec<i16>,
    statuses: Vec<&'a str>,
    attempts: Vec<i32>,
    run_at: Vec<Option<chrono::DateTime<chrono::Utc>>>,
    keys: Vec<Option<&'a str>>,
    created: Vec<chrono::DateTime<chrono::Utc>>,
    errors: Vec<Option<&'a str>>,
    finished: Vec<bool>,
    parents: Vec<String>,
    request_ids: Vec<Option<&'a str>>,
}

impl<'a> Columns<'a> {
    fn new(batch: &'a [NewJob], rows: &'a [Row], depends_on: &[Vec<Uuid>]) -> Self {
        Self {
            ids: batch.iter().map(|j| j.id).collect(),
            users: batch.iter().map(|j| j.user_id).collect(),
            types: batch.iter().map(|j| j.job_type.as_str()).collect(),
            data: batch.iter().map(|j| &j.data).collect(),
            priorities: batch.iter().map(|j| j.priority).collect(),
            statuses: rows.iter().map(|r| r.status.as_str()).collect(),
            attempts: batch.iter().map(|j| j.max_attempts).collect(),
            run_at: batch.iter().map(|j| j.run_at).collect(),
            keys: batch.iter().map(|j| j.idempotency_key.as_deref()).collect(),
            created: batch.iter().map(|j| j.created_at).collect(),
            errors: rows.iter().map(|r| r.last_error.as_deref()).collect(),
            finished: rows.iter().map(|r| r.finished).collect(),
            // A uuid[] per row travels as one text literal each (`{a,b}`): PostgreSQL has no
            // arrays of arrays of different lengths.
            parents: depends_on
                .iter()
                .map(|p| {
                    let ids: Vec<String> = p.iter().map(Uuid::to_string).collect();
                    format!("{{{}}}", ids.join(","))
                })
                .collect(),
            request_ids: batch.iter().map(|j| j.request_id.as_deref()).collect(),
        }
    }
}

/// Binds the [`Columns`] `$c` to the query `$query`, in the order of [`insert_sql!`].
macro_rules! bind_columns {
    ($query:expr, $c:expr) => {{
        let c = $c;
        $query
            .bind::<Array<diesel::sql_types::Uuid>, _>(c.ids)
            .bind::<Array<diesel::sql_types::Uuid>, _>(c.users)
            .bind::<Array<Text>, _>(c.types)
            .bind::<Array<Jsonb>, _>(c.data)
            .bind::<Array<Int2>, _>(c.priorities)
            .bind::<Array<Text>, _>(c.statuses)
            .bind::<Array<Int4>, _>(c.attempts)
            .bind::<Array<Nullable<Timestamptz>>, _>(c.run_at)
            .bind::<Array<Nullable<Text>>, _>(c.keys)
            .bind::<Array<Timestamptz>, _>(c.created)
            .bind::<Array<Nullable<Text>>, _>(c.errors)
            .bind::<Array<diesel::sql_types::Bool>, _>(c.finished)
            .bind::<Array<Text>, _>(c.parents)
            .bind::<Array<Nullable<Text>>, _>(c.request_ids)
    }};
}

/// The multi-row insert: one `INSERT … SELECT FROM UNNEST` of fourteen arrays, one per column,
/// so a statement has fourteen parameters however many rows it carries (PostgreSQL's limit of
/// 65,535 bind parameters never splits it). `updated_at` is `created_at`, and `finished_at`
/// too for a row that starts finished (`cancelled` by a failed parent).
macro_rules! insert_sql {
    () => {
        "INSERT INTO jobs AS j (id, user_id, type, data, priority, status, max_attempts, \
           run_at, idempotency_key, created_at, updated_at, last_error, finished_at, depends_on, \
           request_id) \
         SELECT u.id, u.user_id, u.type, u.data, u.priority, u.status, u.max_attempts, u.run_at, \
           u.idempotency_key, u.created_at, u.created_at, u.last_error, \
           CASE WHEN u.finished THEN u.created_at END, u.depends_on::uuid[], u.request_id \
         FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::int2[], $6::text[], \
           $7::int4[], $8::timestamptz[], $9::text[], $10::timestamptz[], $11::text[], \
           $12::bool[], $13::text[], $14::text[]) \
           AS u(id, user_id, type, data, priority, status, max_attempts, run_at, \
             idempotency_key, created_at, last_error, finished, depends_on, request_id)"
    };
}

/// Every row or none: a conflict fails the statement.
const INSERT_ROWS: &str = insert_sql!();
/// Conflicting rows are skipped (only the idempotency index can conflict with fresh v7 ids).
const INSERT_ROWS_SKIPPING_CONFLICTS: &str = concat!(insert_sql!(), " ON CONFLICT DO NOTHING");
/// As [`INSERT_ROWS_SKIPPING_CONFLICTS`], answering the ids that went in.
const INSERT_ROWS_RETURNING_IDS: &str =
    concat!(insert_sql!(), " ON CONFLICT DO NOTHING RETURNING j.id");

/// Inserts the rows with one statement and returns how many went in. Nothing is read back:
/// the rows are exactly what was sent (see [`stored_jobs`]); reading a thousand whole rows
/// back took a good part of a batch's time.
async fn insert_rows(
    conn: &mut AsyncPgConnection,
    batch: &[NewJob],
    rows: &[Row],
    depends_on: &[Vec<Uuid>],
    on_conflict: OnConflict,
) -> Result<usize, PersistenceError> {
    let sql = match on_conflict {
        OnConflict::Fail => INSERT_ROWS,
        OnConflict::Skip => INSERT_ROWS_SKIPPING_CONFLICTS,
    };
    let columns = Columns::new(batch, rows, depends_on);
    Ok(bind_columns!(diesel::sql_query(sql), columns)
        .execute(conn)
        .await?)
}

/// The rows inserted with one statement, skipping conflicting ones: the ids that went in.
async fn insert_rows_returning_ids(
    conn: &mut AsyncPgConnection,
    batch: &[NewJob],
    rows: &[Row],
    depends_on: &[Vec<Uuid>],
) -> Result<Vec<Uuid>, PersistenceError> {
    #[derive(QueryableByName)]
    struct Stored {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: Uuid,
    }
    let columns = Columns::new(batch, rows, depends_on);
    let stored: Vec<Stored> = bind_columns!(diesel::sql_query(INSERT_ROWS_RETURNING_IDS), columns)
        .load(conn)
        .await?;
    Ok(stored.into_iter().map(|row| row.id).collect())
}

/// The rows [`insert_rows`] stored, as [`Job`]s, in the order given (see
/// [`NewJob::into_stored`]), with the starting states and parents settled in the transaction.
fn stored_jobs(batch: Vec<NewJob>, rows: Vec<Row>, depends_on: Vec<Vec<Uuid>>) -> Vec<Job> {
    batch
        .into_iter()
        .zip(rows)
        .zip(depends_on)
        .map(|((job, row), parents)| {
            let mut job = job.into_stored();
            if row.finished {
                job.finished_at = Some(job.created_at);
            }
            job.status = row.status;
            job.last_error = row.last_error;
            job.depends_on = parents;
            job
        })
        .collect()
}

/// The user's jobs stored with `keys`, in the order of `keys` (one probe of the idempotency
/// index per key, on this rare path only).
async fn existing(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    keys: &[String],
) -> Result<Vec<Job>, PersistenceError> {
    let mut rows: Vec<Job> = jobs::table
        .filter(jobs::user_id.eq(user_id))
        .filter(jobs::idempotency_key.eq_any(keys))
        .select(Job::as_select())
        .load(conn)
        .await?;
    let position: std::collections::HashMap<&str, usize> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    rows.sort_by_key(|job| {
        job.idempotency_key
            .as_deref()
            .and_then(|k| position.get(k).copied())
            .unwrap_or(usize::MAX)
    });
    Ok(rows)
}
