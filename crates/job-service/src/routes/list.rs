//! `GET /api/jobs/all` and `GET /api/jobs/admin/all`: keyset pages, newest first.

use actix_web::{HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Datelike as _, Utc};
use domain::ValidationErrors;
use domain::job::{JobStatus, JobType};
use persistence::jobs::ListQuery;
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

/// Query parameters; all optional, all checked (a bad one is a 422 naming it).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only jobs in this status.
    pub status: Option<String>,
    /// Only jobs of this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub job_type: Option<String>,
    /// 1..=100 (default 20).
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only this user's jobs (admin route only).
    pub user_id: Option<String>,
}

/// The caller's jobs.
#[utoipa::path(get, path = "/api/jobs/all", tag = "jobs", params(ListParams),
    responses((status = 200, description = "`{\"items\": [job], \"next_cursor\"}`", body = crate::docs::JobPage),
        (status = 401, body = service_kit::Problem), (status = 422, body = service_kit::Problem)))]
pub async fn list_own(
    state: web::Data<AppState>,
    user: AuthUser,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    page(&state, Some(user.id), &params, false).await
}

/// Every user's jobs (admins only).
#[utoipa::path(get, path = "/api/jobs/admin/all", tag = "jobs", params(ListParams),
    responses((status = 200, description = "`{\"items\": [job], \"next_cursor\"}`", body = crate::docs::JobPage),
        (status = 401, body = service_kit::Problem), (status = 403, body = service_kit::Problem),
        (status = 422, body = service_kit::Problem)))]
pub async fn list_all(
    state: web::Data<AppState>,
    user: AuthUser,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    if !user.is_admin() {
        return Err(ApiError::Forbidden(
            "Only admins can list every user's jobs.",
        ));
    }
    page(&state, None, &params, true).await
}

async fn page(
    state: &AppState,
    owner: Option<Uuid>,
    params: &ListParams,
    admin: bool,
) -> Result<HttpResponse, ApiError> {
    let mut errors = ValidationErrors::new();
    let status = params
        .status
        .as_deref()
        .filter(|s| !s.is_empty())
        .and_then(|s| errors.check(s.parse::<JobStatus>()));
    let job_type = params
        .job_type
        .as_deref()
        .filter(|s| !s.is_empty())
        .and_then(|s| errors.check(s.parse::<JobType>()));
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
    let before = match params.cursor.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(raw) => {
            let cursor = decode_cursor(raw);
            if cursor.is_none() {
                errors.add(
                    "cursor",
                    "is not a cursor from this API (use next_cursor as given)",
                );
            }
            cursor
        }
    };
    let mut user_id = owner;
    if admin && let Some(raw) = params.user_id.as_deref().filter(|s| !s.is_empty()) {
        match Uuid::parse_str(raw) {
            Ok(id) => user_id = Some(id),
            Err(_) => errors.add("user_id", "must be a UUID"),
        }
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let query = ListQuery {
        user_id,
        status,
        job_type,
        before,
        limit: limit + 1,
    };
    let mut conn = state.conn().await?;
    let mut jobs = persistence::jobs::list(&mut conn, &query).await?;
    drop(conn);
    let next_cursor = if jobs.len() as i64 > limit {
        jobs.truncate(limit as usize);
        jobs.last()
            .map(|last| encode_cursor(last.created_at, last.id))
    } else {
        None
    };
    let items: Vec<_> = jobs.iter().map(persistence::jobs::Job::to_json).collect();
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_cursor": next_cursor})))
}

/// An opaque cursor: base64url of `<created_at µs>.<id>`.
pub fn encode_cursor(created_at: DateTime<Utc>, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}.{}", created_at.timestamp_micros(), id.simple()))
}

/// The position a cursor names, if it is one. Its time must lie in years 1..=9999: every
/// job's does, and PostgreSQL refuses times before 4713 BC that chrono would accept.
pub fn decode_cursor(raw: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (micros, id) = text.split_once('.')?;
    let at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
    if !(1..=9999).contains(&at.year()) {
        return None;
    }
    Some((at, Uuid::parse_str(id).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let at = DateTime::from_timestamp_micros(1_790_000_000_123_456).unwrap_or_default();
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(at, id)), Some((at, id)));
        assert_eq!(decode_cursor("nope"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("x.y")), None);
        let ancient = format!("{}.{}", -8_000_000_000_000_000_000_i64, id.simple());
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode(ancient)), None);
    }
}
