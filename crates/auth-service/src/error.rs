//! The one error type of the HTTP layer and its mapping to problem documents.
//!
//! Client mistakes map to 4xx with a stable `code`. Outages of PostgreSQL or Redis map to 503
//! `unavailable`, anything else to 500; their causes are logged here and never sent.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use domain::ValidationErrors;
use persistence::PersistenceError;
use service_kit::Problem;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A field failed validation (422).
    #[error("validation failed")]
    Validation(#[from] ValidationErrors),
    /// A problem built elsewhere (body extraction), passed through as is.
    #[error("{0}")]
    Problem(Box<Problem>),
    /// Wrong email or password at login (401).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The current password given to change-password is wrong (403).
    #[error("wrong current password")]
    WrongCurrentPassword,
    /// Login before the address was proven (403).
    #[error("email not verified")]
    EmailNotVerified,
    /// An email link token that is unknown, expired or used (400).
    #[error("invalid link token")]
    InvalidLinkToken,
    /// A refresh token that is missing, unknown, expired, spent or revoked (401).
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// A wrong, expired or void verification code (400).
    #[error("invalid otp")]
    InvalidOtp,
    /// No valid access token (401).
    #[error("unauthorized")]
    Unauthorized,
    /// A limit was hit (429).
    #[error("rate limited")]
    RateLimited {
        /// Seconds until the limit resets.
        retry_after_secs: u64,
    },
    /// Too many passwords are being checked; the request waited its turn in vain (503 with
    /// `Retry-After`).
    #[error("password hashing is saturated")]
    Busy,
    /// A dependency does not answer (503).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected state (500).
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The problem document for this error.
    pub fn to_problem(&self) -> Problem {
        match self {
            ApiError::Validation(errors) => Problem::validation(errors.clone()),
            ApiError::Problem(problem) => (**problem).clone(),
            ApiError::InvalidCredentials => Problem::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "The email or password is wrong.",
            ),
            ApiError::WrongCurrentPassword => Problem::new(
                StatusCode::FORBIDDEN,
                "invalid_credentials",
                "The current password is wrong.",
            ),
            ApiError::EmailNotVerified => Problem::new(
                StatusCode::FORBIDDEN,
                "email_not_verified",
                "Verify your email address first: use the link or code we sent, or ask for a new one.",
            ),
            ApiError::InvalidLinkToken => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_token",
                "This link is unknown, expired or already used; ask for a new one.",
            ),
            ApiError::InvalidRefreshToken => Problem::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "The refresh token is missing, expired or no longer valid; sign in again.",
            ),
            ApiError::InvalidOtp => Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_otp",
                "The code is wrong, expired or void; ask for a new one.",
            ),
            ApiError::Unauthorized => Problem::unauthorized(),
            ApiError::RateLimited { retry_after_secs } => Problem::rate_limited(*retry_after_secs),
            ApiError::Busy => {
                let mut problem = Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Too many sign-ins are being checked right now; try again in a second.",
                );
                problem.retry_after_secs = Some(1);
                problem
            }
            ApiError::Unavailable(_) => Problem::unavailable(),
            ApiError::Internal(_) => Problem::internal(),
        }
    }

    /// A 500 whose cause is `error`.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        ApiError::Internal(error.to_string())
    }
}

impl From<Problem> for ApiError {
    fn from(problem: Problem) -> Self {
        ApiError::Problem(Box::new(problem))
    }
}

impl From<PersistenceError> for ApiError {
    fn from(error: PersistenceError) -> Self {
        match error {
            PersistenceError::Unavailable(cause) => {
                ApiError::Unavailable(format!("PostgreSQL: {cause}"))
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<deadpool_redis::PoolError> for ApiError {
    fn from(error: deadpool_redis::PoolError) -> Self {
        ApiError::Unavailable(format!("Redis pool: {error}"))
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(error: redis::RedisError) -> Self {
        ApiError::Unavailable(format!("Redis: {error}"))
    }
}

impl From<access_token::RevocationError> for ApiError {
    fn from(error: access_token::RevocationError) -> Self {
        ApiError::Unavailable(format!("revocation list: {error}"))
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(error: tokio::task::JoinError) -> Self {
        ApiError::Internal(format!("blocking task failed: {error}"))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.to_problem().status_code()
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Unavailable(cause) => tracing::warn!(%cause, "dependency unavailable"),
            ApiError::Internal(cause) => tracing::error!(%cause, "internal error"),
            _ => {}
        }
        self.to_problem().to_response()
    }
}
