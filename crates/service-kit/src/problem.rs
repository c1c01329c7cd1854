//! RFC 9457 problem documents: the one error body of every HTTP service.
//!
//! Each service has one error enum that converts into a [`Problem`]; internal causes are
//! logged there and never reach the client.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use domain::ValidationErrors;
use serde::Serialize;

use crate::request_id::RequestId;

/// Media type of problem documents.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// An error response body: `{"type", "title", "status", "detail", "code", "errors"?,
/// "request_id"?}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`urn:task-vault:problem:<code>`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What happened and what to do next.
    pub detail: String,
    /// Stable snake_case code a client can switch on.
    pub code: String,
    /// Field-level messages for `validation_failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub errors: Option<ValidationErrors>,
    /// The id of the request that got this answer (also in the `X-Request-Id` header): quote
    /// it when reporting a problem, it finds every log line of the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Seconds to wait before retrying (sent as the `Retry-After` header, not in the body).
    #[serde(skip)]
    pub retry_after_secs: Option<u64>,
}

impl Problem {
    /// A problem with `status`, stable `code` and a human `detail`.
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:task-vault:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_owned(),
            errors: None,
            request_id: None,
            retry_after_secs: None,
        }
    }

    /// 422 `validation_failed` with per-field messages.
    pub fn validation(errors: ValidationErrors) -> Self {
        let mut problem = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "Some fields are invalid; see `errors` for what to change.",
        );
        problem.errors = Some(errors);
        problem
    }

    /// 401 `unauthorized`.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Sign in first: send the access_token cookie or an `Authorization: Bearer` header.",
        )
    }

    /// 403 `forbidden`.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 404 `not_found`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    /// 429 `rate_limited` with `Retry-After`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut problem = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("Too many requests; try again in {retry_after_secs} s."),
        );
        problem.retry_after_secs = Some(retry_after_secs.max(1));
        problem
    }

    /// 500 `internal_error`. The cause must already be logged; it is never shown.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Something went wrong on our side; it has been logged. Try again later.",
        )
    }

    /// 503 `unavailable`: a dependency (database, Redis, the auth service) does not answer.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "A backing service is not answering; try again shortly.",
        )
    }

    /// The HTTP status.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// Renders the response, with the id of the request being served
    /// ([`crate::request_id`]) when there is one.
    pub fn to_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE)));
        if let Some(secs) = self.retry_after_secs {
            response.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        match (&self.request_id, RequestId::current()) {
            (None, Some(id)) => response.json(Problem {
                request_id: Some(id.to_string()),
                ..self.clone()
            }),
            _ => response.json(self),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.detail)
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        Problem::status_code(self)
    }

    fn error_response(&self) -> HttpResponse {
        self.to_response()
    }
}

impl From<ValidationErrors> for Problem {
    fn from(errors: ValidationErrors) -> Self {
        Problem::validation(errors)
    }
}
