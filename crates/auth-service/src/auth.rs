//! Who is calling: the access token from the `access_token` cookie or `Authorization: Bearer`.

use access_token::Claims;
use actix_web::HttpRequest;
use actix_web::http::header;

use crate::error::ApiError;
use crate::state::AppState;

/// Name of the access-token cookie.
pub const ACCESS_COOKIE: &str = "access_token";
/// Name of the refresh-token cookie.
pub const REFRESH_COOKIE: &str = "refresh_token";

/// The access token the request carries, if any: the `Authorization: Bearer` header first,
/// else the cookie.
pub fn presented_access_token(req: &HttpRequest) -> Option<String> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        })
        .filter(|t| !t.is_empty());
    bearer.or_else(|| {
        req.cookie(ACCESS_COOKIE)
            .map(|c| c.value().to_owned())
            .filter(|t| !t.is_empty())
    })
}

/// The verified claims of the caller: 401 `unauthorized` without a valid token, 503 when the
/// revocation list cannot be read.
pub async fn authenticate(state: &AppState, req: &HttpRequest) -> Result<Claims, ApiError> {
    let token = presented_access_token(req).ok_or(ApiError::Unauthorized)?;
    state.verifier.verify(&token).await.map_err(|error| {
        if error.is_unavailable() {
            ApiError::Unavailable(error.to_string())
        } else {
            tracing::debug!(%error, "access token refused");
            ApiError::Unauthorized
        }
    })
}
