//! What every handler shares.

use access_token::{RevocationList, SigningKey, TokenSettings, Verifier};
use persistence::{PgPool, PooledConnection};

use crate::client_ip::ClientIp;
use crate::error::ApiError;
use crate::rate_limit::RateLimiter;
use crate::services::email::Mailer;
use crate::settings::Settings;

/// The application state, behind `web::Data`.
pub struct AppState {
    /// The settings the process started with.
    pub settings: Settings,
    /// PostgreSQL.
    pub pg: PgPool,
    /// The key access tokens are signed with.
    pub signing_key: SigningKey,
    /// Issuer and audience of access tokens.
    pub token_settings: TokenSettings,
    /// Verifies access tokens presented to this service (own key, revocations checked).
    pub verifier: Verifier,
    /// Where revoked sessions are published for every service.
    pub revocations: RevocationList,
    /// Outgoing email.
    pub mailer: Mailer,
    /// Abuse limits.
    pub limiter: RateLimiter,
    /// Password hashing on a bounded pool.
    pub hasher: crate::hashing::Hasher,
    /// Client addresses behind proxies.
    pub client_ip: ClientIp,
    /// A bcrypt hash of a random password at the configured cost: unknown emails are checked
    /// against it so that they take as long as wrong passwords.
    pub dummy_hash: String,
}

impl AppState {
    /// A PostgreSQL connection from the pool (503 when none can be had).
    pub async fn conn(&self) -> Result<PooledConnection, ApiError> {
        Ok(self
            .pg
            .get()
            .await
            .map_err(persistence::PersistenceError::from)?)
    }
}
