//! A strict JSON body extractor.
//!
//! actix's own `web::Json` answers 400 for almost everything; the contract wants 415 for a
//! body that is not JSON, 413 over the size limit, 400 `malformed_json` for broken syntax and
//! 422 `validation_failed`, keyed by field, for well-formed JSON of the wrong shape (an
//! unknown field included: a misspelt `prority` is refused, not ignored), with messages in
//! the user's words rather than Rust's ("must be a whole number", not "expected i64"). A body
//! that stops arriving gets 408 `request_timeout` after [`BODY_TIMEOUT`] instead of holding a
//! connection forever.

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

/// How long a request body may take to arrive, once its headers have.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

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

/// Reads at most `limit` bytes of body, answering 413 beyond it and 408 when it does not all
/// arrive within [`BODY_TIMEOUT`].
pub async fn read_limited(payload: &mut Payload, limit: usize) -> Result<web::Bytes, Problem> {
    let read = async {
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
    };
    tokio::time::timeout(BODY_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| Err(request_timeout()))
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
            let (field, message) = in_user_words(&path, &strip_position(&inner.to_string()));
            Problem::validation(ValidationErrors::field(field, message))
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

/// The field an error is about and a message in the user's words, from serde's message and
/// the path of the value it failed on (`.` for the body itself).
pub(crate) fn in_user_words(path: &str, message: &str) -> (String, String) {
    // The path of an unknown field already ends with its name; that of a missing one does not.
    let at = |name: &str| match path {
        "." => name.to_owned(),
        _ if path == name || path.ends_with(&format!(".{name}")) => path.to_owned(),
        parent => format!("{parent}.{name}"),
    };
    let here = if path == "." {
        "body".to_owned()
    } else {
        path.to_owned()
    };
    let quoted = |text: &str| text.split('`').nth(1).unwrap_or_default().to_owned();
    let choices = |text: &str| {
        text.split_once("expected ")
            .map(|(_, list)| list.trim_start_matches("one of ").replace('`', ""))
            .unwrap_or_default()
    };
    if message.starts_with("unknown field") {
        let known = choices(message);
        let hint = if known.is_empty() {
            "is not a known field".to_owned()
        } else {
            format!("is not a known field; the known ones are {known}")
        };
        return (at(&quoted(message)), hint);
    }
    if message.starts_with("missing field") {
        return (at(&quoted(message)), "is required".to_owned());
    }
    if message.starts_with("unknown variant") {
        return (here, format!("must be one of {}", choices(message)));
    }
    let expected = message.rsplit_once("expected ").map_or("", |(_, e)| e);
    let wanted = match expected {
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "must be a whole number",
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "must be a whole number, 0 or more",
        "f32" | "f64" => "must be a number",
        "a string" | "a borrowed string" | "a character" => "must be text",
        "a boolean" => "must be true or false",
        "a sequence" => "must be a list",
        "a map" => "must be an object",
        _ if expected.starts_with("struct ") || expected.starts_with("a map") => {
            "must be an object"
        }
        _ if expected.contains("UUID") || message.contains("UUID") => "must be a UUID",
        _ => return (here, message.to_owned()),
    };
    (here, wanted.to_owned())
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

/// 408 `request_timeout`: the body did not arrive in time.
pub fn request_timeout() -> Problem {
    Problem::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        format!(
            "The request body did not arrive within {} s; send the whole body at once.",
            BODY_TIMEOUT.as_secs()
        ),
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

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "fields are only deserialized")]
    struct Submit {
        priority: Option<i64>,
        tags: Option<Vec<String>>,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "fields are only deserialized")]
    struct Inner {
        flag: bool,
    }

    fn errors(body: &str) -> Vec<(String, Vec<String>)> {
        parse::<Submit>(body.as_bytes())
            .err()
            .and_then(|p| p.errors)
            .map(|e| e.0.into_iter().collect())
            .unwrap_or_default()
    }

    #[test]
    fn messages_name_the_field_in_the_users_words() {
        assert_eq!(
            errors(r#"{"prority": 5}"#),
            vec![(
                "prority".to_owned(),
                vec!["is not a known field; the known ones are priority, tags, inner".to_owned()]
            )]
        );
        assert_eq!(
            errors(r#"{"priority": "high"}"#),
            vec![(
                "priority".to_owned(),
                vec!["must be a whole number".to_owned()]
            )]
        );
        assert_eq!(
            errors(r#"{"tags": "a"}"#),
            vec![("tags".to_owned(), vec!["must be a list".to_owned()])]
        );
        assert_eq!(
            errors(r#"{"tags": [1]}"#),
            vec![("tags[0]".to_owned(), vec!["must be text".to_owned()])]
        );
        assert_eq!(
            errors(r#"{"inner": {"flg": true}}"#),
            vec![(
                "inner.flg".to_owned(),
                vec!["is not a known field; the known ones are flag".to_owned()]
            )]
        );
        assert_eq!(
            errors(r#"{"inner": {}}"#),
            vec![("inner.flag".to_owned(), vec!["is required".to_owned()])]
        );
        assert_eq!(
            errors(r#"[1]"#),
            vec![("body".to_owned(), vec!["must be an object".to_owned()])]
        );
    }
}
