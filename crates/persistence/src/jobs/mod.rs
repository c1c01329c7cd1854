//! The `jobs` table: the record of every job.
//!
//! Status writes made by workers are *fenced*: a claim increments `fence` (and `attempts`), and
//! every later write of that attempt matches `status = 'running' AND fence = <claimed fence>`.
//! An attempt that lost its lease (reaped, cancelled, released) therefore cannot overwrite a
//! newer attempt's outcome, and a job can never be recorded as completed twice: the second
//! write matches no row. Batch variants use `UNNEST` so that one statement carries many jobs.
//!
//! This file holds the row ([`Job`], [`NewJob`], `JOB_COLUMNS`) and its JSON views; the
//! queries are split by caller: `api.rs` what the job service calls (insert, find, list,
//! cancel, retry, stats), `attempts.rs` what the worker's runtime calls (claim, finish,
//! progress, reap, promote) and `reconcile.rs` what the queue reconciler reads. Everything is
//! re-exported here, so `persistence::jobs::X` names each item whatever file holds it.

use chrono::{DateTime, SubsecRound as _, Utc};
use diesel::prelude::*;
use domain::job::{JobStatus, JobType};
use domain::job_view::JobView;
use serde_json::Value;
use uuid::Uuid;

use crate::schema::jobs;

mod api;
mod attempts;
mod reconcile;

#[cfg(feature = "testing")]
pub use api::count_by_status;
pub use api::{
    Inserted, ListQuery, Stats, Transition, cancel, find, insert, list, retry, stats, user_email,
};
pub use attempts::{Outcome, attempt_states, claim, finish, promote, reap, set_progress};
pub use reconcile::{QueueEntry, db_now, queue_entries_of, unfinished_after};

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
    /// The job type (`noop`, `sleep`, …); an unknown name in the row is an error of the read.
    pub job_type: JobType,
    /// The submitted data.
    pub data: Value,
    /// Dispatch priority, −1000..=1000.
    pub priority: i16,
    /// Lifecycle state (`waiting`, `pending`, `scheduled`, `running`, `completed`, `failed`,
    /// `cancelled`); an unknown name in the row is an error of the read.
    pub status: JobStatus,
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
            job_type: self.job_type.as_str(),
            data: &self.data,
            priority: self.priority,
            status: self.status.as_str(),
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
    /// Its type.
    pub job_type: JobType,
    /// Data (already validated).
    pub data: Value,
    /// Priority.
    pub priority: i16,
    /// `pending`, or `scheduled` for a future `run_at`.
    pub status: JobStatus,
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
            job_type: JobType::Echo,
            data: json!({"b": [1, 2.5, "x\"y"], "a": {"n": null}}),
            priority: -3,
            status: JobStatus::Completed,
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
