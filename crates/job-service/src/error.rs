//! The one mapping from the job service's errors to problem documents. Internal causes are
//! logged here and never sent to clients.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use domain::ValidationErrors;
use service_kit::Problem;

/// Everything a job route can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401 `unauthorized`.
    #[error("unauthorized")]
    Unauthorized,
    /// 403 `forbidden`.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// 404 `not_found` (also for other users' jobs: no hint that they exist).
    #[error("not found")]
    NotFound,
    /// 404 `not_found` for a schedule (also for other users' schedules).
    #[error("no such schedule")]
    NoSuchSchedule,
    /// 422 `validation_failed`, with an optional detail replacing the generic one.
    #[error("validation failed: {0:?}")]
    Validation(ValidationErrors, Option<String>),
    /// 413 `payload_too_large`.
    #[error("payload too large: {0}")]
    PayloadTooLarge(String),
    /// 409 with a specific code.
    #[error("conflict {0}: {1}")]
    Conflict(&'static str, String),
    /// A problem document built by a limit (429 with `Retry-After`, …), passed through.
    #[error("{0}")]
    Problem(Box<Problem>),
    /// 503 `unavailable`: a dependency does not answer (cause logged).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// 500 `internal_error` (cause logged).
    #[error("internal: {0}")]
    Internal(String),
}

impl From<persistence::PersistenceError> for ApiError {
    fn from(error: persistence::PersistenceError) -> Self {
        match error {
            persistence::PersistenceError::Unavailable(cause) => ApiError::Unavailable(cause),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        ApiError::Validation(errors, None)
    }
}

impl ApiError {
    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        match self {
            ApiError::Unauthorized => Problem::unauthorized(),
            ApiError::Forbidden(detail) => Problem::forbidden(*detail),
            ApiError::NotFound => Problem::not_found("No such job."),
            ApiError::NoSuchSchedule => Problem::not_found("No such schedule."),
            ApiError::Validation(errors, detail) => {
                let mut problem = Problem::validation(errors.clone());
                if let Some(detail) = detail {
                    problem.detail.clone_from(detail);
                }
                problem
            }
            ApiError::PayloadTooLarge(detail) => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                detail.clone(),
            ),
            ApiError::Conflict(code, detail) => {
                Problem::new(StatusCode::CONFLICT, code, detail.clone())
            }
            ApiError::Problem(problem) => (**problem).clone(),
            ApiError::Unavailable(cause) => {
                tracing::warn!(%cause, "dependency unavailable");
                Problem::unavailable()
            }
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                Problem::internal()
            }
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound | ApiError::NoSuchSchedule => StatusCode::NOT_FOUND,
            ApiError::Validation(..) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Conflict(..) => StatusCode::CONFLICT,
            ApiError::Problem(problem) => problem.status_code(),
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.problem().to_response()
    }
}
