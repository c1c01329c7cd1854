//! `POST /api/jobs/admin/pause` and `POST /api/jobs/admin/resume` (admins only).
//!
//! PostgreSQL holds the paused types (`queue_pause`), so a pause survives a restart of every
//! process and a loss of Redis's data. Claims read Redis's mirror of it, written here after the
//! commit with the state's version (an older state never overwrites a newer one) and rewritten
//! from PostgreSQL by the workers whenever Redis has lost it; if the write here fails, the
//! workers' reconciler repairs it within `RECONCILE_INTERVAL_SECS`. Each change is announced
//! to the WebSocket room `admin:jobs` as `queuePaused` or `queueResumed`.

use actix_web::{HttpResponse, web};
use domain::job::JobType;
use serde::{Deserialize, Serialize};
use serde_json::json;
use service_kit::json::Json;

use crate::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::ws::Gateway;
use crate::ws::protocol::ADMIN_JOBS;

/// The body of both routes.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseRequest {
    /// One job type; absent or `null`: every type.
    #[serde(rename = "type")]
    pub job_type: Option<String>,
}

/// The answer of both routes and the `paused` of `GET /api/jobs/stats`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PausedTypes {
    /// Every paused type, sorted by name (all of them when everything is paused).
    pub paused: Vec<JobType>,
}

/// Pauses one type, or every type: their queued jobs stay queued and none starts until
/// resumed; running jobs finish.
#[utoipa::path(post, path = "/api/jobs/admin/pause", tag = "jobs", request_body = PauseRequest,
    responses((status = 200, description = "`{\"paused\": [type]}`: every type paused now", body = PausedTypes),
        (status = 401, body = service_kit::Problem), (status = 403, body = service_kit::Problem),
        (status = 422, description = "an unknown `type`", body = service_kit::Problem)))]
pub async fn pause(
    state: web::Data<AppState>,
    gateway: web::Data<Gateway>,
    user: AuthUser,
    body: Json<PauseRequest>,
) -> Result<HttpResponse, ApiError> {
    change(&state, &gateway, user, body.into_inner(), Change::Pause).await
}

/// Resumes one type, or every type.
#[utoipa::path(post, path = "/api/jobs/admin/resume", tag = "jobs", request_body = PauseRequest,
    responses((status = 200, description = "`{\"paused\": [type]}`: the types still paused", body = PausedTypes),
        (status = 401, body = service_kit::Problem), (status = 403, body = service_kit::Problem),
        (status = 422, description = "an unknown `type`", body = service_kit::Problem)))]
pub async fn resume(
    state: web::Data<AppState>,
    gateway: web::Data<Gateway>,
    user: AuthUser,
    body: Json<PauseRequest>,
) -> Result<HttpResponse, ApiError> {
    change(&state, &gateway, user, body.into_inner(), Change::Resume).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Pause,
    Resume,
}

impl Change {
    fn event(self) -> &'static str {
        match self {
            Change::Pause => "queuePaused",
            Change::Resume => "queueResumed",
        }
    }
}

async fn change(
    state: &AppState,
    gateway: &Gateway,
    user: AuthUser,
    body: PauseRequest,
    change: Change,
) -> Result<HttpResponse, ApiError> {
    if !user.is_admin() {
        return Err(ApiError::Forbidden(
            "Only admins can pause or resume job types.",
        ));
    }
    let types: Vec<JobType> = match body.job_type.as_deref() {
        Some(name) => vec![name.parse()?],
        None => JobType::ALL.to_vec(),
    };
    let names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
    let record = {
        let mut conn = state.conn().await?;
        match change {
            Change::Pause => persistence::queue_pause::pause(&mut conn, &names, user.id).await?,
            Change::Resume => persistence::queue_pause::resume(&mut conn, &names, user.id).await?,
        }
    };
    let paused = known(&record.paused_types);
    if let Err(error) = state.queue.mirror_paused(record.version, &paused).await {
        tracing::warn!(%error, "writing the paused types to Redis failed; the workers' reconciler will");
    }
    tracing::info!(admin = %user.id, change = change.event(), types = ?names, "job types paused or resumed");
    let frame = json!({"event": change.event(), "data": {"types": types, "paused": paused}});
    if let Err(error) = announce(gateway, &frame.to_string()).await {
        tracing::warn!(%error, "announcing a pause to the admin room failed");
    }
    Ok(HttpResponse::Ok().json(PausedTypes { paused }))
}

/// The stored names this build knows (every stored name came from a known type).
pub(crate) fn known(names: &[String]) -> Vec<JobType> {
    names.iter().filter_map(|name| name.parse().ok()).collect()
}

/// Publishes `frame` to the `admin:jobs` room on every replica.
async fn announce(gateway: &Gateway, frame: &str) -> Result<(), String> {
    let mut conn = gateway.redis.get().await.map_err(|e| e.to_string())?;
    redis::cmd("PUBLISH")
        .arg(gateway.channels.room(ADMIN_JOBS))
        .arg(frame)
        .query_async::<()>(&mut conn)
        .await
        .map_err(|e| e.to_string())
}
