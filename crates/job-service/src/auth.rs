//! Who is calling: the access token (cookie or bearer) verified with the auth service's public
//! key, revoked sessions refused.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use access_token::{Claims, RevocationList, Verifier};
use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use domain::{Role, SessionId};
use futures_util::future::LocalBoxFuture;
use uuid::Uuid;

use crate::{AppState, error::ApiError};

/// An authenticated caller.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser {
    /// The user.
    pub id: Uuid,
    /// Their role (from the token).
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

/// The token of a request: `Authorization: Bearer`, else the `access_token` cookie.
fn token_of(req: &HttpRequest) -> Option<String> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    bearer.or_else(|| {
        req.cookie("access_token")
            .map(|c| c.value().to_owned())
            .filter(|t| !t.is_empty())
    })
}

/// How long a verified token's signature check is reused. Short, so that a signing key
/// withdrawn from the auth service's JWKS stops being trusted soon after the verifier notices.
const VERIFIED_TTL: Duration = Duration::from_secs(60);

/// Most tokens remembered as verified.
const VERIFIED_MAX: usize = 50_000;

/// Verifies access tokens: the signature and claims once per token (then remembered for
/// a minute, never past the token's `exp`), the session's revocation on every request
/// (itself cached for about a second by [`RevocationList`]). An Ed25519 check costs more
/// than the rest of a `GET /api/jobs/{id}`, and clients send the same token many times.
pub struct Authenticator {
    verifier: Verifier,
    revocations: RevocationList,
    verified: Mutex<HashMap<String, (Claims, Instant)>>,
}

impl Authenticator {
    /// `verifier` must not check revocations itself; `revocations` does.
    pub fn new(verifier: Verifier, revocations: RevocationList) -> Self {
        Self {
            verifier,
            revocations,
            verified: Mutex::new(HashMap::new()),
        }
    }

    fn remembered(&self, token: &str) -> Option<Claims> {
        let now = unix_now();
        let verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        verified
            .get(token)
            .filter(|(claims, at)| {
                at.elapsed() < VERIFIED_TTL && claims.exp.saturating_add(LEEWAY) > now
            })
            .map(|(claims, _)| claims.clone())
    }

    fn remember(&self, token: &str, claims: &Claims) {
        let mut verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if verified.len() >= VERIFIED_MAX {
            let now = unix_now();
            verified.retain(|_, (claims, at)| {
                at.elapsed() < VERIFIED_TTL && claims.exp.saturating_add(LEEWAY) > now
            });
            if verified.len() >= VERIFIED_MAX {
                verified.clear();
            }
        }
        verified.insert(token.to_owned(), (claims.clone(), Instant::now()));
    }

    /// The caller of `token`: 401 for a bad, expired or revoked token, 503 when the keys or
    /// the revocation list cannot be read.
    pub async fn authenticate(&self, token: &str) -> Result<AuthUser, ApiError> {
        let claims = match self.remembered(token) {
            Some(claims) => claims,
            None => match self.verifier.verify(token).await {
                Ok(claims) => {
                    self.remember(token, &claims);
                    claims
                }
                Err(error) if error.is_unavailable() => {
                    return Err(ApiError::Unavailable(error.to_string()));
                }
                Err(error) => {
                    tracing::debug!(%error, "token refused");
                    return Err(ApiError::Unauthorized);
                }
            },
        };
        match self.revocations.is_revoked(claims.sid).await {
            Ok(false) => Ok(AuthUser {
                id: claims.sub.0,
                role: claims.role,
                sid: claims.sid,
            }),
            Ok(true) => Err(ApiError::Unauthorized),
            Err(error) => Err(ApiError::Unavailable(error.to_string())),
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `exp` leeway, as the verifier allows.
const LEEWAY: i64 = access_token::LEEWAY_SECS as i64;

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = token_of(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let token = token.ok_or(ApiError::Unauthorized)?;
            let state =
                state.ok_or_else(|| ApiError::Internal("application state missing".to_owned()))?;
            state.auth.authenticate(&token).await
        })
    }
}
