//! Read-only queries on the job record, over one connection of the benchmark's own.

use std::collections::HashMap;

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl as _};
use uuid::Uuid;

/// The benchmark's connection to the database under test.
pub struct Db {
    conn: AsyncPgConnection,
    /// Whether the schema has `unfinished_jobs` (the index of the backlog); builds from before
    /// it (measured with `--bin-dir` for a before/after comparison) have partial indexes on
    /// `jobs.status` instead. Read on first use: the services migrate after this connects.
    backlog_table: Option<bool>,
}

#[derive(QueryableByName)]
struct Flag {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    b: bool,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct StatusCount {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Span {
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    first_finished: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    last_finished: Option<DateTime<Utc>>,
}

#[derive(QueryableByName)]
struct Life {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    started_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    finished_at: Option<DateTime<Utc>>,
}

/// The recorded moments of one completed job: `created_at` (the job service's clock when it
/// handled the submit), `started_at` (the claim's statement) and `finished_at` (the outcome's
/// statement), both PostgreSQL's `now()`.
#[derive(Debug, Clone, Copy)]
pub struct LifeTimes {
    /// Submit handled.
    pub created: DateTime<Utc>,
    /// Claim recorded.
    pub started: DateTime<Utc>,
    /// Outcome recorded.
    pub finished: DateTime<Utc>,
}

/// When a set of completed jobs ran.
#[derive(Debug, Clone, Copy)]
pub struct CompletionSpan {
    /// How many of them are `completed`.
    pub completed: u64,
    /// Earliest `finished_at`.
    pub first_finished: Option<DateTime<Utc>>,
    /// Latest `finished_at`.
    pub last_finished: Option<DateTime<Utc>>,
}

#[derive(QueryableByName)]
struct ServerCounters {
    #[diesel(sql_type = BigInt)]
    next_xid: i64,
    #[diesel(sql_type = BigInt)]
    wal_bytes: i64,
    #[diesel(sql_type = BigInt)]
    connections: i64,
}

/// Server-wide counters that PostgreSQL updates at once (unlike `pg_stat_database`): the next
/// transaction id and the WAL position. They count the whole server, so other databases'
/// clients add to them.
#[derive(Debug, Clone, Copy, Default)]
pub struct PgCounters {
    /// Next transaction id: the difference counts transactions that wrote.
    pub next_xid: i64,
    /// WAL position in bytes.
    pub wal_bytes: i64,
    /// Connections open to this database.
    pub connections: i64,
}

impl PgCounters {
    /// What happened between `self` and the later `end`, per unit of work (`per` jobs or
    /// requests).
    pub fn until(&self, end: &PgCounters, per: usize) -> crate::report::PgWork {
        let per = per.max(1) as f64;
        crate::report::PgWork {
            write_transactions_per_unit: ((end.next_xid - self.next_xid) as f64 / per * 1000.0)
                .round()
                / 1000.0,
            wal_bytes_per_unit: ((end.wal_bytes - self.wal_bytes) as f64 / per).round(),
            connections_at_end: end.connections,
        }
    }
}

impl Db {
    /// Connects to `url`.
    pub async fn connect(url: &str) -> Result<Self> {
        let conn = persistence::pool::connect(url)
            .await
            .context("connect to the bench database")?;
        Ok(Self {
            conn,
            backlog_table: None,
        })
    }

    async fn backlog_table(&mut self) -> Result<bool> {
        if let Some(known) = self.backlog_table {
            return Ok(known);
        }
        let known = diesel::sql_query("SELECT to_regclass('unfinished_jobs') IS NOT NULL AS b")
            .get_result::<Flag>(&mut self.conn)
            .await?
            .b;
        self.backlog_table = Some(known);
        Ok(known)
    }

    /// Jobs not in a final state (the benchmark makes no waiting ones: `pending`, `scheduled`,
    /// `running`). It reads the whole backlog, so the polls use [`Db::any_unfinished`]; this is
    /// for the figures and the progress lines.
    pub async fn unfinished(&mut self) -> Result<u64> {
        let sql = if self.backlog_table().await? {
            "SELECT count(*) AS n FROM unfinished_jobs"
        } else {
            "SELECT count(*) AS n FROM jobs WHERE status IN ('pending', 'scheduled', 'running')"
        };
        let row: Count = diesel::sql_query(sql).get_result(&mut self.conn).await?;
        Ok(u64::try_from(row.n)?)
    }

    /// Whether any job is unfinished: one probe, whatever the backlog (a count of 100,000
    /// rows every 50 ms took a good part of a core from the PostgreSQL it measures).
    pub async fn any_unfinished(&mut self) -> Result<bool> {
        let sql = if self.backlog_table().await? {
            // Through the `queued_at` index, whose entries of deleted rows are marked dead on
            // the first visit: a heap scan would step over every row drained so far.
            "SELECT (SELECT job_id FROM unfinished_jobs ORDER BY queued_at, job_id LIMIT 1) \
             IS NOT NULL AS b"
        } else {
            "SELECT EXISTS (SELECT 1 FROM jobs WHERE status IN ('pending', 'scheduled', 'running')) AS b"
        };
        Ok(diesel::sql_query(sql)
            .get_result::<Flag>(&mut self.conn)
            .await?
            .b)
    }

    /// Number of jobs per status.
    pub async fn status_counts(&mut self) -> Result<HashMap<String, u64>> {
        let rows: Vec<StatusCount> =
            diesel::sql_query("SELECT status, count(*) AS n FROM jobs GROUP BY status")
                .load(&mut self.conn)
                .await?;
        rows.into_iter()
            .map(|r| Ok((r.status, u64::try_from(r.n)?)))
            .collect()
    }

    /// `created_at`, `started_at` and `finished_at` of every completed job, to split its
    /// submit → completed time into its stages.
    pub async fn life_times(&mut self) -> Result<HashMap<Uuid, LifeTimes>> {
        let rows: Vec<Life> = diesel::sql_query(
            "SELECT id, created_at, started_at, finished_at FROM jobs WHERE status = 'completed'",
        )
        .load(&mut self.conn)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                Some((
                    r.id,
                    LifeTimes {
                        created: r.created_at,
                        started: r.started_at?,
                        finished: r.finished_at?,
                    },
                ))
            })
            .collect())
    }

    /// When the completed jobs among `ids` started and finished.
    pub async fn completion_span(&mut self, ids: &[Uuid]) -> Result<CompletionSpan> {
        let row: Span = diesel::sql_query(
            "SELECT count(*) AS n, min(finished_at) AS first_finished, max(finished_at) AS last_finished \
             FROM jobs WHERE status = 'completed' AND id = ANY($1)",
        )
        .bind::<Array<SqlUuid>, _>(ids)
        .get_result(&mut self.conn)
        .await?;
        Ok(CompletionSpan {
            completed: u64::try_from(row.n)?,
            first_finished: row.first_finished,
            last_finished: row.last_finished,
        })
    }

    /// The counters now.
    pub async fn counters(&mut self) -> Result<PgCounters> {
        let row: ServerCounters = diesel::sql_query(
            "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::int8 AS next_xid, \
             pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::int8 AS wal_bytes, \
             (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()) AS connections",
        )
        .get_result(&mut self.conn)
        .await?;
        Ok(PgCounters {
            next_xid: row.next_xid,
            wal_bytes: row.wal_bytes,
            connections: row.connections,
        })
    }

    /// The server's version string.
    pub async fn server_version(&mut self) -> Result<String> {
        let row: ServerVersion = diesel::sql_query("SHOW server_version")
            .get_result(&mut self.conn)
            .await?;
        Ok(row.server_version)
    }
}

#[derive(QueryableByName)]
struct ServerVersion {
    #[diesel(sql_type = Text)]
    server_version: String,
}
