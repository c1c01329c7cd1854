//! `POST /api/jobs/submit`.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use domain::ValidationErrors;
use domain::job::{JobStatus, JobType, MAX_DATA_BYTES, MaxAttempts, Priority};
use persistence::dependencies::MAX_PARENTS;
use persistence::job_batch::BatchInserted;
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
    /// 1 to 20 ids of the submitter's own existing jobs: the job starts `waiting` and runs
    /// once every one of them has completed (cancelled when one fails or is cancelled).
    pub depends_on: Option<Vec<Uuid>>,
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
    groups: web::Data<Option<crate::submit_group::SubmitGroups>>,
    user: AuthUser,
    req: HttpRequest,
    request_id: RequestId,
    body: Json<SubmitJob>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let idempotency_key = idempotency_key(&req)?;
    crate::submit_limits::check_rate(&state, &user, 1).await?;
    let checked = check_body(&state, &user, body, &mut OwnAddress::default()).await?;
    crate::submit_limits::check_unfinished(&state, &user, 1).await?;
    let depends_on = checked.depends_on.clone();
    let new = checked.into_new_job(
        user.id,
        Uuid::now_v7(),
        Utc::now(),
        idempotency_key,
        &request_id,
    );
    if !depends_on.is_empty() {
        return submit_with_parents(&state, &writes, &user, new, depends_on).await;
    }
    if let Some(groups) = groups.get_ref() {
        // Stored, committed and indexed with whatever else is being submitted (see
        // `crate::submit_group`).
        return Ok(match groups.submit(new).await? {
            Inserted::Created(job) => super::job_response(HttpResponse::Created(), &job),
            Inserted::Existing(job) => super::job_response(HttpResponse::Ok(), &job),
        });
    }
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

/// A single submit with `depends_on`: stored as a batch of one (the parents are locked and
/// checked in its transaction).
async fn submit_with_parents(
    state: &AppState,
    writes: &job_queue::Coalescer,
    user: &AuthUser,
    new: NewJob,
    depends_on: Vec<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let replay_keys: Vec<String> = new.idempotency_key.iter().cloned().collect();
    let mut conn = state.conn().await?;
    let inserted = persistence::job_batch::insert_batch(
        &mut conn,
        user.id,
        vec![new],
        vec![depends_on],
        &replay_keys,
    )
    .await?;
    drop(conn);
    let (created, jobs) = match inserted {
        BatchInserted::Created(jobs) => (true, jobs),
        BatchInserted::Existing(jobs) => (false, jobs),
        BatchInserted::UnknownParents(unknown) => {
            let mut errors = ValidationErrors::new();
            for (_, ids) in unknown {
                errors.add("depends_on", unknown_parents_message(&ids));
            }
            return Err(errors.into());
        }
    };
    let Some(job) = jobs.into_iter().next() else {
        return Err(ApiError::Unavailable(
            "the job was stored but could not be read back".to_owned(),
        ));
    };
    if created {
        super::announce_all(state, writes, std::slice::from_ref(&job)).await;
        Ok(super::job_response(HttpResponse::Created(), &job))
    } else {
        Ok(super::job_response(HttpResponse::Ok(), &job))
    }
}

/// The 422 message for parents that do not exist or are someone else's (the same words for
/// both).
pub(crate) fn unknown_parents_message(ids: &[Uuid]) -> String {
    let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    format!(
        "names jobs that do not exist (or are not yours): {}",
        ids.join(", ")
    )
}

/// A submit body that passed every per-job check: what goes into the row.
#[derive(Debug)]
pub(crate) struct Checked {
    job_type: JobType,
    data: Value,
    priority: Priority,
    max_attempts: MaxAttempts,
    run_at: Option<DateTime<Utc>>,
    /// Its parents (empty: none), checked for count and repeats; their existence is checked
    /// when the row is stored.
    pub(crate) depends_on: Vec<Uuid>,
}

impl Checked {
    /// The row to insert: `scheduled` with a future `run_at`, else `pending`.
    pub(crate) fn into_new_job(
        self,
        user_id: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
        idempotency_key: Option<String>,
        request_id: &RequestId,
    ) -> NewJob {
        let scheduled = self.run_at.is_some_and(|at| at > now);
        NewJob {
            id,
            user_id,
            job_type: self.job_type,
            data: self.data,
            priority: self.priority.get(),
            status: if scheduled {
                JobStatus::Scheduled
            } else {
                JobStatus::Pending
            },
            max_attempts: i32::from(self.max_attempts.get()),
            run_at: self.run_at,
            idempotency_key,
            created_at: now,
            updated_at: now,
            request_id: Some(request_id.as_str().to_owned()),
        }
    }
}

/// The submitter's own address and whether it is verified, read once per request (a batch of
/// `send_email` jobs reads it once).
#[derive(Debug, Default)]
pub(crate) struct OwnAddress(Option<Option<(String, bool)>>);

/// Every per-job check of one submit body: the field limits (`\u0000`, `USER_MAX_PRIORITY`),
/// the 64 KiB `data` limit (413), the type, ranges, `run_at` and type-specific `data` (422),
/// and the `send_email` recipient rule.
pub(crate) async fn check_body(
    state: &AppState,
    user: &AuthUser,
    body: SubmitJob,
    own: &mut OwnAddress,
) -> Result<Checked, ApiError> {
    let data = match body.data {
        None | Some(Value::Null) => Value::Object(serde_json::Map::new()),
        Some(data) => data,
    };
    let data_len = json_len(&data);
    if data_len > MAX_DATA_BYTES {
        return Err(ApiError::PayloadTooLarge(format!(
            "`data` is {data_len} bytes of JSON; the limit is {} KiB.",
            MAX_DATA_BYTES / 1024
        )));
    }

    let mut errors = state.submit_limits.field_errors(user, &data, body.priority);
    let job_type = errors.check(body.job_type.parse::<JobType>());
    let priority = body.priority.map_or(Some(Priority::default()), |p| {
        errors.check(Priority::parse(p))
    });
    let max_attempts = body.max_attempts.map_or(Some(MaxAttempts::DEFAULT), |m| {
        errors.check(MaxAttempts::parse(m))
    });
    let depends_on = match body.depends_on {
        None => Vec::new(),
        Some(ids) => {
            let distinct: std::collections::HashSet<Uuid> = ids.iter().copied().collect();
            if ids.is_empty() || ids.len() > MAX_PARENTS {
                errors.add(
                    "depends_on",
                    format!("must list 1 to {MAX_PARENTS} job ids (or be left out)"),
                );
            } else if distinct.len() < ids.len() {
                errors.add("depends_on", "must not list a job twice");
            }
            ids
        }
    };
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
            check_own_address(state, user, &data, own, &mut errors).await?;
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
    Ok(Checked {
        job_type,
        data,
        priority,
        max_attempts,
        run_at,
        depends_on,
    })
}

/// The length of `value` as compact JSON, counted without building the text.
fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

/// The request's `Idempotency-Key`, trimmed; 422 when it is empty, too long or not visible
/// ASCII.
pub(crate) fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
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
    own: &mut OwnAddress,
    errors: &mut ValidationErrors,
) -> Result<(), ApiError> {
    let to = data
        .get("to")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim();
    let own = match &own.0 {
        Some(known) => known.clone(),
        None => {
            let mut conn = state.conn().await?;
            let read = persistence::jobs::user_email(&mut conn, user.id).await?;
            own.0 = Some(read.clone());
            read
        }
    };
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
