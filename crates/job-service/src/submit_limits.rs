//! Abuse limits on `POST /api/jobs/submit` and `/submit-batch`, checked before a job is stored:
//!
//! - a per-user rate (`SUBMIT_RATE_PER_SEC`, bursts of `SUBMIT_BURST`): a token bucket in Redis
//!   (`token_bucket.lua`, one round trip), so it holds across replicas; 429 `rate_limited` with
//!   `Retry-After`. A batch of n jobs costs n tokens; one larger than the burst is accepted
//!   when the bucket is full and leaves it in debt;
//! - a cap on a user's unfinished (waiting, pending, scheduled, running) jobs
//!   (`MAX_UNFINISHED_JOBS_PER_USER`), a batch counting all its jobs: 429
//!   `too_many_unfinished_jobs`;
//! - a cap on a user's schedules (`MAX_SCHEDULES_PER_USER`), checked in the insert's
//!   transaction: 429 `too_many_schedules`;
//! - priorities above `USER_MAX_PRIORITY` only for admins: 422 naming `priority`;
//! - no `\u0000` anywhere in `data` (PostgreSQL's `jsonb` cannot store it): 422 naming `data`.
//!
//! A limit set to 0 is off (the benchmark turns the rate and the cap off this way).

use std::sync::Arc;

use domain::ValidationErrors;
use redis::Script;
use serde_json::Value;
use service_kit::Problem;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::{AppState, Settings};

/// Takes `jobs` submits from the user's rate budget: 429 `rate_limited` with `Retry-After`
/// when the budget cannot pay for them now. Checked first, before any other work.
pub async fn check_rate(state: &AppState, user: &AuthUser, jobs: usize) -> Result<(), ApiError> {
    state
        .submit_limits
        .check_rate(user, u32::try_from(jobs).unwrap_or(u32::MAX))
        .await
}

/// 429 `too_many_unfinished_jobs` when `adding` more jobs would take the user past
/// `MAX_UNFINISHED_JOBS_PER_USER`. Checked last, once every job of the request is valid.
pub async fn check_unfinished(
    state: &AppState,
    user: &AuthUser,
    adding: usize,
) -> Result<(), ApiError> {
    state
        .submit_limits
        .check_unfinished(state, user, u64::try_from(adding).unwrap_or(u64::MAX))
        .await
}

/// How long a client that hit the unfinished-jobs cap is asked to wait before trying again.
const UNFINISHED_RETRY_AFTER_SECS: u64 = 5;

/// `Retry-After` of a 429 `too_many_schedules`.
const TOO_MANY_SCHEDULES_RETRY_AFTER_SECS: u64 = 60;

/// The limits of one process (the rate's state is in Redis).
#[derive(Clone)]
pub struct SubmitLimits {
    pool: deadpool_redis::Pool,
    prefix: String,
    rate_per_sec: u32,
    burst: u32,
    max_unfinished: u64,
    max_schedules: u64,
    user_max_priority: i64,
    bucket: Arc<Script>,
}

impl SubmitLimits {
    /// The limits `settings` set, with state in `pool` under `REDIS_PREFIX`.
    pub fn new(pool: deadpool_redis::Pool, settings: &Settings) -> Self {
        Self {
            pool,
            prefix: settings.redis_prefix.clone(),
            rate_per_sec: settings.submit_rate_per_sec,
            burst: settings.submit_burst,
            max_unfinished: settings.max_unfinished_jobs_per_user,
            max_schedules: settings.max_schedules_per_user,
            user_max_priority: settings.user_max_priority,
            bucket: Arc::new(Script::new(include_str!("token_bucket.lua"))),
        }
    }

    /// `MAX_SCHEDULES_PER_USER`, `None` when off.
    pub fn max_schedules(&self) -> Option<u64> {
        (self.max_schedules > 0).then_some(self.max_schedules)
    }

    /// 429 `too_many_schedules`: the user already has `have` schedules, the most allowed.
    pub fn too_many_schedules(&self, have: u64) -> ApiError {
        metrics::counter!("jobs_submit_limited_total", "limit" => "schedules").increment(1);
        let mut problem = Problem::new(
            actix_web::http::StatusCode::TOO_MANY_REQUESTS,
            "too_many_schedules",
            format!(
                "You have {have} schedules, the most allowed; delete one you no longer need, then create this one again."
            ),
        );
        // Nothing frees a slot but a delete: this is only how soon asking again makes sense.
        problem.retry_after_secs = Some(TOO_MANY_SCHEDULES_RETRY_AFTER_SECS);
        ApiError::Problem(Box::new(problem))
    }

    /// The per-job limits on fields: no `\u0000` in `data`, no priority above
    /// `USER_MAX_PRIORITY` from a non-admin.
    pub fn field_errors(
        &self,
        user: &AuthUser,
        data: &Value,
        priority: Option<i64>,
    ) -> ValidationErrors {
        let mut errors = ValidationErrors::new();
        if contains_nul(data) {
            errors.add(
                "data",
                "must not contain the character \\u0000 (in any string or key)",
            );
        }
        if let Some(priority) = priority
            && priority > self.user_max_priority
            && !user.is_admin()
        {
            errors.add(
                "priority",
                format!(
                    "must be at most {} (higher priorities are for admins)",
                    self.user_max_priority
                ),
            );
        }
        errors
    }

    async fn check_rate(&self, user: &AuthUser, cost: u32) -> Result<(), ApiError> {
        if self.rate_per_sec == 0 {
            return Ok(());
        }
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| ApiError::Unavailable(format!("Redis pool: {e}")))?;
        let wait_ms: u64 = self
            .bucket
            .key(format!("{}submit-rate:{}", self.prefix, user.id))
            .arg(self.rate_per_sec)
            .arg(self.burst)
            .arg(cost)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| ApiError::Unavailable(format!("Redis: {e}")))?;
        if wait_ms > 0 {
            metrics::counter!("jobs_submit_limited_total", "limit" => "rate").increment(1);
            return Err(ApiError::Problem(Box::new(Problem::rate_limited(
                wait_ms.div_ceil(1000),
            ))));
        }
        Ok(())
    }

    /// Refuses `adding` more jobs when the user's unfinished ones would pass the cap.
    async fn check_unfinished(
        &self,
        state: &AppState,
        user: &AuthUser,
        adding: u64,
    ) -> Result<(), ApiError> {
        if self.max_unfinished == 0 {
            return Ok(());
        }
        let mut conn = state.conn().await?;
        let unfinished =
            persistence::job_limits::count_unfinished(&mut conn, user.id, self.max_unfinished)
                .await?;
        if unfinished.saturating_add(adding) > self.max_unfinished {
            metrics::counter!("jobs_submit_limited_total", "limit" => "unfinished").increment(1);
            let mut problem = Problem::new(
                actix_web::http::StatusCode::TOO_MANY_REQUESTS,
                "too_many_unfinished_jobs",
                if adding > 1 {
                    format!(
                        "You have {unfinished} unfinished jobs; {adding} more would pass the limit of {}. Wait for some to finish, cancel some, or send fewer at once.",
                        self.max_unfinished
                    )
                } else {
                    format!(
                        "You have {} unfinished jobs, the most allowed; wait for some to finish, or cancel some, then submit again.",
                        self.max_unfinished
                    )
                },
            );
            problem.retry_after_secs = Some(UNFINISHED_RETRY_AFTER_SECS);
            return Err(ApiError::Problem(Box::new(problem)));
        }
        Ok(())
    }
}

/// True when a string or key anywhere in `value` holds `\0`.
fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map
            .iter()
            .any(|(key, value)| key.contains('\0') || contains_nul(value)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_found_in_strings_and_keys_at_any_depth() {
        assert!(!contains_nul(&serde_json::json!({"a": ["b", {"c": 1}]})));
        assert!(contains_nul(
            &serde_json::json!({"a": ["b", {"c": "x\u{0}"}]})
        ));
        assert!(contains_nul(&serde_json::json!({"a\u{0}": 1})));
        assert!(contains_nul(&serde_json::json!("\u{0}")));
    }
}
