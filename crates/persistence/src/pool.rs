//! The shared connection pool.

use std::time::Duration;

use diesel::ConnectionError;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::PersistenceError;

/// A pool of asynchronous PostgreSQL connections.
pub type PgPool = Pool<AsyncPgConnection>;
/// A connection checked out of [`PgPool`].
pub type PooledConnection = Object<AsyncPgConnection>;

/// How the pool connects and how long it waits.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// PostgreSQL URL.
    pub url: String,
    /// Most connections held open.
    pub max_size: usize,
    /// How long a request waits for a free connection before failing as unavailable.
    pub wait_timeout: Duration,
    /// Server-side cap on one statement, so a runaway query cannot hold a connection forever.
    pub statement_timeout: Duration,
}

impl PoolSettings {
    /// Defaults suited to one service process.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_size: 16,
            wait_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
        }
    }
}

/// Builds the pool. Connections are opened lazily, so this succeeds with the database down;
/// readiness probes tell whether it answers.
pub fn build_pool(settings: &PoolSettings) -> Result<PgPool, PersistenceError> {
    let statement_timeout_ms = settings.statement_timeout.as_millis();
    let mut config = ManagerConfig::<AsyncPgConnection>::default();
    // `Verified` (the default) spends a `SELECT 1` round trip on every checkout, which halved
    // read throughput in the benchmark; a dead connection still surfaces as an error on first
    // use and is then dropped from the pool.
    config.recycling_method = RecyclingMethod::Fast;
    config.custom_setup = Box::new(move |url| {
        let url = url.to_owned();
        Box::pin(async move {
            let mut conn = AsyncPgConnection::establish(&url).await?;
            diesel::sql_query(format!("SET statement_timeout = {statement_timeout_ms}"))
                .execute(&mut conn)
                .await
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        })
    });
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
        url_with_default_user(&settings.url),
        config,
    );
    Pool::builder(manager)
        .max_size(settings.max_size)
        .wait_timeout(Some(settings.wait_timeout))
        .create_timeout(Some(settings.wait_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| PersistenceError::Unavailable(e.to_string()))
}

/// Opens one connection outside the pool (migrations, tools).
pub async fn connect(url: &str) -> Result<AsyncPgConnection, PersistenceError> {
    AsyncPgConnection::establish(&url_with_default_user(url))
        .await
        .map_err(|e| PersistenceError::Unavailable(e.to_string()))
}

/// Checks that the database answers.
pub async fn ping(pool: &PgPool) -> Result<(), PersistenceError> {
    let mut conn = pool.get().await?;
    diesel::sql_query("SELECT 1").execute(&mut conn).await?;
    Ok(())
}

/// libpq fills a missing user name from the operating-system user; the pure-Rust driver does
/// not, so `postgres://localhost/taskvault` would fail. Do the same as libpq.
pub(crate) fn url_with_default_user(url: &str) -> String {
    let Some(rest) = url.split_once("://").map(|(_, rest)| rest) else {
        return url.to_owned();
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.contains('@') || url.contains("user=") {
        return url.to_owned();
    }
    let user = std::env::var("PGUSER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "postgres".to_owned());
    let scheme_len = url.len() - rest.len();
    format!("{}{user}@{rest}", &url[..scheme_len])
}

#[cfg(test)]
mod tests {
    use super::url_with_default_user;

    #[test]
    fn fills_in_a_missing_user_only() {
        assert_eq!(
            url_with_default_user("postgres://u:p@h/db"),
            "postgres://u:p@h/db"
        );
        assert_eq!(
            url_with_default_user("postgres://h/db?user=x"),
            "postgres://h/db?user=x"
        );
        let filled = url_with_default_user("postgres://localhost/taskvault");
        assert!(filled.starts_with("postgres://") && filled.ends_with("@localhost/taskvault"));
    }
}
