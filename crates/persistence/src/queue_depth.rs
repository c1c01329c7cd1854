//! How many unfinished jobs there are, by status and priority: what autoscalers and
//! dashboards read (the job service's `/queue-depth`).

use diesel::sql_types::{BigInt, SmallInt, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::job::JobStatus;

use crate::PersistenceError;

/// Unfinished jobs of one status and priority.
#[derive(Debug, Clone, PartialEq, Eq, diesel::QueryableByName)]
pub struct DepthRow {
    /// `pending`, `scheduled` or `running`.
    #[diesel(sql_type = Text)]
    pub status: JobStatus,
    /// Their priority.
    #[diesel(sql_type = SmallInt)]
    pub priority: i16,
    /// How many.
    #[diesel(sql_type = BigInt)]
    pub jobs: i64,
}

/// Counts the `pending`, `scheduled` and `running` jobs by status and priority. The count walks
/// the unfinished jobs only (through `unfinished_jobs`), never the finished history.
pub async fn unfinished(conn: &mut AsyncPgConnection) -> Result<Vec<DepthRow>, PersistenceError> {
    Ok(diesel::sql_query(
        "SELECT j.status, j.priority, count(*) AS jobs \
         FROM unfinished_jobs u JOIN jobs j ON j.id = u.job_id \
         WHERE j.status IN ('pending', 'scheduled', 'running') \
         GROUP BY j.status, j.priority ORDER BY j.status, j.priority",
    )
    .load(conn)
    .await?)
}
