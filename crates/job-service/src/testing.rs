//! Running the service inside a test process: its own API tests and the worker's end-to-end
//! tests start it the same way.

use std::time::Duration;

use access_token::{Claims, SigningKey, TokenError, TokenSettings};
use domain::{Email, Role, SessionId, UserId};
use persistence::{PersistenceError, PgPool, users};
use uuid::Uuid;

use crate::{Application, Settings, StartError};

/// Where a service under test keeps its state and which token key it trusts.
#[derive(Debug, Clone)]
pub struct TestBackends {
    /// A database of the test's own (migrated by the service if needed).
    pub database_url: String,
    /// The Redis server.
    pub redis_url: String,
    /// The test's own Redis key prefix.
    pub redis_prefix: String,
    /// The SPKI PEM of the key the test signs tokens with.
    pub public_key_pem: String,
}

/// Starts the service on a free port with small pools and returns its base URL
/// (`http://127.0.0.1:<port>`); it serves until the test's runtime ends.
pub async fn spawn(backends: TestBackends) -> Result<String, StartError> {
    spawn_with(backends, |_| {}).await
}

/// [`spawn`] with settings adjusted by `adjust` (limits, timings, another Redis).
pub async fn spawn_with(
    backends: TestBackends,
    adjust: impl FnOnce(&mut Settings),
) -> Result<String, StartError> {
    let mut settings = Settings {
        database_url: backends.database_url,
        redis_url: backends.redis_url,
        jobs_addr: "127.0.0.1:0".to_owned(),
        auth_jwt_public_key: Some(backends.public_key_pem),
        redis_prefix: backends.redis_prefix,
        db_pool_size: 8,
        redis_pool_size: 8,
        http_workers: 2,
        ..Settings::default()
    };
    adjust(&mut settings);
    let app = Application::build(settings).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run());
    Ok(base)
}

/// A stored user holding an access token that a service under test accepts.
#[derive(Debug, Clone)]
pub struct TestUser {
    /// The user.
    pub id: Uuid,
    /// Their address (unique per user).
    pub email: String,
    /// A 15-minute access token signed with the test's key.
    pub token: String,
    /// The token's session (revoke it to test revocation).
    pub sid: SessionId,
}

/// Why a test user could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// The database refused.
    #[error(transparent)]
    Persistence(#[from] PersistenceError),
    /// The token could not be signed.
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// Stores a user with `role` (and a verified address when `verified`) straight into the
/// database, and signs them an access token with `key`.
pub async fn mint_user(
    pool: &PgPool,
    key: &SigningKey,
    role: Role,
    verified: bool,
) -> Result<TestUser, MintError> {
    let id = UserId(Uuid::now_v7());
    let email = Email::from_trusted(format!("u{}@example.com", id.0.simple()));
    let mut conn = pool.get().await.map_err(PersistenceError::from)?;
    users::insert_if_absent(&mut conn, id, &email, "x").await?;
    if role != Role::User {
        users::set_role(&mut conn, &email, role).await?;
    }
    if verified {
        users::mark_verified(&mut conn, id).await?;
    }
    let sid = SessionId::new();
    let claims = Claims::new_access(
        id,
        role,
        sid,
        &TokenSettings::default(),
        Duration::from_secs(900),
    );
    Ok(TestUser {
        id: id.0,
        email: email.as_str().to_owned(),
        token: key.sign(&claims)?,
        sid,
    })
}
