//! The `job_logs` table: lines written by job handlers, at most [`MAX_LINES_PER_JOB`] per job.
//!
//! Workers buffer lines and write them with [`append`], one statement for a whole batch of
//! lines of any number of jobs; the same statement drops each job's oldest lines beyond the
//! cap, so a chatty job never grows the table. Lines go with their job (`ON DELETE CASCADE`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Int4, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::PersistenceError;

/// Most lines kept per job; older ones are dropped.
pub const MAX_LINES_PER_JOB: usize = 1000;

/// One line to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLine {
    /// The job.
    pub job_id: Uuid,
    /// When the handler wrote it.
    pub at: DateTime<Utc>,
    /// The attempt that wrote it.
    pub attempt: i32,
    /// `debug`, `info`, `warn` or `error`.
    pub level: &'static str,
    /// The text.
    pub message: String,
}

/// One stored line.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Line {
    /// When the handler wrote it.
    #[diesel(sql_type = Timestamptz)]
    pub at: DateTime<Utc>,
    /// The attempt that wrote it.
    #[diesel(sql_type = Int4)]
    pub attempt: i32,
    /// `debug`, `info`, `warn` or `error`.
    #[diesel(sql_type = Text)]
    pub level: String,
    /// The text.
    #[diesel(sql_type = Text)]
    pub message: String,
}

/// Writes `lines` (in their order, per job) and drops each job's oldest lines beyond
/// [`MAX_LINES_PER_JOB`], in one statement. Of more than the cap for one job in one call, only
/// the newest are written. Lines of jobs deleted meanwhile are skipped.
pub async fn append(
    conn: &mut AsyncPgConnection,
    lines: &[NewLine],
) -> Result<usize, PersistenceError> {
    if lines.is_empty() {
        return Ok(0);
    }
    let lines = newest_per_job(lines);
    let job_ids: Vec<Uuid> = lines.iter().map(|l| l.job_id).collect();
    let ats: Vec<DateTime<Utc>> = lines.iter().map(|l| l.at).collect();
    let attempts: Vec<i32> = lines.iter().map(|l| l.attempt).collect();
    let levels: Vec<&str> = lines.iter().map(|l| l.level).collect();
    let messages: Vec<&str> = lines.iter().map(|l| l.message.as_str()).collect();
    // The DELETE sees the table as it was before the INSERT (one snapshot for the whole
    // statement), so for a job that gets `k` new lines it keeps the newest `cap - k` old ones.
    let sql = format!(
        "WITH new AS ( \
             INSERT INTO job_logs (job_id, at, attempt, level, message) \
             SELECT n.job_id, n.at, n.attempt, n.level, n.message \
             FROM UNNEST($1::uuid[], $2::timestamptz[], $3::int4[], $4::text[], $5::text[]) \
                 WITH ORDINALITY AS n(job_id, at, attempt, level, message, ord) \
             WHERE EXISTS (SELECT 1 FROM jobs j WHERE j.id = n.job_id) \
             ORDER BY n.ord \
             RETURNING job_id \
         ), counts AS (SELECT job_id, count(*) AS k FROM new GROUP BY job_id), \
         gone AS ( \
             DELETE FROM job_logs l USING counts c \
             WHERE l.job_id = c.job_id AND l.id <= COALESCE(( \
                 SELECT o.id FROM job_logs o WHERE o.job_id = c.job_id \
                 ORDER BY o.id DESC OFFSET GREATEST({MAX_LINES_PER_JOB} - c.k, 0) LIMIT 1), 0) \
         ) \
         SELECT count(*)::int4 AS n FROM new"
    );
    #[derive(QueryableByName)]
    struct Written {
        #[diesel(sql_type = Int4)]
        n: i32,
    }
    let written: Written = diesel::sql_query(sql)
        .bind::<Array<diesel::sql_types::Uuid>, _>(job_ids)
        .bind::<Array<Timestamptz>, _>(ats)
        .bind::<Array<Int4>, _>(attempts)
        .bind::<Array<Text>, _>(levels)
        .bind::<Array<Text>, _>(messages)
        .get_result(conn)
        .await?;
    Ok(usize::try_from(written.n).unwrap_or(0))
}

/// `lines` keeping, per job, only the newest [`MAX_LINES_PER_JOB`] (order kept).
fn newest_per_job(lines: &[NewLine]) -> Vec<&NewLine> {
    let mut per_job: std::collections::HashMap<Uuid, usize> = std::collections::HashMap::new();
    for line in lines {
        *per_job.entry(line.job_id).or_default() += 1;
    }
    let mut skip: std::collections::HashMap<Uuid, usize> = per_job
        .into_iter()
        .map(|(job, n)| (job, n.saturating_sub(MAX_LINES_PER_JOB)))
        .collect();
    lines
        .iter()
        .filter(|line| match skip.get_mut(&line.job_id) {
            Some(n) if *n > 0 => {
                *n -= 1;
                false
            }
            _ => true,
        })
        .collect()
}

/// The lines of job `id`, oldest first, if the job exists and (when `owner` is given) belongs
/// to `owner`; `None` otherwise. One statement: the job's row decides visibility.
pub async fn of_job(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    owner: Option<Uuid>,
) -> Result<Option<Vec<Line>>, PersistenceError> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Nullable<Timestamptz>)]
        at: Option<DateTime<Utc>>,
        #[diesel(sql_type = Nullable<Int4>)]
        attempt: Option<i32>,
        #[diesel(sql_type = Nullable<Text>)]
        level: Option<String>,
        #[diesel(sql_type = Nullable<Text>)]
        message: Option<String>,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT l.at, l.attempt, l.level, l.message FROM jobs j \
         LEFT JOIN job_logs l ON l.job_id = j.id \
         WHERE j.id = $1 AND ($2::uuid IS NULL OR j.user_id = $2) \
         ORDER BY l.id",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .bind::<Nullable<diesel::sql_types::Uuid>, _>(owner)
    .load(conn)
    .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        rows.into_iter()
            .filter_map(|row| {
                Some(Line {
                    at: row.at?,
                    attempt: row.attempt?,
                    level: row.level?,
                    message: row.message?,
                })
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_newest_lines_of_a_job_over_the_cap_are_kept() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let line = |job_id, n: usize| NewLine {
            job_id,
            at: Utc::now(),
            attempt: 1,
            level: "info",
            message: n.to_string(),
        };
        let mut lines: Vec<NewLine> = (0..MAX_LINES_PER_JOB + 5).map(|n| line(a, n)).collect();
        lines.insert(3, line(b, 0));
        let kept = newest_per_job(&lines);
        assert_eq!(kept.len(), MAX_LINES_PER_JOB + 1);
        assert!(kept.iter().any(|l| l.job_id == b));
        let first_of_a = kept
            .iter()
            .find(|l| l.job_id == a)
            .map(|l| l.message.clone());
        assert_eq!(first_of_a.as_deref(), Some("5"));
    }
}
