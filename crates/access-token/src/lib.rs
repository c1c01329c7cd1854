//! Task Vault access tokens: issuing and verifying the short-lived access JWTs.
//!
//! The contract (see the API doc):
//!
//! - Access tokens are JWS compact tokens signed with **EdDSA (Ed25519)**; the header names the
//!   signing key in `kid`.
//! - The claims are `sub` (user id), `role`, `sid` (session id), `typ` (always `"access"`),
//!   `iss`, `aud`, `iat` and `exp`; every one of them is required.
//! - Verifiers accept only EdDSA, and take keys only from their own [`KeySet`], looked up by
//!   `kid`. Keys named or embedded in the token header (`jwk`, `jku`, `x5u`, `x5c`) are ignored.
//! - A revoked session's access tokens stop working within about a second
//!   ([`RevocationList`]).
//!
//! The auth service owns a [`SigningKey`], signs with [`SigningKey::sign`] and publishes
//! [`SigningKey::jwks`]. The job service holds only public keys: a [`Verifier`] built with
//! [`Verifier::with_jwks_url`] (or [`Verifier::with_keys`] and [`KeySet::from_public_pem`]).
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use access_token::{Claims, KeySet, SigningKey, TokenSettings, Verifier};
//! use domain::{Role, SessionId, UserId};
//!
//! let key = SigningKey::development();
//! let settings = TokenSettings::default();
//! let claims = Claims::new_access(
//!     UserId::new(),
//!     Role::User,
//!     SessionId::new(),
//!     &settings,
//!     std::time::Duration::from_secs(900),
//! );
//! let token = key.sign(&claims)?;
//!
//! let verifier = Verifier::with_keys(settings, KeySet::from_signing_key(&key));
//! assert_eq!(verifier.verify(&token).await?, claims);
//! # Ok(())
//! # }
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod keys;
mod revocation;
#[cfg(test)]
mod test_support;
mod verifier;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use domain::{Role, SessionId, UserId};
use serde::{Deserialize, Serialize};

pub use keys::{DEVELOPMENT_PRIVATE_KEY_PEM, Jwk, JwkSet, KeySet, SigningKey};
pub use revocation::{
    RevocationError, RevocationList, RevocationRecord, RevokedSessions, sessions_revoked_channel,
};
pub use verifier::{
    JWKS_FETCH_TIMEOUT, JWKS_MAX_AGE, JWKS_REFETCH_INTERVAL, LEEWAY_SECS, VERIFIED_TOKEN_TTL,
    Verifier,
};

/// The value of the `typ` claim of every access token.
pub const ACCESS_TOKEN_TYPE: &str = "access";

/// The claims of an access token. Every field is required when verifying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user the token was issued to.
    pub sub: UserId,
    /// The user's role when the token was issued.
    pub role: Role,
    /// The sign-in session the token belongs to; revoking it revokes the token.
    pub sid: SessionId,
    /// The token type: always [`ACCESS_TOKEN_TYPE`] (`"access"`) for access tokens.
    pub typ: String,
    /// Issuer ([`TokenSettings::issuer`]).
    pub iss: String,
    /// Audience ([`TokenSettings::audience`]).
    pub aud: String,
    /// Issued at, in seconds since the Unix epoch.
    pub iat: i64,
    /// Expires at, in seconds since the Unix epoch.
    pub exp: i64,
}

impl Claims {
    /// Claims for a new access token issued now and valid for `ttl`, with `typ`, `iss` and
    /// `aud` taken from the contract and `settings`.
    pub fn new_access(
        sub: UserId,
        role: Role,
        sid: SessionId,
        settings: &TokenSettings,
        ttl: Duration,
    ) -> Self {
        let iat = unix_now();
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        Self {
            sub,
            role,
            sid,
            typ: ACCESS_TOKEN_TYPE.to_owned(),
            iss: settings.issuer.clone(),
            aud: settings.audience.clone(),
            iat,
            exp: iat.saturating_add(ttl),
        }
    }
}

/// Seconds since the Unix epoch (0 if the clock is before 1970).
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The issuer and audience that tokens carry and that verifiers require.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenSettings {
    /// The `iss` claim. Default `"task-vault-auth"`.
    pub issuer: String,
    /// The `aud` claim. Default `"task-vault"`.
    pub audience: String,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            issuer: "task-vault-auth".to_owned(),
            audience: "task-vault".to_owned(),
        }
    }
}

/// A key could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text is not a PKCS#8 (`BEGIN PRIVATE KEY`) Ed25519 private key PEM.
    #[error("not a PKCS#8 Ed25519 private key PEM: {0}")]
    InvalidPrivateKey(String),
    /// The text is not an SPKI (`BEGIN PUBLIC KEY`) Ed25519 public key PEM.
    #[error("not an SPKI Ed25519 public key PEM: {0}")]
    InvalidPublicKey(String),
    /// The JWKS document is not valid JSON of the expected shape, or holds a broken
    /// Ed25519 key.
    #[error("invalid JWKS: {0}")]
    InvalidJwks(String),
    /// The JWKS document holds no Ed25519 signing key with a `kid`.
    #[error("the JWKS has no usable Ed25519 signing key")]
    NoUsableKey,
}

/// A token could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The JWT library failed to encode or sign the token.
    #[error("could not sign the access token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// Why an access token was refused.
///
/// Services answer 401 for every variant except [`VerifyError::KeysUnavailable`] and
/// [`VerifyError::RevocationUnavailable`], which are our own outages and answer 503 (see
/// [`VerifyError::is_unavailable`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not a well-formed JWS compact token, or claims of the wrong types.
    #[error("malformed token")]
    Malformed,
    /// The signature does not match the key named by `kid`.
    #[error("bad token signature")]
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// No `kid`, or a `kid` that is not in our key set.
    #[error("unknown signing key")]
    UnknownKey,
    /// The header's `alg` is not `EdDSA`.
    #[error("wrong token algorithm")]
    WrongAlgorithm,
    /// `iss` is not the configured issuer.
    #[error("wrong token issuer")]
    WrongIssuer,
    /// `aud` is not the configured audience.
    #[error("wrong token audience")]
    WrongAudience,
    /// `typ` is not `"access"`.
    #[error("not an access token")]
    WrongType,
    /// A required claim is missing.
    #[error("token is missing a required claim")]
    MissingClaim,
    /// The token's session has been revoked.
    #[error("session revoked")]
    Revoked,
    /// The verification keys could not be fetched from the auth service.
    #[error("verification keys unavailable: {0}")]
    KeysUnavailable(String),
    /// The revocation list could not be read.
    #[error("revocation list unavailable: {0}")]
    RevocationUnavailable(String),
}

impl VerifyError {
    /// True for our own outages (503), false for a bad token (401).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            VerifyError::KeysUnavailable(_) | VerifyError::RevocationUnavailable(_)
        )
    }
}
