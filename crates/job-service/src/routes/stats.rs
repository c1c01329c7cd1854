//! `GET /api/jobs/stats`.

use actix_web::{HttpResponse, web};
use domain::job::JobStatus;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;

/// Counts per status (every status, zeros included) and pending jobs per priority: the
/// caller's own jobs, or the whole system's for an admin; and the paused job types (the same
/// for everyone; all of them listed when everything is paused).
#[utoipa::path(get, path = "/api/jobs/stats", tag = "jobs",
    responses((status = 200, description = "`{\"counts\": {...}, \"queue_depth\": {\"<priority>\": n}, \"paused\": [type]}`"),
        (status = 401, body = service_kit::Problem)))]
pub async fn stats(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    let mut conn = state.conn().await?;
    let stats = persistence::jobs::stats(&mut conn, user.scope()).await?;
    let paused = persistence::queue_pause::get(&mut conn).await?;
    let mut counts = Map::new();
    for status in JobStatus::ALL {
        let n = stats
            .by_status
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n);
        counts.insert(status.as_str().to_owned(), json!(n));
    }
    let depth: Map<String, Value> = stats
        .pending_by_priority
        .iter()
        .map(|(priority, n)| (priority.to_string(), json!(n)))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "counts": counts,
        "queue_depth": depth,
        "paused": super::pause::known(&paused.paused_types),
    })))
}
