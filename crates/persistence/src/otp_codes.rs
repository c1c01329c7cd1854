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

/// How many wrong guesses a code, and an account across all its codes, may take.
#[derive(Debug, Clone, Copy)]
pub struct GuessLimits {
    /// Wrong guesses after which one code is void.
    pub per_code: i32,
    /// Wrong guesses of an account, across codes (resends), after which no code is accepted
    /// until `account_window` has passed since the first of them.
    pub per_account: i32,
    /// The window of `per_account`.
    pub account_window: chrono::Duration,
}

/// Checks a guess. A right guess on a live code deletes the code and returns `true`; a wrong
/// one counts against the code and against the account. A code with `per_code` wrong guesses,
/// or expired, accepts nothing; nor does any code of an account with `per_account` wrong
/// guesses in the window (a resend replaces the code but keeps the account's count). Runs in a
/// transaction with the row locked, so concurrent guesses are all counted.
pub async fn check(
    conn: &mut AsyncPgConnection,
    user_id: UserId,
    guess_hash: Vec<u8>,
    limits: GuessLimits,
) -> Result<bool, PersistenceError> {
    conn.transaction(async |conn| {
        let row = otp_codes::table
            .find(user_id.0)
            .select((
                otp_codes::code_hash,
                otp_codes::failed_attempts,
                otp_codes::expires_at,
                otp_codes::account_failures,
                otp_codes::failures_since,
            ))
            .for_update()
            .first::<(Vec<u8>, i32, DateTime<Utc>, i32, DateTime<Utc>)>(conn)
            .await
            .optional()?;
        let Some((code_hash, failed_attempts, expires_at, account_failures, failures_since)) = row
        else {
            return Ok(false);
        };
        let now = Utc::now();
        let window_open = failures_since > now - limits.account_window;
        let account_failures = if window_open { account_failures } else { 0 };
        if account_failures >= limits.per_account {
            return Ok(false);
        }
        let usable = failed_attempts < limits.per_code && expires_at > now;
        if usable && constant_time_eq(&code_hash, &guess_hash) {
            diesel::delete(otp_codes::table.find(user_id.0))
                .execute(conn)
                .await?;
            return Ok(true);
        }
        diesel::update(otp_codes::table.find(user_id.0))
            .set((
                otp_codes::failed_attempts.eq(otp_codes::failed_attempts + 1),
                otp_codes::account_failures.eq(account_failures + 1),
                otp_codes::failures_since.eq(if window_open { failures_since } else { now }),
            ))
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
