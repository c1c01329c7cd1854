//! Jobs: their types, states, priorities and the per-type checks made at submit time.

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Email, ValidationErrors};

/// The lifecycle state of a job.
///
/// `pending` (in the queue) → `running` → `completed`; a failed attempt goes to `scheduled`
/// (waiting for its retry time) and back to `pending`; after `max_attempts` failed attempts,
/// `failed`. A job with `depends_on` starts `waiting` and becomes `pending` (or `scheduled`)
/// when every parent completed, or `cancelled` when one failed or was cancelled. `cancelled`
/// is reachable from `waiting`, `pending`, `scheduled` and `running`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[cfg_attr(
    feature = "diesel",
    derive(diesel::AsExpression, diesel::FromSqlRow),
    diesel(sql_type = diesel::sql_types::Text)
)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting for its parents (`depends_on`) to complete; in no queue.
    Waiting,
    /// Ready to run, waiting in the queue.
    Pending,
    /// Waiting for its `run_at` time (first run or retry).
    Scheduled,
    /// Claimed by a worker.
    Running,
    /// Finished successfully (final).
    Completed,
    /// Every attempt failed (final).
    Failed,
    /// Cancelled by its owner or an admin (final).
    Cancelled,
}

impl JobStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [JobStatus; 7] = [
        JobStatus::Waiting,
        JobStatus::Pending,
        JobStatus::Scheduled,
        JobStatus::Running,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    /// Whether the job has finished (`completed`, `failed`, `cancelled`); the others are the
    /// rows of `unfinished_jobs`.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    /// The stored and serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Waiting => "waiting",
            JobStatus::Pending => "pending",
            JobStatus::Scheduled => "scheduled",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }
}

impl FromStr for JobStatus {
    type Err = ValidationErrors;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                ValidationErrors::field(
                    "status",
                    format!(
                        "must be one of: {}",
                        JobStatus::ALL.map(JobStatus::as_str).join(", ")
                    ),
                )
            })
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The built-in job types the worker knows how to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(
    feature = "diesel",
    derive(diesel::AsExpression, diesel::FromSqlRow),
    diesel(sql_type = diesel::sql_types::Text)
)]
#[serde(rename_all = "snake_case")]
pub enum JobType {
    /// Completes at once.
    Noop,
    /// `result` = `data`.
    Echo,
    /// Waits `data.ms` milliseconds, reporting progress.
    Sleep,
    /// Sends `data.subject`/`data.body` to `data.to` through SMTP.
    SendEmail,
    /// `result` = `{"hex": sha256(data.text)}`.
    Hash,
}

impl JobType {
    /// Every known type.
    pub const ALL: [JobType; 5] = [
        JobType::Noop,
        JobType::Echo,
        JobType::Sleep,
        JobType::SendEmail,
        JobType::Hash,
    ];

    /// The stored and serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobType::Noop => "noop",
            JobType::Echo => "echo",
            JobType::Sleep => "sleep",
            JobType::SendEmail => "send_email",
            JobType::Hash => "hash",
        }
    }

    /// Checks `data` for this type (the `shouldFail`/`failTimes` test switches included).
    pub fn validate_data(self, data: &Value) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if let Some(flag) = data.get("shouldFail")
            && !flag.is_boolean()
        {
            errors.add("data.shouldFail", "must be a boolean");
        }
        if let Some(times) = data.get("failTimes")
            && times
                .as_u64()
                .is_none_or(|n| n > u64::from(MaxAttempts::MAX))
        {
            errors.add(
                "data.failTimes",
                format!("must be an integer from 0 to {}", MaxAttempts::MAX),
            );
        }
        match self {
            JobType::Noop | JobType::Echo => {}
            JobType::Sleep => match data.get("ms").and_then(Value::as_u64) {
                Some(ms) if ms <= SLEEP_MAX_MS => {}
                _ => errors.add(
                    "data.ms",
                    format!("must be an integer from 0 to {SLEEP_MAX_MS}"),
                ),
            },
            JobType::SendEmail => {
                match data.get("to").and_then(Value::as_str) {
                    Some(to) => {
                        errors.check(Email::parse(to, "data.to"));
                    }
                    None => errors.add("data.to", "is required: the recipient's email address"),
                }
                for field in ["subject", "body"] {
                    if !data.get(field).is_some_and(Value::is_string) {
                        errors.add(format!("data.{field}"), "is required and must be a string");
                    }
                }
            }
            JobType::Hash => {
                if !data.get("text").is_some_and(Value::is_string) {
                    errors.add("data.text", "is required and must be a string");
                }
                if let Some(algorithm) = data.get("algorithm")
                    && algorithm.as_str() != Some("sha256")
                {
                    errors.add("data.algorithm", "must be \"sha256\"");
                }
            }
        }
        errors.into_result(|| ())
    }
}

/// Longest `sleep` job accepted, in milliseconds.
pub const SLEEP_MAX_MS: u64 = 600_000;

/// Largest `data` accepted at submit time, in bytes of JSON.
pub const MAX_DATA_BYTES: usize = 64 * 1024;

impl FromStr for JobType {
    type Err = ValidationErrors;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                ValidationErrors::field(
                    "type",
                    format!(
                        "unknown job type; known types: {}",
                        JobType::ALL.map(JobType::as_str).join(", ")
                    ),
                )
            })
    }
}

impl std::fmt::Display for JobType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Dispatch priority: higher runs first. −1000..=1000, default 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
#[serde(transparent)]
pub struct Priority(i16);

impl Priority {
    /// Lowest priority.
    pub const MIN: i16 = -1000;
    /// Highest priority.
    pub const MAX: i16 = 1000;

    /// Checks the range.
    pub fn parse(raw: i64) -> Result<Self, ValidationErrors> {
        if (i64::from(Self::MIN)..=i64::from(Self::MAX)).contains(&raw) {
            Ok(Self(raw as i16))
        } else {
            Err(ValidationErrors::field(
                "priority",
                format!("must be an integer from {} to {}", Self::MIN, Self::MAX),
            ))
        }
    }

    /// The priority value.
    pub fn get(self) -> i16 {
        self.0
    }
}

/// How many attempts a job gets: 1..=25, default 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MaxAttempts(u8);

impl MaxAttempts {
    /// Most attempts allowed.
    pub const MAX: u8 = 25;
    /// Attempts when the submitter does not say.
    pub const DEFAULT: MaxAttempts = MaxAttempts(3);

    /// Checks the range.
    pub fn parse(raw: i64) -> Result<Self, ValidationErrors> {
        if (1..=i64::from(Self::MAX)).contains(&raw) {
            Ok(Self(raw as u8))
        } else {
            Err(ValidationErrors::field(
                "max_attempts",
                format!("must be an integer from 1 to {}", Self::MAX),
            ))
        }
    }

    /// The number of attempts.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl Default for MaxAttempts {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn type_names_round_trip() {
        for t in JobType::ALL {
            assert_eq!(t.as_str().parse::<JobType>().ok(), Some(t));
            assert_eq!(serde_json::to_value(t).ok(), Some(json!(t.as_str())));
        }
        let err = "nope"
            .parse::<JobType>()
            .err()
            .map(|e| format!("{:?}", e.0));
        assert!(err.is_some_and(|e| e.contains("send_email")));
    }

    #[test]
    fn ranges_are_enforced() {
        assert!(Priority::parse(1000).is_ok() && Priority::parse(-1000).is_ok());
        assert!(Priority::parse(1001).is_err() && Priority::parse(-1001).is_err());
        assert!(MaxAttempts::parse(0).is_err() && MaxAttempts::parse(26).is_err());
        assert_eq!(MaxAttempts::parse(25).map(MaxAttempts::get).ok(), Some(25));
    }

    #[test]
    fn data_is_checked_per_type() {
        assert!(JobType::Sleep.validate_data(&json!({"ms": 600000})).is_ok());
        assert!(
            JobType::Sleep
                .validate_data(&json!({"ms": 600001}))
                .is_err()
        );
        assert!(JobType::Sleep.validate_data(&json!({})).is_err());
        assert!(JobType::Hash.validate_data(&json!({"text": "a"})).is_ok());
        assert!(
            JobType::Hash
                .validate_data(&json!({"text": "a", "algorithm": "md5"}))
                .is_err()
        );
        assert!(
            JobType::SendEmail
                .validate_data(&json!({"to": "a@b.co", "subject": "s", "body": "b"}))
                .is_ok()
        );
        assert!(
            JobType::SendEmail
                .validate_data(&json!({"to": "nope", "subject": "s", "body": "b"}))
                .is_err()
        );
        assert!(
            JobType::Noop
                .validate_data(&json!({"shouldFail": "yes"}))
                .is_err()
        );
        assert!(
            JobType::Noop
                .validate_data(&json!({"failTimes": 2}))
                .is_ok()
        );
        assert!(JobType::Noop.validate_data(&json!(null)).is_ok());
    }
}
