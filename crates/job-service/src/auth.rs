//! Who is calling: the access token (cookie or bearer) verified with the auth service's public
//! key, revoked sessions refused (see [`access_token::Verifier`], which also remembers verified
//! tokens so that the signature is not checked on every request), and the user's current role
//! ([`crate::roles`]).

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use domain::{Role, SessionId};
use futures_util::future::LocalBoxFuture;
use uuid::Uuid;

use crate::{AppState, error::ApiError};

/// An authenticated caller.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser {
    /// The user.
    pub id: Uuid,
    /// Their role now (PostgreSQL's, which may be newer than the token's).
    pub role: Role,
    /// Their session.
    pub sid: SessionId,
}

impl AuthUser {
    /// True for admins.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The owner filter for job queries: `None` (every job) for admins.
    pub fn scope(&self) -> Option<Uuid> {
        if self.is_admin() { None } else { Some(self.id) }
    }
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = service_kit::http::presented_access_token(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let token = token.ok_or(ApiError::Unauthorized)?;
            let state =
                state.ok_or_else(|| ApiError::Internal("application state missing".to_owned()))?;
            match state.verifier.verify(&token).await {
                Ok(claims) => {
                    let role = state
                        .roles
                        .current(claims.sub.0, claims.iat)
                        .await
                        .map_err(|error| ApiError::Unavailable(error.to_string()))?;
                    Ok(AuthUser {
                        id: claims.sub.0,
                        role,
                        sid: claims.sid,
                    })
                }
                Err(error) if error.is_unavailable() => {
                    Err(ApiError::Unavailable(error.to_string()))
                }
                Err(error) => {
                    tracing::debug!(%error, "token refused");
                    Err(ApiError::Unauthorized)
                }
            }
        })
    }
}
