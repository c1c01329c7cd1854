//! The routes of `/api/jobs`, one file each.

pub mod cancel;
pub mod get;
pub mod list;
pub mod logs;
pub mod pause;
pub mod retry;
pub mod schedules;
pub mod stats;
pub mod submit;
pub mod submit_batch;

use actix_web::{HttpResponse, web};
use domain::job::JobStatus;
use job_queue::Entry;
use persistence::jobs::{Job, Transition};
use uuid::Uuid;

use crate::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;

/// Mounts every job route. Literal paths come before `/{id}`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/jobs")
            .route("/submit", web::post().to(submit::submit))
            .route("/submit-batch", web::post().to(submit_batch::submit_batch))
            .route("/all", web::get().to(list::list_own))
            .route("/stats", web::get().to(stats::stats))
            .route("/admin/all", web::get().to(list::list_all))
            .route("/admin/pause", web::post().to(pause::pause))
            .route("/admin/resume", web::post().to(pause::resume))
            .route("/{id}", web::get().to(get::get))
            .route("/{id}/logs", web::get().to(logs::logs))
            .route("/{id}/cancel", web::post().to(cancel::cancel))
            .route("/{id}/retry", web::post().to(retry::retry)),
    );
}

/// A path id; anything that is not a UUID names no job (404, not 400).
pub(crate) fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound)
}

/// `{"job": {...}}` with `status`.
pub(crate) fn job_response(mut builder: actix_web::HttpResponseBuilder, job: &Job) -> HttpResponse {
    builder
        .insert_header(actix_web::http::header::ContentType::json())
        .body(format!(r#"{{"job":{}}}"#, job.to_json_string()))
}

/// What the dispatch index must do for a job changed by this service.
pub(crate) enum IndexChange {
    /// Put it in the ready or scheduled set, as its status says.
    Enqueue,
    /// Take it out of the ready and scheduled sets.
    Dequeue,
    /// Nothing (only publish the event).
    None,
}

/// Updates the dispatch index and publishes the `jobUpdated` event in one round trip. The row
/// is already committed, so a Redis failure is logged, not reported: the reconciler repairs
/// the index from PostgreSQL.
pub(crate) async fn announce(
    state: &AppState,
    writes: &job_queue::Coalescer,
    job: &Job,
    change: IndexChange,
) {
    let mut batch = state.queue.batch();
    let entry = Entry {
        id: job.id,
        user_id: job.user_id,
        priority: job.priority,
        job_type: job.job_type,
    };
    match change {
        IndexChange::Enqueue => match (job.status, job.run_at) {
            (JobStatus::Scheduled, Some(run_at)) => {
                batch.schedule(entry, run_at);
            }
            (JobStatus::Pending, _) => {
                batch.enqueue(entry);
            }
            // `waiting` (or settled at once to `cancelled`): in no queue.
            _ => {}
        },
        IndexChange::Dequeue => {
            batch.dequeue(entry);
        }
        IndexChange::None => {}
    }
    batch.publish_event(
        job.user_id,
        job_queue::job_updated_event_from_json(&job.to_json_string()),
    );
    if let Err(error) = writes.send(batch).await {
        tracing::warn!(job = %job.id, %error, "Redis write failed after commit; the reconciler will repair the index");
    }
}

/// Indexes new jobs (ready or scheduled, as their status says) and publishes their
/// `jobUpdated` events, all in one Redis round trip. As for [`announce`], a Redis failure is
/// logged: the rows are committed and the reconciler repairs the index.
pub(crate) async fn announce_all(state: &AppState, writes: &job_queue::Coalescer, jobs: &[Job]) {
    let rendered: Vec<String> = jobs.iter().map(Job::to_json_string).collect();
    announce_rendered(state, writes, jobs, &rendered).await;
}

/// [`announce_all`] for jobs already rendered (`rendered[i]` is `jobs[i]`'s
/// [`Job::to_json_string`]), so that a batch serializes each job once, for its event and its
/// answer.
pub(crate) async fn announce_rendered(
    state: &AppState,
    writes: &job_queue::Coalescer,
    jobs: &[Job],
    rendered: &[String],
) {
    let batch = index_and_events(&state.queue, jobs, rendered);
    if let Err(error) = writes.send(batch).await {
        tracing::warn!(jobs = jobs.len(), %error, "Redis write failed after commit; the reconciler will repair the index");
    }
}

/// The Redis writes that announce new jobs: each in its ready or scheduled set, as its status
/// says, and its `jobUpdated` event (`rendered[i]` is `jobs[i]` as JSON text).
pub(crate) fn index_and_events<'a>(
    queue: &job_queue::Queue,
    jobs: impl IntoIterator<Item = &'a Job>,
    rendered: &[String],
) -> job_queue::Batch {
    let mut batch = queue.batch();
    for (job, json) in jobs.into_iter().zip(rendered) {
        let entry = Entry {
            id: job.id,
            user_id: job.user_id,
            priority: job.priority,
            job_type: job.job_type,
        };
        match (job.status, job.run_at) {
            (JobStatus::Scheduled, Some(run_at)) => {
                batch.schedule(entry, run_at);
            }
            (JobStatus::Pending, _) => {
                batch.enqueue(entry);
            }
            _ => {}
        }
        batch.publish_event(job.user_id, job_queue::job_updated_event_from_json(json));
    }
    batch
}

/// `{"jobs": [...]}` from jobs already rendered as JSON text, in that order.
pub(crate) fn jobs_response(
    mut builder: actix_web::HttpResponseBuilder,
    rendered: &[String],
) -> HttpResponse {
    let mut body = String::with_capacity(rendered.iter().map(|j| j.len() + 1).sum::<usize>() + 11);
    body.push_str(r#"{"jobs":["#);
    for (i, job) in rendered.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(job);
    }
    body.push_str("]}");
    builder
        .insert_header(actix_web::http::header::ContentType::json())
        .body(body)
}

/// A status change a client asks for: `cancel` or `retry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// `POST /api/jobs/{id}/cancel`.
    Cancel,
    /// `POST /api/jobs/{id}/retry`.
    Retry,
}

/// Applies `action` to the job `raw_id` of `user` (any job for an admin): 200 with the job,
/// 404 for a job the caller cannot see, 409 when its status does not allow the change.
pub(crate) async fn change(
    state: &AppState,
    writes: &job_queue::Coalescer,
    user: AuthUser,
    raw_id: &str,
    action: Action,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(raw_id)?;
    let mut conn = state.conn().await?;
    let (changed, settled) = match action {
        Action::Cancel => persistence::dependencies::cancel(&mut conn, id, user.scope()).await?,
        Action::Retry => persistence::dependencies::retry(&mut conn, id, user.scope()).await?,
    };
    drop(conn);
    if !settled.is_empty() {
        // Descendants cancelled with the job (waiting: in no queue, so only events).
        announce_all(state, writes, &settled.cancelled).await;
        announce_all(state, writes, &settled.promoted).await;
    }
    match changed {
        Transition::Done { job, was } => {
            let index = match action {
                // A running job is in no queue; its worker notices the cancellation.
                Action::Cancel if was == JobStatus::Running => IndexChange::None,
                Action::Cancel => IndexChange::Dequeue,
                Action::Retry => IndexChange::Enqueue,
            };
            announce(state, writes, &job, index).await;
            Ok(job_response(HttpResponse::Ok(), &job))
        }
        Transition::Refused(job) => Err(match action {
            Action::Cancel => ApiError::Conflict(
                "already_finished",
                format!(
                    "The job is already {}; only waiting, pending, scheduled or running jobs can be cancelled.",
                    job.status
                ),
            ),
            Action::Retry => ApiError::Conflict(
                "not_retryable",
                format!(
                    "The job is {}; only failed or cancelled jobs can be retried.",
                    job.status
                ),
            ),
        }),
        Transition::NotFound => Err(ApiError::NotFound),
    }
}
