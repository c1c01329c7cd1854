//! `POST /api/jobs/{id}/retry`.

use actix_web::{HttpResponse, web};
use persistence::jobs::Retried;

use super::IndexChange;
use crate::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;

/// Puts a failed or cancelled job back in the queue with `attempts` 0.
#[utoipa::path(post, path = "/api/jobs/{id}/retry", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "`{\"job\"}` now pending", body = crate::docs::JobEnvelope),
        (status = 401, body = service_kit::Problem), (status = 404, body = service_kit::Problem),
        (status = 409, description = "`not_retryable`", body = service_kit::Problem)))]
pub async fn retry(
    state: web::Data<AppState>,
    writes: web::Data<job_queue::Coalescer>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = super::parse_id(&id)?;
    let mut conn = state.conn().await?;
    match persistence::jobs::retry(&mut conn, id, user.scope()).await? {
        Retried::Done(job) => {
            drop(conn);
            super::announce(&state, &writes, &job, IndexChange::Enqueue).await;
            Ok(super::job_response(HttpResponse::Ok(), &job))
        }
        Retried::NotRetryable(job) => Err(ApiError::Conflict(
            "not_retryable",
            format!(
                "The job is {}; only failed or cancelled jobs can be retried.",
                job.status
            ),
        )),
        Retried::NotFound => Err(ApiError::NotFound),
    }
}
