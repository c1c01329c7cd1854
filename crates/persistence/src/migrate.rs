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

fn url_with_user(url: &str) -> String {
    crate::pool::url_with_default_user(url)
}
