//! `POST /api/jobs/{id}/retry`.

use actix_web::{HttpResponse, web};

use super::Action;
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
    super::change(&state, &writes, user, &id, Action::Retry).await
}
