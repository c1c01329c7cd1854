//! `POST /api/jobs/submit`.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use domain::ValidationErrors;
use domain::job::{JobType, MAX_DATA_BYTES, MaxAttempts, Priority};
use persistence::jobs::{Inserted, NewJob};
use serde::Deserialize;
use serde_json::Value;
use service_kit::json::Json;
use service_kit::request_id::RequestId;
use uuid::Uuid;

use super::IndexChange;
use crate::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;

/// Longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// The submit body. Numbers are taken as `i64` so that out-of-range values get a 422 naming
/// the field rather than a type error.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    /// A built-in job type.
    #[serde(rename = "type")]
    pub job_type: String,
    /// Type-specific data (default `{}`), at most 64 KiB of JSON.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
    /// −1000..=1000, default 0; higher runs first.
    pub priority: Option<i64>,
    /// 1..=25, default 3.
    pub max_attempts: Option<i64>,
    /// RFC 3339; a future time makes the job `scheduled` until then.
    pub run_at: Option<String>,
}

/// Submits a job. With an `Idempotency-Key` this user already used: 200 and the original job.
#[utoipa::path(post, path = "/api/jobs/submit", tag = "jobs", request_body = SubmitJob,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retried submits create one job")),
    responses((status = 201, description = "`{\"job\"}`", body = crate::docs::JobEnvelope),
        (status = 200, description = "the job created earlier with this Idempotency-Key", body = crate::docs::JobEnvelope),
        (status = 401, body = service_kit::Problem), (status = 413, body = service_kit::Problem),
        (status = 422, body = service_kit::Problem),
        (status = 429, description = "`rate_limited` (per-user submit rate) or `too_many_unfinished_jobs`, with `Retry-After`", body = service_kit::Problem)))]
pub async fn submit(
    state: web::Data<AppState>,
    writes: web::Data<job_queue::Coalescer>,
    user: AuthUser,
    req: HttpRequest,
    request_id: RequestId,
    body: Json<SubmitJob>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let idempotency_key = idempotency_key(&req)?;
    let data = match body.data {
        None | Some(Value::Null) => Value::Object(serde_json::Map::new()),
        Some(data) => data,
    };
    crate::submit_limits::check(&state, &user, &data, body.priority).await?;
    let data_len = serde_json::to_vec(&data)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if data_len > MAX_DATA_BYTES {
        return Err(ApiError::PayloadTooLarge(format!(
            "`data` is {data_len} bytes of JSON; the limit is {} KiB.",
            MAX_DATA_BYTES / 1024
        )));
    }

    let mut errors = ValidationErrors::new();
    let job_type = errors.check(body.job_type.parse::<JobType>());
    let priority = body.priority.map_or(Some(Priority::default()), |p| {
        errors.check(Priority::parse(p))
    });
    let max_attempts = body.max_attempts.map_or(Some(MaxAttempts::DEFAULT), |m| {
        errors.check(MaxAttempts::parse(m))
    });
    let run_at = match &body.run_at {
        None => None,
        Some(raw) => match DateTime::parse_from_rfc3339(raw) {
            Ok(at) => Some(at.with_timezone(&Utc)),
            Err(_) => {
                errors.add(
                    "run_at",
                    "must be an RFC 3339 timestamp such as 2030-01-01T12:00:00Z",
                );
                None
            }
        },
    };
    if let Some(job_type) = job_type {
        errors.check(job_type.validate_data(&data));
        if job_type == JobType::SendEmail && !user.is_admin() && errors.is_empty() {
            check_own_address(&state, &user, &data, &mut errors).await?;
        }
    }
    let (Some(job_type), Some(priority), Some(max_attempts), true) =
        (job_type, priority, max_attempts, errors.is_empty())
    else {
        let detail = job_type.is_none().then(|| {
            let known = JobType::ALL.map(JobType::as_str).join(", ");
            format!(
                "Unknown job type `{}`; known types: {known}. See `errors` for every field to change.",
                body.job_type
            )
        });
        return Err(ApiError::Validation(errors, detail));
    };

    let now = Utc::now();
    let scheduled = run_at.is_some_and(|at| at > now);
    let new = NewJob {
        id: Uuid::now_v7(),
        user_id: user.id,
        job_type: job_type.as_str().to_owned(),
        data,
        priority: priority.get(),
        status: if scheduled { "scheduled" } else { "pending" }.to_owned(),
        max_attempts: i32::from(max_attempts.get()),
        run_at,
        idempotency_key,
        created_at: now,
        updated_at: now,
        request_id: Some(request_id.as_str().to_owned()),
    };
    let mut conn = state.conn().await?;
    let inserted = persistence::jobs::insert(&mut conn, &new).await?;
    drop(conn);
    match inserted {
        Inserted::Created(job) => {
            super::announce(&state, &writes, &job, IndexChange::Enqueue).await;
            Ok(super::job_response(HttpResponse::Created(), &job))
        }
        Inserted::Existing(job) => Ok(super::job_response(HttpResponse::Ok(), &job)),
    }
}

fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(raw) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    match raw.to_str() {
        Ok(key) if !key.trim().is_empty() && key.len() <= MAX_IDEMPOTENCY_KEY_LEN => {
            Ok(Some(key.trim().to_owned()))
        }
        _ => Err(ApiError::Validation(
            ValidationErrors::field(
                "Idempotency-Key",
                format!("must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"),
            ),
            None,
        )),
    }
}

/// `send_email` from a non-admin may only go to the submitter's own, verified address.
pub(crate) async fn check_own_address(
    state: &AppState,
    user: &AuthUser,
    data: &Value,
    errors: &mut ValidationErrors,
) -> Result<(), ApiError> {
    let to = data
        .get("to")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim();
    let mut conn = state.conn().await?;
    let own = persistence::jobs::user_email(&mut conn, user.id).await?;
    match own {
        Some((email, true)) if email.eq_ignore_ascii_case(to) => {}
        Some((email, false)) if email.eq_ignore_ascii_case(to) => {
            errors.add("data.to", "your email address is not verified yet");
        }
        _ => errors.add(
            "data.to",
            "must be your own email address (only admins may send elsewhere)",
        ),
    }
    Ok(())
}
