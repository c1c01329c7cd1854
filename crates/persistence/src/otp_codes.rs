//! Six-digit verification codes, one per user, stored hashed with a wrong-guess counter.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use domain::UserId;

use crate::PersistenceError;
use crate::schema::otp_codes;

/// Stores `code_hash` as the user's current code, replacing any earlier one and its counter.
pub async fn replace(
    conn: &mut AsyncPgConnection,
    user_id: UserId,
    code_hash: &[u8],
    expires_at: DateTime<Utc>,
) -> Result<(), PersistenceError> {
    diesel::insert_into(otp_codes::table)
        .values((
            otp_codes::user_id.eq(user_id.0),
            otp_codes::code_hash.eq(code_hash),
            otp_codes::expires_at.eq(expires_at),
        ))
        .on_conflict(otp_codes::user_id)
        .do_update()
        .set((
            otp_codes::code_hash.eq(excluded(otp_codes::code_hash)),
            otp_codes::expires_at.eq(excluded(otp_codes::expires_at)),
            otp_codes::failed_attempts.eq(0),
            otp_codes::created_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Checks a guess. A right guess on a live code deletes the code and returns `true`; a wrong
/// one counts against it. A code with `max_failures` wrong guesses, or expired, accepts
/// nothing. Runs in a transaction with the row locked, so concurrent guesses are all counted.
pub async fn check(
    conn: &mut AsyncPgConnection,
    user_id: UserId,
    guess_hash: Vec<u8>,
    max_failures: i32,
) -> Result<bool, PersistenceError> {
    conn.transaction(async |conn| {
        let row = otp_codes::table
            .find(user_id.0)
            .select((
                otp_codes::code_hash,
                otp_codes::failed_attempts,
                otp_codes::expires_at,
            ))
            .for_update()
            .first::<(Vec<u8>, i32, DateTime<Utc>)>(conn)
            .await
            .optional()?;
        let Some((code_hash, failed_attempts, expires_at)) = row else {
            return Ok(false);
        };
        if failed_attempts >= max_failures || expires_at <= Utc::now() {
            return Ok(false);
        }
        if constant_time_eq(&code_hash, &guess_hash) {
            diesel::delete(otp_codes::table.find(user_id.0))
                .execute(conn)
                .await?;
            return Ok(true);
        }
        diesel::update(otp_codes::table.find(user_id.0))
            .set(otp_codes::failed_attempts.eq(otp_codes::failed_attempts + 1))
            .execute(conn)
            .await?;
        Ok::<_, PersistenceError>(false)
    })
    .await
}

/// Deletes the user's code (after the address was proven another way).
pub async fn delete(conn: &mut AsyncPgConnection, user_id: UserId) -> Result<(), PersistenceError> {
    diesel::delete(otp_codes::table.find(user_id.0))
        .execute(conn)
        .await?;
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
