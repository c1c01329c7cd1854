//! Request ids: one id per HTTP request, so that a request can be followed through every log
//! line it causes, the problem document it gets, and the job it submits.
//!
//! The id is taken from a valid incoming `X-Request-Id` (a proxy or the client chose it), else
//! generated (a UUID v7). It is returned in the `X-Request-Id` response header, set as the
//! `request_id` field of the `request` span that every log line of the request is written in,
//! added to every problem document, and available to handlers as [`RequestId`] (an extractor).

use std::future::{Ready, ready};
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use tracing::Instrument as _;

/// The request id header, in and out.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest incoming id taken as is; longer or odd ones are replaced by a generated id.
const MAX_LEN: usize = 128;

tokio::task_local! {
    static CURRENT: RequestId;
}

/// The id of the request being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// A fresh id (a UUID v7: sortable by time).
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string().into())
    }

    /// `value` when it is a usable id: 1 to 128 visible ASCII characters among letters,
    /// digits and `-_.:/+=@`, so that it can go into a header and a log line unescaped.
    pub fn parse(value: &str) -> Option<Self> {
        let usable = !value.is_empty()
            && value.len() <= MAX_LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(&b));
        usable.then(|| Self(value.into()))
    }

    /// The id of the request this task is serving, if any (inside [`middleware`]).
    pub fn current() -> Option<Self> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromRequest for RequestId {
    type Error = std::convert::Infallible;
    type Future = Ready<Result<Self, Self::Error>>;

    /// The id [`middleware`] gave the request (a generated one if the middleware is absent).
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(req
            .extensions()
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(RequestId::generate)))
    }
}

/// The outermost middleware of each service: gives the request its id, serves it inside the
/// `request` span and the task-local id that [`crate::Problem`] reads, and returns the id in
/// the response header, error answers included.
pub async fn middleware<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let id = req
        .headers()
        .get(&HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(RequestId::parse)
        .unwrap_or_else(RequestId::generate);
    req.extensions_mut().insert(id.clone());
    let span = tracing::info_span!("request", request_id = %id);
    let header = HeaderValue::from_str(id.as_str()).ok();
    CURRENT
        .scope(id, async move {
            match next.call(req).await {
                Ok(mut response) => {
                    if let Some(value) = header {
                        response.headers_mut().insert(HEADER, value);
                    }
                    Ok(response)
                }
                // Rendered here, inside the scope, so that a problem document gets the id.
                Err(error) => {
                    let mut response = error.error_response();
                    if let Some(value) = header {
                        response.headers_mut().insert(HEADER, value);
                    }
                    Err(
                        actix_web::error::InternalError::from_response(error.to_string(), response)
                            .into(),
                    )
                }
            }
        })
        .instrument(span)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_only_ids_that_are_safe_to_echo() {
        assert_eq!(
            RequestId::parse("req-42_a.b:c").map(|id| id.to_string()),
            Some("req-42_a.b:c".to_owned())
        );
        assert!(RequestId::parse("").is_none());
        assert!(RequestId::parse("has space").is_none());
        assert!(RequestId::parse("new\nline").is_none());
        assert!(RequestId::parse("é").is_none());
        assert!(RequestId::parse(&"a".repeat(129)).is_none());
        assert!(RequestId::parse(&"a".repeat(128)).is_some());
    }

    #[test]
    fn generated_ids_are_distinct_and_valid() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        assert_ne!(a, b);
        assert!(RequestId::parse(a.as_str()).is_some());
    }
}
