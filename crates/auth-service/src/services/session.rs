//! Sessions: login, refresh-token rotation (with reuse detection) and logout.

use std::net::IpAddr;
use std::time::Duration;

use access_token::Claims;
use chrono::Utc;
use domain::{Email, SessionId, ValidationErrors};
use persistence::sessions::{self, Rotation, Successor};
use persistence::users::{self, UserRecord};

use crate::error::ApiError;
use crate::secrets;
use crate::services::expires_after;
use crate::state::AppState;

/// How many rotations past a spent token the two-tabs race may follow.
const MAX_CHAIN_STEPS: usize = 4;

/// What a login or refresh hands out.
pub struct Issued {
    /// The user.
    pub user: UserRecord,
    /// A new access token.
    pub access_token: String,
    /// The session's current refresh token.
    pub refresh_token: String,
}

fn sign_access(
    state: &AppState,
    user: &UserRecord,
    session: SessionId,
) -> Result<String, ApiError> {
    let claims = Claims::new_access(
        user.id,
        user.role,
        session,
        &state.token_settings,
        state.settings.access_ttl(),
    );
    state.signing_key.sign(&claims).map_err(ApiError::internal)
}

/// Checks the credentials of a request from `ip` and opens a session. Unknown addresses are
/// checked against a dummy hash, so they answer like wrong passwords, in about the same time.
pub async fn login(
    state: &AppState,
    ip: IpAddr,
    email: &str,
    password: &str,
) -> Result<Issued, ApiError> {
    let mut errors = ValidationErrors::new();
    let email = errors.check(Email::parse(email, "email"));
    if password.is_empty() {
        errors.add("password", "is required");
    }
    let Some(email) = email.filter(|_| errors.is_empty()) else {
        state.limiter.check_ip(ip).await?;
        return Err(errors.into());
    };
    let earlier_failures = state.limiter.check_login(ip, email.as_str(), true).await?;
    let mut conn = state.conn().await?;
    let user = users::find_by_email(&mut conn, &email).await?;
    drop(conn);
    let hash = user
        .as_ref()
        .map_or(state.dummy_hash.as_str(), |u| u.password_hash.as_str());
    let matches = state.hasher.verify(password, hash).await?;
    let Some(user) = user.filter(|_| matches) else {
        state
            .limiter
            .record_login_failure(ip, email.as_str())
            .await?;
        metrics::counter!("auth_logins_total", "outcome" => "invalid_credentials").increment(1);
        return Err(ApiError::InvalidCredentials);
    };
    if state.settings.require_email_verification && !user.email_verified {
        metrics::counter!("auth_logins_total", "outcome" => "email_not_verified").increment(1);
        return Err(ApiError::EmailNotVerified);
    }
    if earlier_failures > 0 {
        state
            .limiter
            .clear_login_failures(ip, email.as_str(), earlier_failures)
            .await?;
    }
    let session = SessionId::new();
    let refresh_token = secrets::new_token();
    let mut conn = state.conn().await?;
    sessions::create(
        &mut conn,
        session,
        user.id,
        secrets::token_hash(&refresh_token),
        expires_after(
            state
                .settings
                .refresh_token_ttl_secs
                .min(state.settings.session_max_age_secs),
        ),
    )
    .await?;
    let access_token = sign_access(state, &user, session)?;
    metrics::counter!("auth_logins_total", "outcome" => "success").increment(1);
    Ok(Issued {
        user,
        access_token,
        refresh_token,
    })
}

/// Spends `presented` and returns the session's next tokens.
///
/// A token spent within the grace period (two tabs refreshing at once) returns the session's
/// current tokens instead; one spent earlier was stolen or replayed, so the whole session is
/// revoked.
pub async fn refresh(state: &AppState, presented: &str) -> Result<Issued, ApiError> {
    let successor = secrets::new_token();
    let sealed =
        secrets::seal(presented, &successor).ok_or_else(|| ApiError::internal("sealing failed"))?;
    let grace = Duration::from_secs(state.settings.refresh_reuse_grace_secs);
    let mut conn = state.conn().await?;
    let rotation = sessions::rotate(
        &mut conn,
        secrets::token_hash(presented),
        Successor {
            token_hash: secrets::token_hash(&successor),
            sealed_for_predecessor: sealed,
            expires_at: expires_after(state.settings.refresh_token_ttl_secs),
            session_max_age: Duration::from_secs(state.settings.session_max_age_secs),
        },
        grace,
    )
    .await?;
    let (session, user, refresh_token) = match rotation {
        Rotation::Invalid => {
            metrics::counter!("auth_refresh_total", "outcome" => "invalid").increment(1);
            return Err(ApiError::InvalidRefreshToken);
        }
        Rotation::Reused { session_id } => {
            metrics::counter!("auth_refresh_total", "outcome" => "reuse_revoked").increment(1);
            tracing::warn!(session = %session_id, "spent refresh token presented again: session revoked");
            state.revocations.revoke_or_retry(&[session_id]).await;
            return Err(ApiError::InvalidRefreshToken);
        }
        Rotation::Rotated { session_id, user } => {
            metrics::counter!("auth_refresh_total", "outcome" => "rotated").increment(1);
            (session_id, user, successor)
        }
        Rotation::RecentlySpent {
            session_id,
            user_id,
            successor_sealed,
        } => {
            let current =
                current_token(&mut conn, session_id, presented, &successor_sealed).await?;
            let user = users::find(&mut conn, user_id)
                .await?
                .ok_or(ApiError::InvalidRefreshToken)?;
            metrics::counter!("auth_refresh_total", "outcome" => "race").increment(1);
            (session_id, user, current)
        }
    };
    let access_token = sign_access(state, &user, session)?;
    Ok(Issued {
        user,
        access_token,
        refresh_token,
    })
}

/// Follows the sealed chain from a recently spent token to the session's live one.
async fn current_token(
    conn: &mut diesel_async::AsyncPgConnection,
    session: SessionId,
    presented: &str,
    sealed: &[u8],
) -> Result<String, ApiError> {
    let mut current = secrets::unseal(presented, sealed).ok_or(ApiError::InvalidRefreshToken)?;
    for _ in 0..MAX_CHAIN_STEPS {
        let state = sessions::live_refresh_token(conn, &secrets::token_hash(&current))
            .await?
            .filter(|s| s.session_id == session && s.expires_at > Utc::now())
            .ok_or(ApiError::InvalidRefreshToken)?;
        match (state.spent_at, state.successor_sealed) {
            (None, _) => return Ok(current),
            (Some(_), Some(next)) => {
                current = secrets::unseal(&current, &next).ok_or(ApiError::InvalidRefreshToken)?;
            }
            (Some(_), None) => return Err(ApiError::InvalidRefreshToken),
        }
    }
    Err(ApiError::InvalidRefreshToken)
}

/// Revokes the session named by a valid access token, or else the one the refresh token
/// belongs to, and publishes the revocation. Nothing to revoke is not an error.
pub async fn logout(
    state: &AppState,
    access_token: Option<String>,
    refresh_token: Option<String>,
) -> Result<(), ApiError> {
    let mut session = None;
    if let Some(token) = access_token {
        match state.verifier.verify(&token).await {
            Ok(claims) => session = Some(claims.sid),
            Err(error) if error.is_unavailable() => {
                return Err(ApiError::Unavailable(error.to_string()));
            }
            Err(_) => {}
        }
    }
    let mut conn = state.conn().await?;
    if session.is_none()
        && let Some(token) = refresh_token
    {
        session =
            sessions::session_of_refresh_token(&mut conn, &secrets::token_hash(&token)).await?;
    }
    if let Some(session) = session {
        sessions::revoke(&mut conn, session).await?;
        state.revocations.revoke_or_retry(&[session]).await;
        metrics::counter!("auth_logouts_total").increment(1);
    }
    Ok(())
}
