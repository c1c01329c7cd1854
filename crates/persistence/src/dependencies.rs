//! Dependencies between jobs: a job submitted with `depends_on` (its parents, jobs of the same
//! user that already exist) starts `waiting` and becomes `pending` (or `scheduled`, with a
//! future `run_at`) once every parent has `completed`; when a parent ends `failed` or
//! `cancelled`, it becomes `cancelled`, naming that parent in `last_error`, and so do its own
//! waiting descendants.
//!
//! Storage: the parents are the child's `depends_on` column (in the order given); the table
//! `job_dependencies (parent_id, job_id)` holds the same edges indexed from the parent side, so
//! that the end of a parent finds its children in one index probe.
//!
//! Exactly once, however parents finish: the outcome of a parent and the [`settle`] of its
//! children happen in one transaction. [`settle`] first locks the waiting children (one
//! `SELECT … ORDER BY id FOR UPDATE`, so concurrent settles lock in the same order), and only
//! then, in later statements with fresh snapshots, reads the parents' statuses and changes the
//! children. Two parents finishing at the same moment on two workers therefore serialize on
//! the child's row: the second sees the first's committed outcome, and exactly one of them
//! promotes the child (the other finds it no longer `waiting`). A submit locks its parents
//! (`FOR SHARE`) before deciding its starting status, which serializes it with a parent's
//! outcome in the same way. [`waiting_page`] lets the reconciler find and settle waiting jobs
//! whose settle was missed (a crash, a manual change).

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Text};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use domain::job::{JobStatus, JobType};
use serde_json::Value;
use uuid::Uuid;

use crate::PersistenceError;
use crate::jobs::{self, JOB_COLUMNS, Job, Outcome, Transition};
use crate::schema::job_dependencies;

/// Most parents one job may have.
pub const MAX_PARENTS: usize = 20;

/// What [`settle`] changed.
#[derive(Debug, Clone, Default)]
pub struct Settled {
    /// Children whose parents all completed: now `pending` or `scheduled`.
    pub promoted: Vec<Job>,
    /// Waiting jobs cancelled because a parent (or an ancestor) failed or was cancelled.
    pub cancelled: Vec<Job>,
}

impl Settled {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.promoted.is_empty() && self.cancelled.is_empty()
    }

    fn extend(&mut self, other: Settled) {
        self.promoted.extend(other.promoted);
        self.cancelled.extend(other.cancelled);
    }
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
}

/// Settles the waiting children of `parents`, jobs that just reached a final status in this
/// transaction (or whose children may have been missed): promotes those whose parents all
/// completed and cancels, with all their waiting descendants, those with a failed or
/// cancelled parent. Call it inside the transaction that recorded the parents' outcomes.
pub async fn settle(
    conn: &mut AsyncPgConnection,
    parents: &[Uuid],
) -> Result<Settled, PersistenceError> {
    let mut settled = Settled::default();
    if !has_children(conn, parents).await? {
        return Ok(settled);
    }
    let mut frontier: Vec<Uuid> = parents.to_vec();
    while !frontier.is_empty() {
        // The waiting children of the frontier and, below a failed or cancelled parent, its
        // whole waiting subtree, locked in id order in one statement, so that two cascades
        // never take each other's rows in opposite orders.
        //
        // Every read of `jobs` here is a lookup by id (a scalar subquery, `= ANY` of an
        // array): no index of `jobs` names `status`, and a join would let the planner hash a
        // scan of the whole table, once per recorded batch of outcomes, to find no children.
        let locked: Vec<IdRow> = diesel::sql_query(
            "WITH RECURSIVE below(id, doomed) AS ( \
               SELECT d.job_id, \
                   (SELECT p.status FROM jobs p WHERE p.id = d.parent_id) IN ('failed', 'cancelled') \
                 FROM job_dependencies d WHERE d.parent_id = ANY($1) \
               UNION \
               SELECT d.job_id, true FROM below b \
                 JOIN job_dependencies d ON d.parent_id = b.id \
                 WHERE b.doomed AND (SELECT w.status FROM jobs w WHERE w.id = b.id) = 'waiting' \
             ) \
             SELECT j.id FROM jobs j WHERE j.id = ANY(ARRAY(SELECT id FROM below)) \
               AND j.status = 'waiting' \
             ORDER BY j.id FOR UPDATE OF j",
        )
        .bind::<Array<diesel::sql_types::Uuid>, _>(&frontier)
        .load(conn)
        .await?;
        if locked.is_empty() {
            break;
        }
        let locked: Vec<Uuid> = locked.into_iter().map(|row| row.id).collect();
        let round = settle_locked(conn, &locked).await?;
        // Jobs cancelled here may have waiting children not locked yet (a child of a
        // completed parent that had another, failed parent): settle below them too.
        frontier = round.cancelled.iter().map(|job| job.id).collect();
        settled.extend(round);
    }
    Ok(settled)
}

/// Whether any of `parents` has children: one probe of `job_dependencies`' primary key, with
/// a plan PostgreSQL keeps, so that recording the outcomes of jobs nobody depends on (nearly
/// all) does not plan and run the settle's recursive statement for nothing.
async fn has_children(
    conn: &mut AsyncPgConnection,
    parents: &[Uuid],
) -> Result<bool, PersistenceError> {
    if parents.is_empty() {
        return Ok(false);
    }
    Ok(diesel::select(diesel::dsl::exists(
        job_dependencies::table.filter(job_dependencies::parent_id.eq_any(parents)),
    ))
    .get_result(conn)
    .await?)
}

/// Cancels and promotes among `locked` (waiting jobs this transaction holds), level by level:
/// each round cancels the jobs with a failed or cancelled parent, so that the next round sees
/// them cancelled and cancels their children, naming each job's own parent.
async fn settle_locked(
    conn: &mut AsyncPgConnection,
    locked: &[Uuid],
) -> Result<Settled, PersistenceError> {
    let mut settled = Settled::default();
    let cancel = format!(
        "UPDATE jobs j SET status = 'cancelled', finished_at = now(), updated_at = now(), \
           last_error = ( \
             SELECT 'parent job ' || p.id || CASE WHEN p.status = 'failed' THEN ' failed' \
               ELSE ' was cancelled' END \
             FROM jobs p WHERE p.id = ANY(j.depends_on) AND p.status IN ('failed', 'cancelled') \
             ORDER BY p.id LIMIT 1) \
         WHERE j.id = ANY($1) AND j.status = 'waiting' AND EXISTS ( \
           SELECT 1 FROM jobs p WHERE p.id = ANY(j.depends_on) \
             AND p.status IN ('failed', 'cancelled')) \
         RETURNING {JOB_COLUMNS}"
    );
    loop {
        let cancelled: Vec<Job> = diesel::sql_query(&cancel)
            .bind::<Array<diesel::sql_types::Uuid>, _>(locked)
            .load(conn)
            .await?;
        if cancelled.is_empty() {
            break;
        }
        settled.cancelled.extend(cancelled);
    }
    settled.promoted = diesel::sql_query(format!(
        "UPDATE jobs j SET updated_at = now(), \
           status = CASE WHEN j.run_at > now() THEN 'scheduled' ELSE 'pending' END \
         WHERE j.id = ANY($1) AND j.status = 'waiting' AND NOT EXISTS ( \
           SELECT 1 FROM jobs p WHERE p.id = ANY(j.depends_on) AND p.status <> 'completed') \
         RETURNING {JOB_COLUMNS}"
    ))
    .bind::<Array<diesel::sql_types::Uuid>, _>(locked)
    .load(conn)
    .await?;
    Ok(settled)
}

/// The parents' statuses a submit needs, read under `FOR SHARE` locks (taken in id order) so
/// that no parent's outcome can be recorded between this read and the submit's commit.
/// Returns `(id, status)` of the jobs among `ids` that exist and belong to `user_id`.
pub async fn lock_parents(
    conn: &mut AsyncPgConnection,
    user_id: Uuid,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, JobStatus)>, PersistenceError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: Uuid,
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        user_id: Uuid,
        #[diesel(sql_type = Text)]
        status: JobStatus,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT id, user_id, status FROM jobs WHERE id = ANY($1) ORDER BY id FOR SHARE",
    )
    .bind::<Array<diesel::sql_types::Uuid>, _>(ids)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter(|row| row.user_id == user_id)
        .map(|row| (row.id, row.status))
        .collect())
}

/// Records the parent edges of new jobs (`(parent, child)` pairs) in one statement.
pub async fn insert_edges(
    conn: &mut AsyncPgConnection,
    edges: &[(Uuid, Uuid)],
) -> Result<(), PersistenceError> {
    if edges.is_empty() {
        return Ok(());
    }
    let parents: Vec<Uuid> = edges.iter().map(|(p, _)| *p).collect();
    let children: Vec<Uuid> = edges.iter().map(|(_, c)| *c).collect();
    diesel::sql_query(
        "INSERT INTO job_dependencies (parent_id, job_id) \
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[]) ON CONFLICT DO NOTHING",
    )
    .bind::<Array<diesel::sql_types::Uuid>, _>(parents)
    .bind::<Array<diesel::sql_types::Uuid>, _>(children)
    .execute(conn)
    .await?;
    Ok(())
}

/// [`jobs::finish`] and the [`settle`] of the finished jobs' children, in one transaction:
/// a parent's outcome and its children's promotion or cancellation commit together.
pub async fn finish(
    conn: &mut AsyncPgConnection,
    outcomes: &[Outcome],
) -> Result<(Vec<Job>, Settled), PersistenceError> {
    if outcomes.is_empty() {
        return Ok((Vec::new(), Settled::default()));
    }
    conn.transaction(async |conn| {
        let written = jobs::finish(conn, outcomes).await?;
        let ended = final_ids(&written);
        let settled = settle(conn, &ended).await?;
        Ok((written, settled))
    })
    .await
}

/// [`jobs::reap`] and the [`settle`] of the children of the jobs it failed, in one transaction.
pub async fn reap(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> Result<(Vec<Job>, Settled), PersistenceError> {
    if ids.is_empty() {
        return Ok((Vec::new(), Settled::default()));
    }
    conn.transaction(async |conn| {
        let reaped = jobs::reap(conn, ids).await?;
        let ended = final_ids(&reaped);
        let settled = settle(conn, &ended).await?;
        Ok((reaped, settled))
    })
    .await
}

/// [`jobs::cancel`] and the cancellation of the job's waiting descendants, in one transaction.
pub async fn cancel(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    owner: Option<Uuid>,
) -> Result<(Transition, Settled), PersistenceError> {
    conn.transaction(async |conn| {
        let changed = jobs::cancel(conn, id, owner).await?;
        let settled = match &changed {
            Transition::Done { .. } => settle(conn, &[id]).await?,
            _ => Settled::default(),
        };
        Ok((changed, settled))
    })
    .await
}

/// [`jobs::retry`], which puts a job with parents back to `waiting`, then its settle in the
/// same transaction: it becomes `pending` when its parents all completed, is cancelled again
/// (naming the parent) when one failed or was cancelled, and otherwise waits. The parents are
/// locked (`FOR SHARE`) before the job, as a submit does, so that a parent finishing meanwhile
/// cannot miss it.
pub async fn retry(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    owner: Option<Uuid>,
) -> Result<(Transition, Settled), PersistenceError> {
    conn.transaction(async |conn| {
        if let Some(job) = jobs::find(conn, id, owner).await?
            && !job.depends_on.is_empty()
        {
            lock_parents(conn, job.user_id, &job.depends_on).await?;
        }
        let changed = jobs::retry(conn, id, owner).await?;
        let Transition::Done { job, was } = changed else {
            return Ok((changed, Settled::default()));
        };
        if job.status != JobStatus::Waiting {
            return Ok((Transition::Done { job, was }, Settled::default()));
        }
        let settled = settle_locked(conn, &[id]).await?;
        let job = settled
            .promoted
            .iter()
            .chain(&settled.cancelled)
            .find(|changed| changed.id == id)
            .cloned()
            .unwrap_or(job);
        // The job itself is announced by the caller; only its descendants are left here.
        let settled = Settled {
            promoted: Vec::new(),
            cancelled: settled
                .cancelled
                .into_iter()
                .filter(|j| j.id != id)
                .collect(),
        };
        Ok((Transition::Done { job, was }, settled))
    })
    .await
}

/// The ids of the jobs among `rows` that reached a final status.
fn final_ids(rows: &[Job]) -> Vec<Uuid> {
    rows.iter()
        .filter(|job| job.status.is_final())
        .map(|job| job.id)
        .collect()
}

/// One parent's part of its child's context: what the handler sees.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct ParentResult {
    /// The parent.
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: Uuid,
    /// Its type.
    #[diesel(sql_type = Text)]
    pub job_type: JobType,
    /// Its status (`completed` for a job that was promoted).
    #[diesel(sql_type = Text)]
    pub status: JobStatus,
    /// Its result.
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Jsonb>)]
    pub result: Option<Value>,
}

/// The parents `ids` of a job with their results, in the order of `ids` (deleted ones left
/// out).
pub async fn parent_results(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> Result<Vec<ParentResult>, PersistenceError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut rows: Vec<ParentResult> = diesel::sql_query(
        "SELECT id, type AS job_type, status, result FROM jobs WHERE id = ANY($1)",
    )
    .bind::<Array<diesel::sql_types::Uuid>, _>(ids)
    .load(conn)
    .await?;
    rows.sort_by_key(|row| ids.iter().position(|id| *id == row.id));
    Ok(rows)
}

/// One page of the reconciler's pass over the backlog, looking for waiting jobs whose settle
/// was missed.
#[derive(Debug, Clone, Default)]
pub struct WaitingPage {
    /// The waiting jobs of the page that should no longer wait: every parent completed, or one
    /// failed or was cancelled.
    pub settleable: Vec<Uuid>,
    /// Where the next page starts (`(user_id, job_id)` of `unfinished_jobs`); `None` at the
    /// end of the backlog.
    pub next: Option<(Uuid, Uuid)>,
}

/// Reads up to `limit` rows of `unfinished_jobs` after `after` (its primary key order) and
/// returns the waiting jobs among them whose parents have all finished. The page is bounded in
/// rows read, not in waiting jobs found, so a round costs the same whatever the backlog holds.
pub async fn waiting_page(
    conn: &mut AsyncPgConnection,
    after: (Uuid, Uuid),
    limit: i64,
) -> Result<WaitingPage, PersistenceError> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        user_id: Uuid,
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        job_id: Uuid,
        #[diesel(sql_type = Bool)]
        settleable: bool,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT p.user_id, p.job_id, COALESCE(CASE WHEN c.status = 'waiting' THEN ( \
           NOT EXISTS (SELECT 1 FROM jobs q WHERE q.id = ANY(c.depends_on) \
             AND q.status <> 'completed') \
           OR EXISTS (SELECT 1 FROM jobs q WHERE q.id = ANY(c.depends_on) \
             AND q.status IN ('failed', 'cancelled'))) END, false) AS settleable \
         FROM (SELECT user_id, job_id FROM unfinished_jobs WHERE (user_id, job_id) > ($1, $2) \
               ORDER BY user_id, job_id LIMIT $3) p \
         LEFT JOIN jobs c ON c.id = p.job_id \
         ORDER BY p.user_id, p.job_id",
    )
    .bind::<diesel::sql_types::Uuid, _>(after.0)
    .bind::<diesel::sql_types::Uuid, _>(after.1)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?;
    let next = match rows.last() {
        Some(last) if rows.len() as i64 >= limit => Some((last.user_id, last.job_id)),
        _ => None,
    };
    Ok(WaitingPage {
        settleable: rows
            .iter()
            .filter(|row| row.settleable)
            .map(|row| row.job_id)
            .collect(),
        next,
    })
}

/// Settles the waiting jobs `ids` whose settle was missed: in one transaction, locks them (id
/// order) and promotes or cancels each as its parents' statuses say (with the cancelled ones'
/// waiting descendants).
pub async fn repair(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> Result<Settled, PersistenceError> {
    if ids.is_empty() {
        return Ok(Settled::default());
    }
    conn.transaction(async |conn| {
        let locked: Vec<IdRow> = diesel::sql_query(
            "SELECT id FROM jobs WHERE id = ANY($1) AND status = 'waiting' \
             ORDER BY id FOR UPDATE",
        )
        .bind::<Array<diesel::sql_types::Uuid>, _>(ids)
        .load(conn)
        .await?;
        let locked: Vec<Uuid> = locked.into_iter().map(|row| row.id).collect();
        let mut settled = settle_locked(conn, &locked).await?;
        let cancelled: Vec<Uuid> = settled.cancelled.iter().map(|job| job.id).collect();
        settled.extend(settle(conn, &cancelled).await?);
        Ok(settled)
    })
    .await
}
