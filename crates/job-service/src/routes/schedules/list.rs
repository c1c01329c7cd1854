//! `GET /api/schedules`.

use actix_web::{HttpResponse, web};
use domain::ValidationErrors;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::AppState;
use crate::auth::AuthUser;
use crate::error::ApiError;

/// Default page size.
const DEFAULT_LIMIT: i64 = 20;
/// Largest page size.
const MAX_LIMIT: i64 = 100;

/// Query parameters; both optional, both checked.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ScheduleListParams {
    /// 1..=100 (default 20).
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The caller's schedules (an admin's: everyone's), newest first.
#[utoipa::path(get, path = "/api/schedules", tag = "schedules", operation_id = "list_schedules", params(ScheduleListParams),
    responses((status = 200, description = "`{\"items\": [schedule], \"next_cursor\"}`", body = crate::docs::SchedulePage),
        (status = 401, body = service_kit::Problem), (status = 422, body = service_kit::Problem)))]
pub async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
    params: web::Query<ScheduleListParams>,
) -> Result<HttpResponse, ApiError> {
    let mut errors = ValidationErrors::new();
    let limit = match params.limit.as_deref().filter(|s| !s.is_empty()) {
        None => DEFAULT_LIMIT,
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                errors.add("limit", format!("must be an integer from 1 to {MAX_LIMIT}"));
                DEFAULT_LIMIT
            }
        },
    };
    // Schedule ids are UUID v7, so the last id of a page is the cursor (ids sort by creation).
    let before = match params.cursor.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => match Uuid::parse_str(raw) {
            Ok(id) => Some(id),
            Err(_) => {
                errors.add(
                    "cursor",
                    "is not a cursor from this API (use next_cursor as given)",
                );
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let mut conn = state.conn().await?;
    let mut schedules =
        persistence::schedules::list(&mut conn, user.scope(), before, limit + 1).await?;
    drop(conn);
    let next_cursor = if schedules.len() as i64 > limit {
        schedules.truncate(limit as usize);
        schedules.last().map(|last| last.id.to_string())
    } else {
        None
    };
    let items: Vec<_> = schedules
        .iter()
        .map(persistence::schedules::Schedule::to_json)
        .collect();
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_cursor": next_cursor})))
}
