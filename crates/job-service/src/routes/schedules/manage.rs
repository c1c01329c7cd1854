//! `GET|DELETE /api/schedules/{id}`, `POST /api/schedules/{id}/pause` and `/resume`.

use actix_web::{HttpResponse, web};
use chrono::Utc;
use domain::schedule::CronSchedule;

use crate::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;

/// The schedule, for its owner or an admin; 404 for anyone else.
#[utoipa::path(get, path = "/api/schedules/{id}", tag = "schedules", operation_id = "get_schedule",
    params(("id" = String, Path, description = "Schedule id")),
    responses((status = 200, description = "`{\"schedule\"}`", body = crate::docs::ScheduleEnvelope),
        (status = 401, body = service_kit::Problem), (status = 404, body = service_kit::Problem)))]
pub async fn get(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = super::parse_id(&id)?;
    let mut conn = state.conn().await?;
    let schedule = persistence::schedules::find(&mut conn, id, user.scope())
        .await?
        .ok_or(ApiError::NoSuchSchedule)?;
    Ok(super::schedule_response(HttpResponse::Ok(), &schedule))
}

/// Deletes the schedule: it creates no more jobs. The jobs it created stay (with their
/// `schedule_id`).
#[utoipa::path(delete, path = "/api/schedules/{id}", tag = "schedules", operation_id = "delete_schedule",
    params(("id" = String, Path, description = "Schedule id")),
    responses((status = 204, description = "deleted"),
        (status = 401, body = service_kit::Problem), (status = 404, body = service_kit::Problem)))]
pub async fn delete(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = super::parse_id(&id)?;
    let mut conn = state.conn().await?;
    if persistence::schedules::delete(&mut conn, id, user.scope()).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NoSuchSchedule)
    }
}

/// Pauses the schedule: no job is created until it is resumed (`next_run_at` becomes `null`).
/// Pausing a paused schedule changes nothing.
#[utoipa::path(post, path = "/api/schedules/{id}/pause", tag = "schedules", operation_id = "pause_schedule",
    params(("id" = String, Path, description = "Schedule id")),
    responses((status = 200, description = "`{\"schedule\"}`, now paused", body = crate::docs::ScheduleEnvelope),
        (status = 401, body = service_kit::Problem), (status = 404, body = service_kit::Problem)))]
pub async fn pause(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = super::parse_id(&id)?;
    let mut conn = state.conn().await?;
    let schedule = persistence::schedules::pause(&mut conn, id, user.scope())
        .await?
        .ok_or(ApiError::NoSuchSchedule)?;
    Ok(super::schedule_response(HttpResponse::Ok(), &schedule))
}

/// Resumes the schedule from now: its next due time is the first one after now (the due times
/// that passed while it was paused are skipped, not caught up). Resuming a running schedule
/// changes nothing.
#[utoipa::path(post, path = "/api/schedules/{id}/resume", tag = "schedules", operation_id = "resume_schedule",
    params(("id" = String, Path, description = "Schedule id")),
    responses((status = 200, description = "`{\"schedule\"}`, now active", body = crate::docs::ScheduleEnvelope),
        (status = 401, body = service_kit::Problem), (status = 404, body = service_kit::Problem)))]
pub async fn resume(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = super::parse_id(&id)?;
    let mut conn = state.conn().await?;
    let found = persistence::schedules::find(&mut conn, id, user.scope())
        .await?
        .ok_or(ApiError::NoSuchSchedule)?;
    if !found.paused {
        return Ok(super::schedule_response(HttpResponse::Ok(), &found));
    }
    let next = CronSchedule::parse(&found.cron, Some(&found.timezone))
        .map_err(|e| ApiError::Internal(format!("stored schedule {id} no longer parses: {e:?}")))?
        .next_after(Utc::now());
    let schedule = persistence::schedules::resume(&mut conn, id, user.scope(), next)
        .await?
        .ok_or(ApiError::NoSuchSchedule)?;
    drop(conn);
    super::wake_schedulers(&state).await;
    Ok(super::schedule_response(HttpResponse::Ok(), &schedule))
}
