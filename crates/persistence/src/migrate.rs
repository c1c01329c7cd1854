//! Embedded migrations, applied under a PostgreSQL advisory lock so that any number of
//! replicas can start at once against a fresh database.

use diesel::Connection as _;
use diesel::RunQueryDsl as _;
use diesel::migration::MigrationSource;
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
///
/// The check only reads `__diesel_schema_migrations`: the migration harness's own check would
/// first run `CREATE TABLE IF NOT EXISTS`, which a role without `CREATE` on the schema (the
/// job service's and the worker's, see [`crate::roles`]) is refused.
pub async fn prepare(database_url: &str, production: bool) -> Result<usize, PersistenceError> {
    if !production {
        return run_pending(database_url).await;
    }
    let mut conn = crate::pool::connect(database_url).await?;
    let pending = pending(&mut conn).await?;
    if pending > 0 {
        return Err(PersistenceError::Migration(format!(
            "{pending} migration(s) pending; with APP_ENV=production services never change the schema: run `auth-service migrate` (the Kubernetes Job) first"
        )));
    }
    Ok(0)
}

#[derive(diesel::QueryableByName)]
struct Version {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version: String,
}

#[derive(diesel::QueryableByName)]
struct Exists {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    exists: bool,
}

/// How many embedded migrations the database has not applied, read without any DDL.
pub async fn pending(conn: &mut AsyncPgConnection) -> Result<usize, PersistenceError> {
    use diesel_async::RunQueryDsl as Async;
    // Versions only: the migrations themselves are not `Send`, and this future must be.
    let embedded: Vec<String> = MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS)
        .map_err(|e| PersistenceError::Migration(e.to_string()))?
        .iter()
        .map(|m| m.name().version().to_string())
        .collect();
    let exists = Async::get_result::<Exists>(
        diesel::sql_query("SELECT to_regclass('__diesel_schema_migrations') IS NOT NULL AS exists"),
        conn,
    )
    .await?
    .exists;
    let applied = if exists {
        Async::load::<Version>(
            diesel::sql_query("SELECT version::text AS version FROM __diesel_schema_migrations"),
            conn,
        )
        .await?
    } else {
        Vec::new()
    };
    Ok(embedded
        .iter()
        .filter(|version| !applied.iter().any(|a| &a.version == *version))
        .count())
}

fn url_with_user(url: &str) -> String {
    crate::pool::url_with_default_user(url)
}
