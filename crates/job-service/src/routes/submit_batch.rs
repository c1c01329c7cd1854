//! `POST /api/jobs/submit-batch`: up to 1,000 jobs, all or nothing.
//!
//! Every job gets the checks of a single submit (`submit::check_body`); one invalid
//! job refuses the whole batch with 422 and `errors` keyed `jobs[i].field`. The limits count
//! the batch's jobs: the submit rate takes n tokens, the unfinished-jobs cap counts n more.
//! Then the rows go in with one statement (in one transaction only when parents must be locked
//! or an idempotency key raced), and the dispatch index and the `jobUpdated` events with one
//! Redis round trip of two commands (one script call for the events, one for the enqueues).
//! Each job is serialized once, for its event and its place in the answer.
//!
//! An `Idempotency-Key` applies to the whole batch: sent again with the same key, the request
//! answers 200 with the jobs the first one created, in their order, and creates nothing.
//!
//! A job of a batch may carry `depends_on`, naming jobs that exist before the batch (not other
//! jobs of the same batch: their ids are not known until the answer). Submit a flow level by
//! level: the parents in one request, their children in the next.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use domain::ValidationErrors;
use persistence::job_batch::{self, BatchInserted, MAX_BATCH};
use persistence::jobs::Job;
use serde::Deserialize;
use service_kit::json::Json;
use service_kit::request_id::RequestId;
use uuid::Uuid;

use super::submit::{OwnAddress, SubmitJob, check_body, idempotency_key};
use crate::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;

/// The batch body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBatch {
    /// 1 to 1,000 submit bodies, as for `POST /api/jobs/submit`.
    pub jobs: Vec<SubmitJob>,
}

/// Submits up to 1,000 jobs at once, all or nothing.
#[utoipa::path(post, path = "/api/jobs/submit-batch", tag = "jobs", request_body = SubmitBatch,
    params(("Idempotency-Key" = Option<String>, Header, description = "Names the whole batch: sent again, it answers 200 with the jobs created the first time")),
    responses((status = 201, description = "`{\"jobs\": [job]}` in the order given", body = crate::docs::JobList),
        (status = 200, description = "the jobs created earlier by a batch with this Idempotency-Key", body = crate::docs::JobList),
        (status = 401, body = service_kit::Problem),
        (status = 413, description = "the body is over 1 MiB, or a job's `data` over 64 KiB", body = service_kit::Problem),
        (status = 422, description = "`errors` keyed `jobs[i].field`; nothing was created", body = service_kit::Problem),
        (status = 429, description = "`rate_limited` (the batch costs one submit per job) or `too_many_unfinished_jobs`, with `Retry-After`", body = service_kit::Problem)))]
pub async fn submit_batch(
    state: web::Data<AppState>,
    writes: web::Data<job_queue::Coalescer>,
    user: AuthUser,
    req: HttpRequest,
    request_id: RequestId,
    body: Json<SubmitBatch>,
) -> Result<HttpResponse, ApiError> {
    let bodies = body.into_inner().jobs;
    if bodies.is_empty() || bodies.len() > MAX_BATCH {
        return Err(ValidationErrors::field(
            "jobs",
            format!(
                "must hold 1 to {MAX_BATCH} jobs (it holds {})",
                bodies.len()
            ),
        )
        .into());
    }
    let key = idempotency_key(&req)?;
    let n = bodies.len();
    crate::submit_limits::check_rate(&state, &user, n).await?;

    let mut own = OwnAddress::default();
    let mut errors = ValidationErrors::new();
    let mut invalid = 0;
    let mut checked = Vec::with_capacity(n);
    for (i, body) in bodies.into_iter().enumerate() {
        match check_body(&state, &user, body, &mut own).await {
            Ok(job) => checked.push(job),
            Err(ApiError::Validation(job_errors, _)) => {
                invalid += 1;
                for (field, messages) in job_errors.0 {
                    for message in messages {
                        errors.add(format!("jobs[{i}].{field}"), message);
                    }
                }
            }
            Err(ApiError::PayloadTooLarge(detail)) => {
                return Err(ApiError::PayloadTooLarge(format!(
                    "jobs[{i}]: {detail} Nothing was created."
                )));
            }
            Err(other) => return Err(other),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(
            errors,
            Some(format!(
                "{invalid} of the {n} jobs are invalid, so none was created; see `errors` (keyed `jobs[i].field`)."
            )),
        ));
    }
    crate::submit_limits::check_unfinished(&state, &user, n).await?;

    let now = Utc::now();
    let replay_keys = key
        .as_deref()
        .map(job_batch::batch_replay_keys)
        .unwrap_or_default();
    // UUID v7 ids from one process grow monotonically, so the batch's order is the ids' order:
    // the queue serves one user's jobs in that order.
    let depends_on: Vec<Vec<Uuid>> = checked.iter().map(|job| job.depends_on.clone()).collect();
    let rows: Vec<_> = checked
        .into_iter()
        .enumerate()
        .map(|(i, job)| {
            let key = key.as_deref().map(|k| job_batch::batch_key(k, i));
            job.into_new_job(user.id, Uuid::now_v7(), now, key, &request_id)
        })
        .collect();
    let mut conn = state.conn().await?;
    let inserted =
        job_batch::insert_batch(&mut conn, user.id, rows, depends_on, &replay_keys).await?;
    drop(conn);
    match inserted {
        BatchInserted::Created(jobs) => {
            let rendered: Vec<String> = jobs.iter().map(Job::to_json_string).collect();
            super::announce_rendered(&state, &writes, &jobs, &rendered).await;
            Ok(super::jobs_response(HttpResponse::Created(), &rendered))
        }
        BatchInserted::Existing(jobs) => {
            let rendered: Vec<String> = jobs.iter().map(Job::to_json_string).collect();
            Ok(super::jobs_response(HttpResponse::Ok(), &rendered))
        }
        BatchInserted::UnknownParents(unknown) => {
            let mut errors = ValidationErrors::new();
            for (i, ids) in &unknown {
                errors.add(
                    format!("jobs[{i}].depends_on"),
                    super::submit::unknown_parents_message(ids),
                );
            }
            Err(ApiError::Validation(
                errors,
                Some(format!(
                    "{} of the {n} jobs name parents that do not exist, so none was created; see `errors`.",
                    unknown.len()
                )),
            ))
        }
    }
}
