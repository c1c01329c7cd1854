//! `POST /api/schedules`.

use actix_web::{HttpResponse, web};
use chrono::Utc;
use domain::ValidationErrors;
use domain::job::{JobType, MAX_DATA_BYTES, MaxAttempts, Priority};
use domain::schedule::{CronSchedule, parse_name};
use persistence::schedules::NewSchedule;
use serde::Deserialize;
use serde_json::Value;
use service_kit::json::Json;
use uuid::Uuid;

use crate::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;

/// The body of `POST /api/schedules`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSchedule {
    /// A label, 1 to 200 characters.
    pub name: String,
    /// Five fields (minute hour day-of-month month day-of-week), or six with a leading seconds
    /// field (an extension of the contract). Names (`MON`, `JAN`), ranges, steps and lists work.
    #[schema(example = "*/5 * * * *")]
    pub cron: String,
    /// IANA time zone the expression is read in (default `UTC`).
    #[schema(example = "Europe/Berlin")]
    pub timezone: Option<String>,
    /// The job created at each due time, checked like a submit.
    pub job: ScheduledJob,
}

/// The job part of a schedule: a submit body without `run_at` (the schedule says when).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduledJob {
    /// A built-in job type.
    #[serde(rename = "type")]
    pub job_type: String,
    /// Type-specific data (default `{}`), at most 64 KiB of JSON.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
    /// −1000..=1000, default 0.
    pub priority: Option<i64>,
    /// 1..=25, default 3.
    pub max_attempts: Option<i64>,
}

/// Creates a schedule. Its job is checked as a submit would be (same rules and limits, errors
/// keyed `job.<field>`); a bad expression or zone is a 422 on `cron` or `timezone`.
#[utoipa::path(post, path = "/api/schedules", tag = "schedules", operation_id = "create_schedule", request_body = CreateSchedule,
    responses((status = 201, description = "`{\"schedule\"}`", body = crate::docs::ScheduleEnvelope),
        (status = 401, body = service_kit::Problem), (status = 413, body = service_kit::Problem),
        (status = 422, body = service_kit::Problem),
        (status = 429, description = "`rate_limited` or `too_many_unfinished_jobs`, as for a submit, or `too_many_schedules` past `MAX_SCHEDULES_PER_USER`", body = service_kit::Problem)))]
pub async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    body: Json<CreateSchedule>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let job = body.job;
    let data = match job.data {
        None | Some(Value::Null) => Value::Object(serde_json::Map::new()),
        Some(data) => data,
    };
    crate::submit_limits::check_rate(&state, &user, 1).await?;
    let data_len = serde_json::to_vec(&data)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if data_len > MAX_DATA_BYTES {
        return Err(ApiError::PayloadTooLarge(format!(
            "`job.data` is {data_len} bytes of JSON; the limit is {} KiB.",
            MAX_DATA_BYTES / 1024
        )));
    }

    // The per-job field limits of a submit (`\u0000`, `USER_MAX_PRIORITY`).
    let mut job_errors = state.submit_limits.field_errors(&user, &data, job.priority);
    let job_type = job_errors.check(job.job_type.parse::<JobType>());
    let priority = job.priority.map_or(Some(Priority::default()), |p| {
        job_errors.check(Priority::parse(p))
    });
    let max_attempts = job.max_attempts.map_or(Some(MaxAttempts::DEFAULT), |m| {
        job_errors.check(MaxAttempts::parse(m))
    });
    if let Some(job_type) = job_type {
        job_errors.check(job_type.validate_data(&data));
        if job_type == JobType::SendEmail && !user.is_admin() && job_errors.is_empty() {
            crate::routes::submit::check_own_address(
                &state,
                &user,
                &data,
                &mut crate::routes::submit::OwnAddress::default(),
                &mut job_errors,
            )
            .await?;
        }
    }
    let mut errors = nested("job", job_errors);
    let name = errors.check(parse_name(&body.name));
    let schedule = errors.check(CronSchedule::parse(&body.cron, body.timezone.as_deref()));
    let (Some(job_type), Some(priority), Some(max_attempts), Some(name), Some(schedule), true) = (
        job_type,
        priority,
        max_attempts,
        name,
        schedule,
        errors.is_empty(),
    ) else {
        return Err(ApiError::Validation(errors, None));
    };

    let now = Utc::now();
    let new = NewSchedule {
        id: Uuid::now_v7(),
        user_id: user.id,
        name,
        cron: schedule.expression().to_owned(),
        timezone: schedule.timezone().to_owned(),
        job_type,
        data,
        priority: priority.get(),
        max_attempts: i32::from(max_attempts.get()),
        next_run_at: schedule.next_after(now),
        created_at: now,
        updated_at: now,
    };
    let mut conn = state.conn().await?;
    let created =
        persistence::schedules::insert(&mut conn, &new, state.submit_limits.max_schedules())
            .await?
            .map_err(|have| state.submit_limits.too_many_schedules(have))?;
    drop(conn);
    super::wake_schedulers(&state).await;
    Ok(super::schedule_response(HttpResponse::Created(), &created))
}

/// `errors` with every field renamed `<prefix>.<field>`.
fn nested(prefix: &str, errors: ValidationErrors) -> ValidationErrors {
    ValidationErrors(
        errors
            .0
            .into_iter()
            .map(|(field, messages)| (format!("{prefix}.{field}"), messages))
            .collect(),
    )
}
