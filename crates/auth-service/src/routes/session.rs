//! Login, refresh and logout.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use service_kit::Problem;
use service_kit::json::{self, Json};

use crate::auth::{REFRESH_COOKIE, presented_access_token};
use crate::cookies;
use crate::error::ApiError;
use crate::services::UserView;
use crate::services::session::{self as sessions, Issued};
use crate::state::AppState;

/// `POST /api/auth/login` body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LoginRequest {
    /// The account's address.
    pub email: String,
    /// Its password.
    pub password: String,
}

/// `POST /api/auth/refresh-token` body, for clients that do not use cookies.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token; the `refresh_token` cookie is used when absent.
    pub refresh_token: Option<String>,
}

/// What login and refresh answer (the tokens also come as cookies).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    /// The account.
    pub user: UserView,
    /// The access token (also in the `access_token` cookie).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

fn issued_response(state: &AppState, issued: Issued) -> HttpResponse {
    let body = TokenResponse {
        user: UserView::from(&issued.user),
        access_token: issued.access_token.clone(),
        token_type: "Bearer",
        expires_in: state.settings.access_token_ttl_secs,
    };
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .cookie(cookies::access(&state.settings, issued.access_token))
        .cookie(cookies::refresh(&state.settings, issued.refresh_token))
        .json(body)
}

/// Signs in and sets the `access_token` and `refresh_token` cookies.
#[utoipa::path(
    post, path = "/api/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in; cookies set", body = TokenResponse),
        (status = 401, description = "`invalid_credentials` (also for unknown addresses)", body = Problem),
        (status = 403, description = "`email_not_verified`", body = Problem),
        (status = 422, description = "Invalid email", body = Problem),
        (status = 429, description = "Too many requests from this IP, or this client failed too often on this account and must wait `Retry-After` seconds", body = Problem),
    )
)]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let ip = state.client_ip.of(&req);
    let issued = sessions::login(&state, ip, &body.0.email, &body.0.password).await?;
    Ok(issued_response(&state, issued))
}

/// Spends the refresh token (cookie or body) and returns new tokens and cookies.
#[utoipa::path(
    post, path = "/api/auth/refresh-token", tag = "auth",
    request_body(content = Option<RefreshRequest>, description = "Optional: without it the `refresh_token` cookie is used"),
    security((), ("refresh_cookie" = [])),
    responses(
        (status = 200, description = "New tokens; cookies set", body = TokenResponse),
        (status = 401, description = "`invalid_token`: missing, unknown, expired, or spent (which revokes the session unless within the two-tabs grace period)", body = Problem),
    )
)]
pub async fn refresh_token(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = optional_json::<RefreshRequest>(&req, payload).await?;
    let presented = body
        .and_then(|b| b.refresh_token)
        .or_else(|| req.cookie(REFRESH_COOKIE).map(|c| c.value().to_owned()))
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::InvalidRefreshToken)?;
    let issued = sessions::refresh(&state, &presented).await?;
    Ok(issued_response(&state, issued))
}

/// Signs out: revokes the session and clears both cookies.
#[utoipa::path(
    post, path = "/api/auth/logout", tag = "auth",
    security((), ("cookie" = []), ("bearer" = []), ("refresh_cookie" = [])),
    responses((status = 204, description = "Signed out; cookies cleared"))
)]
pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let refresh = req
        .cookie(REFRESH_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|t| !t.is_empty());
    sessions::logout(&state, presented_access_token(&req), refresh).await?;
    let mut response = HttpResponse::NoContent();
    for cookie in cookies::cleared(&state.settings) {
        response.cookie(cookie);
    }
    Ok(response.finish())
}

/// A JSON body that may be absent: empty is `None`; anything else must be JSON.
async fn optional_json<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Option<T>, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > json::MAX_BODY_BYTES) {
        return Err(json::payload_too_large().into());
    }
    let mut payload = payload.into_inner();
    let bytes = json::read_limited(&mut payload, json::MAX_BODY_BYTES).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if !json::is_json_content_type(req) {
        return Err(json::unsupported_media_type().into());
    }
    Ok(Some(json::parse(&bytes)?))
}
