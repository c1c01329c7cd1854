//! Who is calling: the access token from the `access_token` cookie or `Authorization: Bearer`.

use access_token::Claims;
use actix_web::HttpRequest;

use crate::error::ApiError;
use crate::state::AppState;

pub use service_kit::http::{ACCESS_COOKIE, presented_access_token};

/// Name of the refresh-token cookie.
pub const REFRESH_COOKIE: &str = "refresh_token";

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
