//! `POST /api/jobs/{id}/cancel`.

use actix_web::{HttpResponse, web};

use super::Action;
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
    super::change(&state, &writes, user, &id, Action::Cancel).await
}
