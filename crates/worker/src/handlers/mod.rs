//! Job handlers: one [`Handler`] per built-in type, one file each, collected in a [`Registry`].
//!
//! Adding a type: add it to `domain::job::JobType` (with its `validate_data` checks), write a
//! file here implementing [`Handler`], and register it in [`Registry::builtin`].

mod echo;
mod hash;
mod noop;
mod send_email;
mod sleep;

use std::collections::HashMap;
use std::sync::Arc;

use domain::job::JobType;
use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use crate::logs::LogLevel;
pub use persistence::dependencies::ParentResult;
pub use service_kit::mail::Mailer;

/// Why an attempt failed (becomes the job's `last_error`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

impl HandlerError {
    /// A failure with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Reports progress of a running attempt (fenced and throttled by the runtime).
pub trait ProgressSink: Send + Sync {
    /// Records `percent` (0..=100) for the job.
    fn report(&self, percent: u8) -> BoxFuture<'_, ()>;
}

/// What a handler gets to work with.
pub struct JobContext {
    /// The job.
    pub id: Uuid,
    /// Its data.
    pub data: Value,
    /// The attempt number (1 for the first).
    pub attempt: i32,
    /// Fires when the job was cancelled, the attempt lost its lease, or the worker is
    /// releasing it at shutdown; long handlers check it and return early.
    pub cancel: CancellationToken,
    /// Where progress goes.
    pub progress: Arc<dyn ProgressSink>,
    /// Where log lines go (see [`JobContext::log`]).
    pub logs: Arc<crate::logs::LogBuffer>,
    /// The job's parents (`depends_on`) with their results, in the order given; empty for a
    /// job without dependencies.
    pub parents: Vec<ParentResult>,
}

impl JobContext {
    /// Records progress (0..=100).
    pub async fn report_progress(&self, percent: u8) {
        self.progress.report(percent.min(100)).await;
    }

    /// Writes a line to the job's log (`GET /api/jobs/{id}/logs`), tagged with this attempt.
    /// Never blocks: lines are buffered and written in batches (see [`crate::logs`]); the
    /// newest 1,000 lines of a job are kept.
    pub fn log(&self, level: LogLevel, message: impl Into<String>) {
        self.logs.push(self.id, self.attempt, level, message);
    }
}

/// Runs one job type.
pub trait Handler: Send + Sync {
    /// The type it runs.
    fn job_type(&self) -> JobType;

    /// Runs one attempt; `Ok` carries the job's `result`.
    fn run<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, Result<Value, HandlerError>>;
}

/// The handlers by type.
#[derive(Clone)]
pub struct Registry {
    handlers: Arc<HashMap<JobType, Arc<dyn Handler>>>,
}

impl Registry {
    /// Every built-in handler.
    pub fn builtin(mailer: Mailer) -> Self {
        let handlers: Vec<Arc<dyn Handler>> = vec![
            Arc::new(noop::Noop),
            Arc::new(echo::Echo),
            Arc::new(sleep::Sleep),
            Arc::new(send_email::SendEmail::new(mailer)),
            Arc::new(hash::Hash),
        ];
        Self {
            handlers: Arc::new(handlers.into_iter().map(|h| (h.job_type(), h)).collect()),
        }
    }

    /// The handler for `job_type`.
    pub fn get(&self, job_type: JobType) -> Option<Arc<dyn Handler>> {
        self.handlers.get(&job_type).cloned()
    }
}

/// The contract's test switches, checked before the handler runs: `"shouldFail": true` fails
/// every attempt, `"failTimes": n` fails the first n.
pub fn injected_failure(data: &Value, attempt: i32) -> Option<HandlerError> {
    if data.get("shouldFail").and_then(Value::as_bool) == Some(true) {
        return Some(HandlerError::new("failed on purpose (shouldFail)"));
    }
    let fail_times = data.get("failTimes").and_then(Value::as_u64).unwrap_or(0);
    if u64::try_from(attempt).is_ok_and(|a| a <= fail_times) {
        return Some(HandlerError::new(format!(
            "failed on purpose (failTimes: attempt {attempt} of {fail_times})"
        )));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn failure_switches() {
        assert!(injected_failure(&json!({"shouldFail": true}), 7).is_some());
        assert!(injected_failure(&json!({"failTimes": 2}), 2).is_some());
        assert!(injected_failure(&json!({"failTimes": 2}), 3).is_none());
        assert!(injected_failure(&json!({}), 1).is_none());
    }
}
