//! Single-use email link tokens (verification and password reset), stored as hashes.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::UserId;

use crate::PersistenceError;
use crate::schema::email_tokens;

/// What a link token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Proves the address of a new account.
    VerifyEmail,
    /// Lets the holder set a new password.
    ResetPassword,
}

impl Purpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verify_email",
            Purpose::ResetPassword => "reset_password",
        }
    }
}

/// Stores a new token (its hash) for `user_id`, valid until `expires_at`.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8],
    user_id: UserId,
    purpose: Purpose,
    expires_at: DateTime<Utc>,
) -> Result<(), PersistenceError> {
    diesel::insert_into(email_tokens::table)
        .values((
            email_tokens::token_hash.eq(token_hash),
            email_tokens::user_id.eq(user_id.0),
            email_tokens::purpose.eq(purpose.as_str()),
            email_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Spends the token: marks it used if it exists, has this purpose, is unused and unexpired,
/// and returns its user. One statement, so two concurrent uses cannot both succeed.
pub async fn consume(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8],
    purpose: Purpose,
) -> Result<Option<UserId>, PersistenceError> {
    let user = diesel::update(
        email_tokens::table
            .filter(email_tokens::token_hash.eq(token_hash))
            .filter(email_tokens::purpose.eq(purpose.as_str()))
            .filter(email_tokens::used_at.is_null())
            .filter(email_tokens::expires_at.gt(diesel::dsl::now)),
    )
    .set(email_tokens::used_at.eq(diesel::dsl::now))
    .returning(email_tokens::user_id)
    .get_result::<uuid::Uuid>(conn)
    .await
    .optional()?;
    Ok(user.map(UserId))
}

/// Deletes every unused token of `user_id` for `purpose` (a newer link replaces older ones).
pub async fn delete_unused(
    conn: &mut AsyncPgConnection,
    user_id: UserId,
    purpose: Purpose,
) -> Result<usize, PersistenceError> {
    Ok(diesel::delete(
        email_tokens::table
            .filter(email_tokens::user_id.eq(user_id.0))
            .filter(email_tokens::purpose.eq(purpose.as_str()))
            .filter(email_tokens::used_at.is_null()),
    )
    .execute(conn)
    .await?)
}
