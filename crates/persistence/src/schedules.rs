//! The `schedules` table: periodic jobs, and their firing.
//!
//! Firing ([`fire_due`]) is exactly-once per due time however many workers try at once: in one
//! transaction a worker locks the due rows (`FOR UPDATE SKIP LOCKED`: workers never wait on
//! each other), inserts one job per row for its stored due time, and advances `next_run_at`.
//! The unique index `jobs_schedule_run` on `(schedule_id, schedule_due_at)` makes a second job
//! for the same due time impossible even if the lock were bypassed. A schedule found due
//! several times over (workers down) fires once, for its earliest missed due time, and then
//! moves on to the first due time after now: one catch-up run, not one per missed time.

use chrono::{DateTime, SecondsFormat, Utc};
use diesel::IntoSql as _;
use diesel::prelude::*;
use diesel::sql_types::{Array, Bool, Nullable, Timestamptz};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use domain::job::JobType;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::PersistenceError;
use crate::jobs::Job;
use crate::schema::schedules;

/// One row of `schedules`.
#[derive(Debug, Clone, PartialEq, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = schedules, check_for_backend(diesel::pg::Pg))]
pub struct Schedule {
    /// Schedule id (UUID v7).
    pub id: Uuid,
    /// The owner (of the jobs it creates too).
    pub user_id: Uuid,
    /// A label.
    pub name: String,
    /// The cron expression (five fields, or six with leading seconds).
    pub cron: String,
    /// IANA time zone name.
    pub timezone: String,
    /// Type of the jobs it creates.
    pub job_type: JobType,
    /// Their data.
    pub data: Value,
    /// Their priority.
    pub priority: i16,
    /// Their attempts allowed.
    pub max_attempts: i32,
    /// Paused schedules create nothing.
    pub paused: bool,
    /// The next due time (`None` while paused, or when the expression has no more).
    pub next_run_at: Option<DateTime<Utc>>,
    /// The due time of the last job it created.
    pub last_run_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

fn timestamp(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl Schedule {
    /// The schedule object of the API.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "user_id": self.user_id,
            "name": self.name,
            "cron": self.cron,
            "timezone": self.timezone,
            "job": {
                "type": self.job_type.as_str(),
                "data": self.data,
                "priority": self.priority,
                "max_attempts": self.max_attempts,
            },
            "paused": self.paused,
            "next_run_at": self.next_run_at.as_ref().map(timestamp),
            "last_run_at": self.last_run_at.as_ref().map(timestamp),
            "created_at": timestamp(&self.created_at),
        })
    }
}

/// A schedule to insert (already validated).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = schedules)]
pub struct NewSchedule {
    /// New id (UUID v7).
    pub id: Uuid,
    /// The owner.
    pub user_id: Uuid,
    /// A label.
    pub name: String,
    /// The normalised cron expression.
    pub cron: String,
    /// IANA zone name.
    pub timezone: String,
    /// Job type.
    pub job_type: JobType,
    /// Job data.
    pub data: Value,
    /// Job priority.
    pub priority: i16,
    /// Job attempts.
    pub max_attempts: i32,
    /// The first due time.
    pub next_run_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Same as `created_at`.
    pub updated_at: DateTime<Utc>,
}

/// Inserts a schedule, unless its owner already has `max` of them (`None`: no limit), in which
/// case nothing is written and the count is returned as the error side. Concurrent inserts of
/// one owner are serialized (a transaction-scoped advisory lock on the owner), so the cap holds
/// exactly.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    new: &NewSchedule,
    max: Option<u64>,
) -> Result<Result<Schedule, u64>, PersistenceError> {
    conn.transaction(async |conn| {
        if let Some(max) = max {
            diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 7))")
                .bind::<diesel::sql_types::Uuid, _>(new.user_id)
                .execute(conn)
                .await?;
            let have: i64 = schedules::table
                .filter(schedules::user_id.eq(new.user_id))
                .count()
                .get_result(conn)
                .await?;
            let have = u64::try_from(have).unwrap_or(0);
            if have >= max {
                return Ok(Err(have));
            }
        }
        Ok(Ok(diesel::insert_into(schedules::table)
            .values(new)
            .returning(Schedule::as_returning())
            .get_result(conn)
            .await?))
    })
    .await
}

/// The schedule `id`, if it exists and (when `owner` is given) belongs to `owner`.
pub async fn find(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    owner: Option<Uuid>,
) -> Result<Option<Schedule>, PersistenceError> {
    let query = schedules::table.find(id).select(Schedule::as_select());
    let found = match owner {
        Some(owner) => query.filter(schedules::user_id.eq(owner)).first(conn).await,
        None => query.first(conn).await,
    };
    Ok(found.optional()?)
}

/// Up to `limit` schedules of `owner` (everyone's when `None`), newest first, with an id below
/// `before` (the previous page's last id) when given.
pub async fn list(
    conn: &mut AsyncPgConnection,
    owner: Option<Uuid>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Schedule>, PersistenceError> {
    let mut query = schedules::table
        .select(Schedule::as_select())
        .order(schedules::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(owner) = owner {
        query = query.filter(schedules::user_id.eq(owner));
    }
    if let Some(before) = before {
        query = query.filter(schedules::id.lt(before));
    }
    Ok(query.load(conn).await?)
}

/// Deletes the schedule `id` (of `owner`, when given); `false` when there was none. Its jobs
/// stay.
pub async fn delete(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    owner: Option<Uuid>,
) -> Result<bool, PersistenceError> {
    let deleted = match owner {
        Some(owner) => {
            diesel::delete(
                schedules::table
                    .find(id)
                    .filter(schedules::user_id.eq(owner)),
            )
            .execute(conn)
            .await?
        }
        None => {
            diesel::delete(schedules::table.find(id))
                .execute(conn)
                .await?
        }
    };
    Ok(deleted > 0)
}

/// `user_id = owner`, or true when `owner` is `None` (an admin's request).
fn owned_by(
    owner: Option<Uuid>,
) -> diesel::dsl::Or<diesel::dsl::Eq<schedules::user_id, Uuid>, diesel::dsl::AsExprOf<bool, Bool>> {
    schedules::user_id
        .eq(owner.unwrap_or_else(Uuid::nil))
        .or(owner.is_none().into_sql::<Bool>())
}

/// Pauses the schedule `id` (of `owner`, when given): it creates nothing until resumed. A
/// paused schedule stays as it is. `None` when there is no such schedule.
pub async fn pause(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    owner: Option<Uuid>,
) -> Result<Option<Schedule>, PersistenceError> {
    let target = schedules::table.find(id).filter(owned_by(owner));
    Ok(diesel::update(target)
        .set((
            schedules::paused.eq(true),
            schedules::next_run_at.eq(None::<DateTime<Utc>>),
            schedules::updated_at.eq(diesel::dsl::now),
        ))
        .returning(Schedule::as_returning())
        .get_result(conn)
        .await
        .optional()?)
}

/// Resumes the paused schedule `id` (of `owner`, when given) with `next_run_at` as its next due
/// time (the due times that passed while paused are skipped, not caught up). A schedule that is
/// not paused is returned unchanged. `None` when there is no such schedule.
pub async fn resume(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    owner: Option<Uuid>,
    next_run_at: Option<DateTime<Utc>>,
) -> Result<Option<Schedule>, PersistenceError> {
    let target = schedules::table
        .find(id)
        .filter(schedules::paused)
        .filter(owned_by(owner));
    let resumed = diesel::update(target)
        .set((
            schedules::paused.eq(false),
            schedules::next_run_at.eq(next_run_at),
            schedules::updated_at.eq(diesel::dsl::now),
        ))
        .returning(Schedule::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    match resumed {
        Some(schedule) => Ok(Some(schedule)),
        None => find(conn, id, owner).await,
    }
}

/// What one [`fire_due`] call did.
#[derive(Debug, Clone, Default)]
pub struct Fired {
    /// The jobs created (all `pending`).
    pub jobs: Vec<Job>,
    /// Due schedules found (locked by this call).
    pub schedules: usize,
}

/// Fires up to `limit` due schedules (`next_run_at <= now()`), in one transaction: one job each
/// for its stored due time, `last_run_at` set to that time, and `next_run_at` advanced to
/// `next(schedule, now)`, the first due time after PostgreSQL's `now` (`None`: it has no more).
/// Rows other workers hold are skipped, not waited for.
pub async fn fire_due<F>(
    conn: &mut AsyncPgConnection,
    limit: i64,
    next: F,
) -> Result<Fired, PersistenceError>
where
    F: Fn(&Schedule, DateTime<Utc>) -> Option<DateTime<Utc>> + Send + Sync,
{
    #[derive(QueryableByName)]
    struct Due {
        #[diesel(embed)]
        schedule: Schedule,
        #[diesel(sql_type = Timestamptz)]
        db_now: DateTime<Utc>,
    }
    conn.transaction(async |conn| {
        let due: Vec<Due> = diesel::sql_query(
            "SELECT s.id, s.user_id, s.name, s.cron, s.timezone, s.type AS job_type, s.data, \
                    s.priority, s.max_attempts, s.paused, s.next_run_at, s.last_run_at, \
                    s.created_at, s.updated_at, now() AS db_now \
             FROM schedules s WHERE s.next_run_at <= now() \
             ORDER BY s.next_run_at LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind::<diesel::sql_types::BigInt, _>(limit)
        .load(conn)
        .await?;
        if due.is_empty() {
            return Ok(Fired::default());
        }
        let mut ids = Vec::with_capacity(due.len());
        let mut job_ids = Vec::with_capacity(due.len());
        let mut due_ats = Vec::with_capacity(due.len());
        let mut nexts = Vec::with_capacity(due.len());
        for Due { schedule, db_now } in &due {
            let Some(due_at) = schedule.next_run_at else {
                continue;
            };
            ids.push(schedule.id);
            job_ids.push(Uuid::now_v7());
            due_ats.push(due_at);
            nexts.push(next(schedule, (*db_now).max(due_at)));
        }
        let jobs: Vec<Job> = diesel::sql_query(format!(
            "INSERT INTO jobs AS j (id, user_id, type, data, priority, status, max_attempts, \
                 created_at, updated_at, schedule_id, schedule_due_at) \
             SELECT f.job_id, s.user_id, s.type, s.data, s.priority, 'pending', s.max_attempts, \
                 now(), now(), s.id, f.due_at \
             FROM UNNEST($1::uuid[], $2::uuid[], $3::timestamptz[]) AS f(schedule_id, job_id, due_at) \
             JOIN schedules s ON s.id = f.schedule_id \
             ORDER BY f.job_id \
             ON CONFLICT (schedule_id, schedule_due_at) WHERE schedule_id IS NOT NULL DO NOTHING \
             RETURNING {}",
            crate::jobs::JOB_COLUMNS
        ))
        .bind::<Array<diesel::sql_types::Uuid>, _>(&ids)
        .bind::<Array<diesel::sql_types::Uuid>, _>(&job_ids)
        .bind::<Array<Timestamptz>, _>(&due_ats)
        .load(conn)
        .await?;
        diesel::sql_query(
            "UPDATE schedules s SET next_run_at = u.next_at, last_run_at = u.due_at, \
                 updated_at = now() \
             FROM UNNEST($1::uuid[], $2::timestamptz[], $3::timestamptz[]) AS u(id, due_at, next_at) \
             WHERE s.id = u.id",
        )
        .bind::<Array<diesel::sql_types::Uuid>, _>(&ids)
        .bind::<Array<Timestamptz>, _>(&due_ats)
        .bind::<Array<Nullable<Timestamptz>>, _>(&nexts)
        .execute(conn)
        .await?;
        Ok::<_, PersistenceError>(Fired {
            jobs,
            schedules: due.len(),
        })
    })
    .await
}

/// The earliest `next_run_at` of any active schedule, and PostgreSQL's `now()` (so that a
/// caller can sleep until then whatever its own clock says).
pub async fn next_due(
    conn: &mut AsyncPgConnection,
) -> Result<(Option<DateTime<Utc>>, DateTime<Utc>), PersistenceError> {
    #[derive(QueryableByName)]
    struct Next {
        #[diesel(sql_type = Nullable<Timestamptz>)]
        next: Option<DateTime<Utc>>,
        #[diesel(sql_type = Timestamptz)]
        db_now: DateTime<Utc>,
    }
    let row: Next = diesel::sql_query(
        "SELECT (SELECT min(next_run_at) FROM schedules WHERE next_run_at IS NOT NULL) AS next, \
                now() AS db_now",
    )
    .get_result(conn)
    .await?;
    Ok((row.next, row.db_now))
}
