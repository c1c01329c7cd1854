//! Thin actix handlers, one file per route group; the work is in [`crate::services`].

pub mod jwks;
pub mod me;
pub mod password;
pub mod registration;
pub mod session;

use actix_web::{HttpRequest, web};
use serde::Serialize;

use crate::error::ApiError;
use crate::state::AppState;

/// Registers every route of the service.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/auth/signup", web::post().to(registration::signup))
        .route(
            "/api/auth/verify/{token}",
            web::post().to(registration::verify),
        )
        .route(
            "/api/auth/verify-otp",
            web::post().to(registration::verify_otp),
        )
        .route(
            "/api/auth/resend-verification",
            web::post().to(registration::resend_verification),
        )
        .route("/api/auth/login", web::post().to(session::login))
        .route(
            "/api/auth/refresh-token",
            web::post().to(session::refresh_token),
        )
        .route("/api/auth/logout", web::post().to(session::logout))
        .route(
            "/api/auth/forgot-password",
            web::post().to(password::forgot_password),
        )
        .route(
            "/api/auth/reset/{token}",
            web::post().to(password::reset_password),
        )
        .route(
            "/api/auth/change-password",
            web::post().to(password::change_password),
        )
        .route("/api/auth/me", web::get().to(me::me))
        .route("/.well-known/jwks.json", web::get().to(jwks::jwks));
}

/// Counts the request against the client IP's budget for the sign-in routes.
pub(crate) async fn per_ip_limit(state: &AppState, req: &HttpRequest) -> Result<(), ApiError> {
    state.limiter.check_ip(state.client_ip.of(req)).await
}

/// `{"message": …}`: the body of 202 answers and other confirmations.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageResponse {
    /// What happened, for people.
    pub message: String,
}

impl MessageResponse {
    /// A message.
    pub fn new(message: &str) -> Self {
        Self {
            message: message.to_owned(),
        }
    }
}

/// `{"user": …}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserResponse {
    /// The account.
    pub user: crate::services::UserView,
}
