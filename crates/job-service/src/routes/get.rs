//! `GET /api/jobs/{id}`.

use actix_web::{HttpResponse, web};

use crate::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;

/// The job, for its owner or an admin; 404 for anyone else.
#[utoipa::path(get, path = "/api/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "`{\"job\"}`", body = crate::docs::JobEnvelope),
        (status = 401, body = service_kit::Problem), (status = 404, body = service_kit::Problem)))]
pub async fn get(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = super::parse_id(&id)?;
    let mut conn = state.conn().await?;
    let job = persistence::jobs::find(&mut conn, id, user.scope())
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(super::job_response(HttpResponse::Ok(), &job))
}
