//! Which job types are paused: one row (`queue_pause`), the record behind
//! `POST /api/jobs/admin/pause` and `/resume`. Workers do not read it on every claim: they
//! claim against a Redis mirror written from it (with its `version`, so that an older state
//! never overwrites a newer one), and rewrite the mirror from here whenever Redis has lost it.

use diesel::sql_types::{Array, BigInt, Nullable, Text, Uuid as SqlUuid};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::PersistenceError;

/// The paused types and the version of that state.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct PauseState {
    /// The paused types, sorted by name.
    #[diesel(sql_type = Array<Text>)]
    pub paused_types: Vec<String>,
    /// Grows with every change.
    #[diesel(sql_type = BigInt)]
    pub version: i64,
}

/// The current state.
pub async fn get(conn: &mut AsyncPgConnection) -> Result<PauseState, PersistenceError> {
    Ok(
        sql_query("SELECT paused_types, version FROM queue_pause WHERE id = 1")
            .get_result(conn)
            .await?,
    )
}

/// Adds `types` to the paused types (those already paused stay so); returns the new state.
/// The row lock orders concurrent changes, and each one bumps the version.
pub async fn pause(
    conn: &mut AsyncPgConnection,
    types: &[&str],
    by: Uuid,
) -> Result<PauseState, PersistenceError> {
    change(
        conn,
        "ARRAY(SELECT DISTINCT t FROM unnest(paused_types || $1) AS t ORDER BY t)",
        types,
        by,
    )
    .await
}

/// Removes `types` from the paused types; returns the new state.
pub async fn resume(
    conn: &mut AsyncPgConnection,
    types: &[&str],
    by: Uuid,
) -> Result<PauseState, PersistenceError> {
    change(
        conn,
        "ARRAY(SELECT t FROM unnest(paused_types) AS t WHERE t <> ALL($1) ORDER BY t)",
        types,
        by,
    )
    .await
}

async fn change(
    conn: &mut AsyncPgConnection,
    new_types: &str,
    types: &[&str],
    by: Uuid,
) -> Result<PauseState, PersistenceError> {
    let types: Vec<String> = types.iter().map(|t| (*t).to_owned()).collect();
    Ok(sql_query(format!(
        "UPDATE queue_pause SET paused_types = {new_types}, version = version + 1, \
         updated_at = now(), updated_by = $2 WHERE id = 1 RETURNING paused_types, version"
    ))
    .bind::<Array<Text>, _>(types)
    .bind::<Nullable<SqlUuid>, _>(Some(by))
    .get_result(conn)
    .await?)
}
