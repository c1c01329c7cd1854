//! `POST /api/jobs/{id}/cancel`.

use actix_web::{HttpResponse, web};
use persistence::jobs::Cancelled;

use super::IndexChange;
use crate::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;

/// Cancels a pending, scheduled or running job. A queued job leaves the queue at once; a
/// running one is stopped by its worker at the next check (the worker sees the row).
#[utoipa::path(post, path = "/api/jobs/{id}/cancel", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "`{\"job\"}` now cancelled", body = crate::docs::JobEnvelope),
        (status = 401, body = service_kit::Problem), (status = 404, body = service_kit::Problem),
        (status = 409, description = "`already_finished`", body = service_kit::Problem)))]
pub async fn cancel(
    state: web::Data<AppState>,
    writes: web::Data<job_queue::Coalescer>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = super::parse_id(&id)?;
    let mut conn = state.conn().await?;
    match persistence::jobs::cancel(&mut conn, id, user.scope()).await? {
        Cancelled::Done { job, was } => {
            drop(conn);
            let change = if was == "running" {
                IndexChange::None
            } else {
                IndexChange::Dequeue
            };
            super::announce(&state, &writes, &job, change).await;
            Ok(super::job_response(HttpResponse::Ok(), &job))
        }
        Cancelled::AlreadyFinished(job) => Err(ApiError::Conflict(
            "already_finished",
            format!(
                "The job is already {}; only pending, scheduled or running jobs can be cancelled.",
                job.status
            ),
        )),
        Cancelled::NotFound => Err(ApiError::NotFound),
    }
}
