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
    let inserted = conn
        .transaction(async |conn| {
            let mut rows: Vec<Row> = batch
                .iter()
                .map(|job| Row {
                    status: job.status.clone(),
                    last_error: None,
                    finished: false,
                })
                .collect();
            let unknown = start_states(conn, user_id, &depends_on, &mut rows).await?;
            if !unknown.is_empty() {
                return Ok(BatchInserted::UnknownParents(unknown));
            }
            let stored = insert_rows(conn, &batch, &rows, &depends_on).await?;
            if stored.len() < batch.len() {
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
            Ok(BatchInserted::Created(order_as(stored, &batch)))
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
struct Row {
    status: String,
    last_error: Option<String>,
    finished: bool,
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
    let known: std::collections::HashMap<Uuid, String> =
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
        let ended = parents
            .iter()
            .find_map(|p| match known.get(p).map(String::as_str) {
                Some("failed") => Some(format!("parent job {p} failed")),
                Some("cancelled") => Some(format!("parent job {p} was cancelled")),
                _ => None,
            });
        if let Some(error) = ended {
            row.status = "cancelled".to_owned();
            row.last_error = Some(error);
            row.finished = true;
        } else if !parents
            .iter()
            .all(|p| known.get(p).map(String::as_str) == Some("completed"))
        {
            row.status = "waiting".to_owned();
        }
    }
    Ok(unknown)
}

/// One `INSERT … SELECT FROM UNNEST` for every row (`ON CONFLICT DO NOTHING`: only the
/// idempotency index can conflict with fresh v7 ids).
async fn insert_rows(
    conn: &mut AsyncPgConnection,
    batch: &[NewJob],
    rows: &[Row],
    depends_on: &[Vec<Uuid>],
) -> Result<Vec<Job>, PersistenceError> {
    let ids: Vec<Uuid> = batch.iter().map(|j| j.id).collect();
    let users: Vec<Uuid> = batch.iter().map(|j| j.user_id).collect();
    let types: Vec<&str> = batch.iter().map(|j| j.job_type.as_str()).collect();
    let data: Vec<&serde_json::Value> = batch.iter().map(|j| &j.data).collect();
    let priorities: Vec<i16> = batch.iter().map(|j| j.priority).collect();
    let statuses: Vec<&str> = rows.iter().map(|r| r.status.as_str()).collect();
    let errors: Vec<Option<&str>> = rows.iter().map(|r| r.last_error.as_deref()).collect();
    let finished: Vec<bool> = rows.iter().map(|r| r.finished).collect();
    // A uuid[] per row travels as one text literal each (`{a,b}`): PostgreSQL has no arrays of
    // arrays of different lengths.
    let parents: Vec<String> = depends_on
        .iter()
        .map(|p| {
            let ids: Vec<String> = p.iter().map(Uuid::to_string).collect();
            format!("{{{}}}", ids.join(","))
        })
        .collect();
    let attempts: Vec<i32> = batch.iter().map(|j| j.max_attempts).collect();
    let run_at: Vec<Option<chrono::DateTime<chrono::Utc>>> =
        batch.iter().map(|j| j.run_at).collect();
    let keys: Vec<Option<&str>> = batch.iter().map(|j| j.idempotency_key.as_deref()).collect();
    let created: Vec<chrono::DateTime<chrono::Utc>> = batch.iter().map(|j| j.created_at).collect();
    let request_ids: Vec<Option<&str>> = batch.iter().map(|j| j.request_id.as_deref()).collect();
    let sql = format!(
        "INSERT INTO jobs AS j (id, user_id, type, data, priority, status, max_attempts, run_at, \
           idempotency_key, created_at, updated_at, last_error, finished_at, depends_on, \
           request_id) \
         SELECT u.id, u.user_id, u.type, u.data, u.priority, u.status, u.max_attempts, u.run_at, \
           u.idempotency_key, u.created_at, u.created_at, u.last_error, \
           CASE WHEN u.finished THEN u.created_at END, u.depends_on::uuid[], u.request_id \
         FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::int2[], $6::text[], \
           $7::int4[], $8::timestamptz[], $9::text[], $10::timestamptz[], $11::text[], \
           $12::bool[], $13::text[], $14::text[]) \
           AS u(id, user_id, type, data, priority, status, max_attempts, run_at, idempotency_key, \
             created_at, last_error, finished, depends_on, request_id) \
         ON CONFLICT DO NOTHING \
         RETURNING {}",
        crate::jobs::JOB_COLUMNS
    );
    Ok(diesel::sql_query(sql)
        .bind::<Array<diesel::sql_types::Uuid>, _>(ids)
        .bind::<Array<diesel::sql_types::Uuid>, _>(users)
        .bind::<Array<Text>, _>(types)
        .bind::<Array<Jsonb>, _>(data)
        .bind::<Array<Int2>, _>(priorities)
        .bind::<Array<Text>, _>(statuses)
        .bind::<Array<Int4>, _>(attempts)
        .bind::<Array<Nullable<Timestamptz>>, _>(run_at)
        .bind::<Array<Nullable<Text>>, _>(keys)
        .bind::<Array<Timestamptz>, _>(created)
        .bind::<Array<Nullable<Text>>, _>(errors)
        .bind::<Array<diesel::sql_types::Bool>, _>(finished)
        .bind::<Array<Text>, _>(parents)
        .bind::<Array<Nullable<Text>>, _>(request_ids)
        .load(conn)
        .await?)
}

/// `rows` in the order of `batch` (RETURNING promises no order).
fn order_as(mut rows: Vec<Job>, batch: &[NewJob]) -> Vec<Job> {
    let position: std::collections::HashMap<Uuid, usize> =
        batch.iter().enumerate().map(|(i, j)| (j.id, i)).collect();
    rows.sort_by_key(|job| position.get(&job.id).copied().unwrap_or(usize::MAX));
    rows
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
