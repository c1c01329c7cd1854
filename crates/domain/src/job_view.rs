//! The job object of the API, as `GET /api/jobs/{id}` returns it and as `jobUpdated` events
//! carry it: one type for the responses, the events and the OpenAPI document.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use serde_json::Value;
use uuid::Uuid;

use crate::job::{JobStatus, JobType};

/// The job object of the API, borrowed from wherever the job is held (a database row).
/// Timestamps are RFC 3339 in UTC with microseconds (`2026-12-01T10:00:00.123456Z`), so that
/// `updated_at` orders every change a client can see.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Job)]
pub struct JobView<'a> {
    /// Job id (UUID v7: ids sort by creation time).
    pub id: Uuid,
    /// The owner.
    pub user_id: Uuid,
    /// The job type.
    #[serde(rename = "type")]
    #[schema(value_type = JobType)]
    pub job_type: &'a str,
    /// The submitted data.
    #[schema(value_type = Object)]
    pub data: &'a Value,
    /// −1000..=1000; higher runs first.
    pub priority: i16,
    /// Lifecycle state.
    #[schema(value_type = JobStatus)]
    pub status: &'a str,
    /// Attempts claimed so far.
    pub attempts: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// 0..=100.
    pub progress: i16,
    /// The handler's result, once completed.
    #[schema(value_type = Option<Object>)]
    pub result: Option<&'a Value>,
    /// Why the last attempt failed.
    pub last_error: Option<&'a str>,
    /// When a scheduled job becomes due.
    #[serde(serialize_with = "optional_micros")]
    pub run_at: Option<DateTime<Utc>>,
    /// Submission time.
    #[serde(serialize_with = "micros")]
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[serde(serialize_with = "micros")]
    pub updated_at: DateTime<Utc>,
    /// Start of the latest attempt.
    #[serde(serialize_with = "optional_micros")]
    pub started_at: Option<DateTime<Utc>>,
    /// When the job reached a final state.
    #[serde(serialize_with = "optional_micros")]
    pub finished_at: Option<DateTime<Utc>>,
    /// The jobs this one waits for (`depends_on` at submit), in the order given.
    pub depends_on: &'a [Uuid],
    /// The schedule that created the job (`null` for a submitted job).
    pub schedule_id: Option<Uuid>,
}

fn micros<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Micros, true))
}

fn optional_micros<S: Serializer>(
    at: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => micros(at, serializer),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;
    use serde_json::json;

    use super::*;

    #[test]
    fn it_renders_the_contract_s_job_object() {
        let (data, result, parents) = (json!({"ms": 5}), json!({"ok": true}), [Uuid::nil()]);
        let at = Utc.timestamp_opt(1_764_583_200, 123_456_000).single();
        let Some(at) = at else {
            panic!("a valid instant");
        };
        let view = JobView {
            id: Uuid::nil(),
            user_id: Uuid::nil(),
            job_type: "sleep",
            data: &data,
            priority: 5,
            status: "completed",
            attempts: 1,
            max_attempts: 3,
            progress: 100,
            result: Some(&result),
            last_error: None,
            run_at: None,
            created_at: at,
            updated_at: at,
            started_at: Some(at),
            finished_at: Some(at),
            depends_on: &parents,
            schedule_id: None,
        };
        let rendered = serde_json::to_value(&view).ok();
        assert_eq!(
            rendered,
            Some(json!({
                "id": Uuid::nil(), "user_id": Uuid::nil(), "type": "sleep", "data": {"ms": 5},
                "priority": 5, "status": "completed", "attempts": 1, "max_attempts": 3,
                "progress": 100, "result": {"ok": true}, "last_error": null, "run_at": null,
                "created_at": "2025-12-01T10:00:00.123456Z",
                "updated_at": "2025-12-01T10:00:00.123456Z",
                "started_at": "2025-12-01T10:00:00.123456Z",
                "finished_at": "2025-12-01T10:00:00.123456Z",
                "depends_on": [Uuid::nil()], "schedule_id": null,
            }))
        );
    }
}
