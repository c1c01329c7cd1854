//! Sign-up and email verification.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use service_kit::Problem;
use service_kit::json::Json;

use super::{MessageResponse, UserResponse, per_ip_limit};
use crate::error::ApiError;
use crate::services::{UserView, account};
use crate::state::AppState;

/// The same answer whether or not the address is taken, so sign-up reveals nothing.
const SIGNUP_ACCEPTED: &str =
    "If this address can be registered, a verification email is on its way.";
const RESEND_ACCEPTED: &str =
    "If this address belongs to an unverified account, a new verification email is on its way.";

/// `POST /api/auth/signup` body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SignupRequest {
    /// A valid email address (stored lower-case).
    pub email: String,
    /// 8 to 72 bytes.
    pub password: String,
}

/// `POST /api/auth/verify-otp` body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct VerifyOtpRequest {
    /// The account's address.
    pub email: String,
    /// The six digits from the verification email.
    pub otp: String,
}

/// A body with only an email address.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EmailRequest {
    /// The account's address.
    pub email: String,
}

/// Creates an account and emails a verification link and code.
#[utoipa::path(
    post, path = "/api/auth/signup", tag = "auth",
    request_body = SignupRequest,
    responses(
        (status = 202, description = "Accepted; the same answer whether or not the address is taken", body = MessageResponse),
        (status = 422, description = "Invalid email or password", body = Problem),
        (status = 429, description = "Too many requests from this IP", body = Problem),
    )
)]
pub async fn signup(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<SignupRequest>,
) -> Result<HttpResponse, ApiError> {
    per_ip_limit(&state, &req).await?;
    let body = body.into_inner();
    account::signup(&state, &body.email, body.password).await?;
    Ok(HttpResponse::Accepted().json(MessageResponse::new(SIGNUP_ACCEPTED)))
}

/// Proves the address with the link token from the verification email.
#[utoipa::path(
    post, path = "/api/auth/verify/{token}", tag = "auth",
    params(("token" = String, Path, description = "The token from the verification link")),
    responses(
        (status = 200, description = "Verified", body = UserResponse),
        (status = 400, description = "`invalid_token`: unknown, expired or used", body = Problem),
        (status = 429, description = "Too many requests from this IP", body = Problem),
    )
)]
pub async fn verify(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    per_ip_limit(&state, &req).await?;
    let user = account::verify_link(&state, &token).await?;
    Ok(HttpResponse::Ok().json(UserResponse {
        user: UserView::from(&user),
    }))
}

/// Proves the address with the six-digit code from the verification email.
#[utoipa::path(
    post, path = "/api/auth/verify-otp", tag = "auth",
    request_body = VerifyOtpRequest,
    responses(
        (status = 200, description = "Verified", body = UserResponse),
        (status = 400, description = "`invalid_otp`: wrong, expired, void after 5 wrong tries, or the account had 10 wrong codes in 24 h (then only the link works); the same for unknown addresses", body = Problem),
        (status = 422, description = "Invalid email or code format", body = Problem),
        (status = 429, description = "Too many requests from this IP", body = Problem),
    )
)]
pub async fn verify_otp(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<VerifyOtpRequest>,
) -> Result<HttpResponse, ApiError> {
    per_ip_limit(&state, &req).await?;
    let user = account::verify_otp(&state, &body.0.email, &body.0.otp).await?;
    Ok(HttpResponse::Ok().json(UserResponse {
        user: UserView::from(&user),
    }))
}

/// Sends a new verification email (new link and code) to an unverified account.
#[utoipa::path(
    post, path = "/api/auth/resend-verification", tag = "auth",
    request_body = EmailRequest,
    responses(
        (status = 202, description = "Accepted; the same answer for unknown and verified addresses", body = MessageResponse),
        (status = 422, description = "Invalid email", body = Problem),
        (status = 429, description = "Too many requests from this IP, or too many verification emails asked for this address (3 an hour, 10 a day, counted alike for unknown addresses)", body = Problem),
    )
)]
pub async fn resend_verification(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<EmailRequest>,
) -> Result<HttpResponse, ApiError> {
    per_ip_limit(&state, &req).await?;
    account::resend_verification(&state, &body.0.email).await?;
    Ok(HttpResponse::Accepted().json(MessageResponse::new(RESEND_ACCEPTED)))
}
