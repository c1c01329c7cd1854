//! A strict JSON body extractor.
//!
//! actix's own `web::Json` answers 400 for almost everything; the contract wants 415 for a
//! body that is not JSON, 413 over the size limit, 400 `malformed_json` for broken syntax and
//! 422 `validation_failed`, keyed by field, for well-formed JSON of the wrong shape.

use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use domain::ValidationErrors;
use futures_util::StreamExt as _;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use crate::Problem;

/// Largest request body accepted by any route.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON request body deserialized into `T`.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    /// The body.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = Problem;
    type Future = LocalBoxFuture<'static, Result<Self, Problem>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type_ok = is_json_content_type(req);
        let declared_len = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if !content_type_ok {
                return Err(unsupported_media_type());
            }
            if declared_len.is_some_and(|len| len > MAX_BODY_BYTES) {
                return Err(payload_too_large());
            }
            let bytes = read_limited(&mut payload, MAX_BODY_BYTES).await?;
            parse(&bytes).map(Json)
        })
    }
}

/// True when the request says its body is JSON (`application/json` or `application/*+json`).
pub fn is_json_content_type(req: &HttpRequest) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|essence| {
            let essence = essence.trim().to_ascii_lowercase();
            essence == "application/json"
                || (essence.starts_with("application/") && essence.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// Reads at most `limit` bytes of body, answering 413 beyond it.
pub async fn read_limited(payload: &mut Payload, limit: usize) -> Result<web::Bytes, Problem> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed_body",
                "The request body could not be read.",
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(payload_too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Parses a JSON body into `T` with the contract's error mapping.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize::<_, T>(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("The body is not valid JSON: {inner}."),
            )
        } else {
            let field = if path == "." { "body".to_owned() } else { path };
            Problem::validation(ValidationErrors::field(
                field,
                strip_position(&inner.to_string()),
            ))
        }
    })?;
    deserializer.end().map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("The body is not valid JSON: {e}."),
        )
    })?;
    Ok(value)
}

/// serde_json appends " at line 1 column 17"; the field name already says where.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// 415 `unsupported_media_type`.
pub fn unsupported_media_type() -> Problem {
    Problem::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "Send the body as JSON with `Content-Type: application/json`.",
    )
}

/// 413 `payload_too_large`.
pub fn payload_too_large() -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!(
            "The request body is over the {} KiB limit.",
            MAX_BODY_BYTES / 1024
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[expect(dead_code, reason = "fields are only deserialized")]
    struct Body {
        email: String,
        count: Option<u32>,
    }

    #[test]
    fn maps_errors_as_the_contract_says() {
        let code = |bytes: &[u8]| parse::<Body>(bytes).err().map(|p| (p.status, p.code));
        assert_eq!(code(br#"{"email": "a"}"#), None);
        assert_eq!(
            code(br#"{"email": "a""#),
            Some((400, "malformed_json".into()))
        );
        assert_eq!(
            code(br#"{"email": "a"} x"#),
            Some((400, "malformed_json".into()))
        );
        assert_eq!(
            code(br#"{"email": 5}"#),
            Some((422, "validation_failed".into()))
        );
        assert_eq!(code(br#"{}"#), Some((422, "validation_failed".into())));
        let problem = parse::<Body>(br#"{"email": "a", "count": -1}"#).err();
        let errors = problem
            .and_then(|p| p.errors)
            .map(|e| e.0.keys().cloned().collect::<Vec<_>>());
        assert_eq!(errors, Some(vec!["count".to_owned()]));
    }
}
