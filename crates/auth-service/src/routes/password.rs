//! Forgotten, reset and changed passwords.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use service_kit::Problem;
use service_kit::json::Json;

use super::registration::EmailRequest;
use super::{MessageResponse, per_ip_limit};
use crate::auth::authenticate;
use crate::error::ApiError;
use crate::services::account;
use crate::state::AppState;

const FORGOT_ACCEPTED: &str =
    "If this address belongs to an account, a password-reset email is on its way.";

/// `POST /api/auth/reset/{token}` body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ResetPasswordRequest {
    /// The new password: 8 to 72 bytes.
    pub password: String,
}

/// `POST /api/auth/change-password` body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// The password in use now.
    pub current_password: String,
    /// The new password: 8 to 72 bytes.
    pub new_password: String,
}

/// Emails a password-reset link.
#[utoipa::path(
    post, path = "/api/auth/forgot-password", tag = "auth",
    request_body = EmailRequest,
    responses(
        (status = 202, description = "Accepted; the same answer for unknown addresses", body = MessageResponse),
        (status = 422, description = "Invalid email", body = Problem),
        (status = 429, description = "Too many requests from this IP", body = Problem),
    )
)]
pub async fn forgot_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<EmailRequest>,
) -> Result<HttpResponse, ApiError> {
    per_ip_limit(&state, &req).await?;
    account::forgot_password(&state, &body.0.email).await?;
    Ok(HttpResponse::Accepted().json(MessageResponse::new(FORGOT_ACCEPTED)))
}

/// Sets a new password with the token from the reset email; every session of the user is
/// revoked.
#[utoipa::path(
    post, path = "/api/auth/reset/{token}", tag = "auth",
    params(("token" = String, Path, description = "The token from the reset link")),
    request_body = ResetPasswordRequest,
    responses(
        (status = 200, description = "Password changed; all sessions revoked", body = MessageResponse),
        (status = 400, description = "`invalid_token`: unknown, expired or used", body = Problem),
        (status = 422, description = "Invalid password", body = Problem),
        (status = 429, description = "Too many requests from this IP", body = Problem),
    )
)]
pub async fn reset_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
    body: Json<ResetPasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    per_ip_limit(&state, &req).await?;
    account::reset_password(&state, &token, body.into_inner().password).await?;
    Ok(HttpResponse::Ok().json(MessageResponse::new(
        "Your password has been changed; sign in again.",
    )))
}

/// Changes the signed-in user's password; their other sessions are revoked.
#[utoipa::path(
    post, path = "/api/auth/change-password", tag = "auth",
    request_body = ChangePasswordRequest,
    security(("cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Password changed; other sessions revoked", body = MessageResponse),
        (status = 401, description = "`unauthorized`: not signed in", body = Problem),
        (status = 403, description = "`invalid_credentials`: the current password is wrong", body = Problem),
        (status = 422, description = "Invalid new password", body = Problem),
        (status = 429, description = "Too many wrong passwords for this account from this client (shared with failed logins); wait `Retry-After` seconds", body = Problem),
    )
)]
pub async fn change_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let claims = authenticate(&state, &req).await?;
    let body = body.into_inner();
    account::change_password(
        &state,
        state.client_ip.of(&req),
        claims.sub,
        claims.sid,
        &body.current_password,
        body.new_password,
    )
    .await?;
    Ok(HttpResponse::Ok().json(MessageResponse::new(
        "Your password has been changed; your other sessions are signed out.",
    )))
}
