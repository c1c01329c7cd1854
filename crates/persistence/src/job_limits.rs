//! Counts behind the job service's per-user limits (kept apart from the job repository).

use diesel::sql_types::{BigInt, Uuid as SqlUuid};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::PersistenceError;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// How many unfinished (waiting, pending, scheduled, running) jobs `user` has, counting no further than
/// `up_to`: a scan of the user's rows of `unfinished_jobs` (its primary key) that stops at the
/// cap, so even a user at the cap costs at most `up_to` index entries, whatever their history.
pub async fn count_unfinished(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    up_to: u64,
) -> Result<u64, PersistenceError> {
    let count: Count = sql_query(
        "SELECT count(*) AS n FROM (SELECT 1 FROM unfinished_jobs WHERE user_id = $1 LIMIT $2) \
         AS unfinished",
    )
    .bind::<SqlUuid, _>(user)
    .bind::<BigInt, _>(i64::try_from(up_to).unwrap_or(i64::MAX))
    .get_result(conn)
    .await?;
    Ok(u64::try_from(count.n).unwrap_or(0))
}
