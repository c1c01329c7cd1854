//! `GET /api/jobs/{id}/logs`.

use actix_web::{HttpResponse, web};
use chrono::SecondsFormat;
use persistence::job_logs::Line;
use serde_json::json;

use crate::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;

/// The lines a job's handlers wrote (its newest 1,000, oldest first), for the job's owner or an
/// admin; 404 for anyone else.
#[utoipa::path(get, path = "/api/jobs/{id}/logs", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "`{\"lines\": [...]}`, oldest first", body = crate::docs::JobLogs),
        (status = 401, body = service_kit::Problem), (status = 404, body = service_kit::Problem)))]
pub async fn logs(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = super::parse_id(&id)?;
    let mut conn = state.conn().await?;
    let lines = persistence::job_logs::of_job(&mut conn, id, user.scope())
        .await?
        .ok_or(ApiError::NotFound)?;
    drop(conn);
    let lines: Vec<_> = lines.iter().map(line_json).collect();
    Ok(HttpResponse::Ok().json(json!({ "lines": lines })))
}

fn line_json(line: &Line) -> serde_json::Value {
    json!({
        "at": line.at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "attempt": line.attempt,
        "level": line.level,
        "message": line.message,
    })
}
