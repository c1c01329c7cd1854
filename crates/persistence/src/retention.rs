//! Retention: deleting rows nobody needs any more, in small batches.
//!
//! Each [`Sweep`] deletes at most one batch per call, in its own short statement, so that no
//! hot table is locked for long and replication keeps up. [`run`] repeats the sweeps of one
//! process under a PostgreSQL advisory lock held on a connection of its own, so that however
//! many replicas run, one at a time does the work; a process that dies releases the lock with
//! its connection.
//!
//! Each service sweeps only the tables it owns: the worker finished jobs, the auth service
//! spent sessions and tokens (so the worker's database role needs no access to credentials).

use chrono::{DateTime, Duration, Utc};
use diesel::sql_types::{BigInt, Bool, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::job::JobStatus;

use crate::PersistenceError;

/// Rows deleted by one statement.
pub const BATCH: i64 = 1000;

/// One kind of row to delete.
#[derive(Debug, Clone)]
pub enum Sweep {
    /// Jobs in `status` (a final one) that finished more than `older_than` ago.
    FinishedJobs {
        /// `completed`, `cancelled` or `failed`.
        status: JobStatus,
        /// Age after which they go.
        older_than: Duration,
    },
    /// Sessions that expired more than `older_than` ago (their refresh tokens go with them).
    ExpiredSessions {
        /// Age after expiry.
        older_than: Duration,
    },
    /// Refresh tokens (spent or not) that expired more than `older_than` ago.
    ExpiredRefreshTokens {
        /// Age after expiry.
        older_than: Duration,
    },
    /// Email link tokens (used or not) that expired more than `older_than` ago.
    ExpiredEmailTokens {
        /// Age after expiry.
        older_than: Duration,
    },
    /// Verification codes that expired more than `older_than` ago and whose account's
    /// wrong-code counter is as old (the counter must outlive the code).
    ExpiredOtpCodes {
        /// Age after expiry.
        older_than: Duration,
    },
}

#[derive(diesel::QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

impl Sweep {
    /// The table it deletes from (the label of the rows-removed metric).
    pub fn table(&self) -> &'static str {
        match self {
            Sweep::FinishedJobs { .. } => "jobs",
            Sweep::ExpiredSessions { .. } => "sessions",
            Sweep::ExpiredRefreshTokens { .. } => "refresh_tokens",
            Sweep::ExpiredEmailTokens { .. } => "email_tokens",
            Sweep::ExpiredOtpCodes { .. } => "otp_codes",
        }
    }

    /// Deletes at most [`BATCH`] rows older than their cutoff at `now`; returns how many.
    pub async fn batch(
        &self,
        conn: &mut AsyncPgConnection,
        now: DateTime<Utc>,
    ) -> Result<u64, PersistenceError> {
        // Each statement picks its batch through an index (`jobs_by_created` for jobs, oldest
        // first: created_at <= finished_at, so the created_at range bounds the scan, and old
        // rows are nearly all final) and deletes it
        // with SKIP LOCKED, never waiting on a row someone else holds.
        let (sql, cutoff) = match self {
            Sweep::FinishedJobs { status, older_than } => {
                let deleted = diesel::sql_query(
                    "WITH doomed AS (SELECT id FROM jobs WHERE status = $1 AND created_at < $2 \
                     AND finished_at < $2 ORDER BY created_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
                     DELETE FROM jobs WHERE id IN (SELECT id FROM doomed)",
                )
                .bind::<Text, _>(*status)
                .bind::<Timestamptz, _>(now - *older_than)
                .bind::<BigInt, _>(BATCH)
                .execute(conn)
                .await?;
                return Ok(deleted as u64);
            }
            Sweep::ExpiredSessions { older_than } => (
                "WITH doomed AS (SELECT id FROM sessions WHERE expires_at < $1 \
                 LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 DELETE FROM sessions WHERE id IN (SELECT id FROM doomed)",
                now - *older_than,
            ),
            Sweep::ExpiredRefreshTokens { older_than } => (
                "WITH doomed AS (SELECT token_hash FROM refresh_tokens WHERE expires_at < $1 \
                 LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 DELETE FROM refresh_tokens WHERE token_hash IN (SELECT token_hash FROM doomed)",
                now - *older_than,
            ),
            Sweep::ExpiredEmailTokens { older_than } => (
                "WITH doomed AS (SELECT token_hash FROM email_tokens WHERE expires_at < $1 \
                 LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 DELETE FROM email_tokens WHERE token_hash IN (SELECT token_hash FROM doomed)",
                now - *older_than,
            ),
            Sweep::ExpiredOtpCodes { older_than } => (
                "WITH doomed AS (SELECT user_id FROM otp_codes WHERE expires_at < $1 \
                 AND failures_since < $1 LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 DELETE FROM otp_codes WHERE user_id IN (SELECT user_id FROM doomed)",
                now - *older_than,
            ),
        };
        let deleted = diesel::sql_query(sql)
            .bind::<Timestamptz, _>(cutoff)
            .bind::<BigInt, _>(BATCH)
            .execute(conn)
            .await?;
        Ok(deleted as u64)
    }
}

/// Runs every sweep until it has nothing left, under the advisory lock `lock_key`, on a
/// connection of its own to `database_url`. Returns the rows deleted per table, or `None` when
/// another process holds the lock (it is doing the work).
pub async fn run(
    database_url: &str,
    lock_key: i64,
    sweeps: &[Sweep],
    now: DateTime<Utc>,
) -> Result<Option<Vec<(&'static str, u64)>>, PersistenceError> {
    let mut conn = crate::pool::connect(database_url).await?;
    let locked = diesel::sql_query("SELECT pg_try_advisory_lock($1) AS locked")
        .bind::<BigInt, _>(lock_key)
        .get_result::<Locked>(&mut conn)
        .await?
        .locked;
    if !locked {
        return Ok(None);
    }
    let mut removed = Vec::new();
    for sweep in sweeps {
        let mut total = 0;
        loop {
            let deleted = sweep.batch(&mut conn, now).await?;
            total += deleted;
            if deleted < BATCH as u64 {
                break;
            }
            // Let the rest of the workload in between batches.
            tokio::task::yield_now().await;
        }
        removed.push((sweep.table(), total));
    }
    // Closing the connection releases the lock; unlocking first makes it immediate.
    diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(lock_key)
        .execute(&mut conn)
        .await?;
    Ok(Some(removed))
}
