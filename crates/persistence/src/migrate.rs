//! Embedded migrations, applied under a PostgreSQL advisory lock so that any number of
//! replicas can start at once against a fresh database.

use diesel::Connection as _;
use diesel::RunQueryDsl as _;
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::PersistenceError;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Key of the advisory lock held while migrating ("taskvlt" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x0074_6173_6b76_6c74;

/// Applies every pending migration and returns how many ran.
///
/// Holds a session-level advisory lock while migrating: a replica that starts while another is
/// migrating waits, then finds nothing left to do. The lock dies with the connection, so a
/// process killed mid-migration cannot wedge the others.
pub async fn run_pending(database_url: &str) -> Result<usize, PersistenceError> {
    let url = database_url.to_owned();
    // The sync migration harness runs on a blocking thread over the async driver, so no libpq
    // is needed and the async runtime is never blocked.
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _entered = handle.enter();
        let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(&url_with_user(&url))
            .map_err(|e| PersistenceError::Unavailable(e.to_string()))?;
        diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
            .execute(&mut conn)?;
        let applied = conn
            .run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.len())
            .map_err(|e| PersistenceError::Migration(e.to_string()));
        diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
            .execute(&mut conn)?;
        applied
    })
    .await
    .map_err(|e| PersistenceError::Migration(format!("migration task failed: {e}")))?
}

/// What a service does with the schema at start: in development, [`run_pending`] (a fresh
/// database works without a manual step); in production, nothing but a check. There a service
/// never runs DDL (its database role need not be allowed to): if migrations are pending it
/// refuses to start, naming the `migrate` command (the Kubernetes Job) that applies them.
pub async fn prepare(database_url: &str, production: bool) -> Result<usize, PersistenceError> {
    if !production {
        return run_pending(database_url).await;
    }
    let url = database_url.to_owned();
    let handle = tokio::runtime::Handle::current();
    let pending = tokio::task::spawn_blocking(move || {
        let _entered = handle.enter();
        let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(&url_with_user(&url))
            .map_err(|e| PersistenceError::Unavailable(e.to_string()))?;
        conn.pending_migrations(MIGRATIONS)
            .map(|pending| pending.len())
            .map_err(|e| PersistenceError::Migration(e.to_string()))
    })
    .await
    .map_err(|e| PersistenceError::Migration(format!("migration check failed: {e}")))??;
    if pending > 0 {
        return Err(PersistenceError::Migration(format!(
            "{pending} migration(s) pending; with APP_ENV=production services never change the schema: run `auth-service migrate` (the Kubernetes Job) first"
        )));
    }
    Ok(0)
}

fn url_with_user(url: &str) -> String {
    crate::pool::url_with_default_user(url)
}
