//! Accounts.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::{Email, Role, UserId};

use crate::PersistenceError;
use crate::schema::users;

#[diesel::declare_sql_function]
extern "SQL" {
    /// SQL `lower(text)`: addresses are looked up through the unique index on `lower(email)`;
    /// a plain `email = $1` would scan the whole table.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// A stored account.
#[derive(Debug, Clone)]
pub struct UserRecord {
    /// The account's id.
    pub id: UserId,
    /// The normalized address.
    pub email: Email,
    /// The bcrypt hash of the password.
    pub password_hash: String,
    /// What the user may do.
    pub role: Role,
    /// Whether the address has been proven.
    pub email_verified: bool,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

pub(crate) type Row = (uuid::Uuid, String, String, String, bool, DateTime<Utc>);

const COLUMNS: (
    users::id,
    users::email,
    users::password_hash,
    users::role,
    users::email_verified,
    users::created_at,
) = (
    users::id,
    users::email,
    users::password_hash,
    users::role,
    users::email_verified,
    users::created_at,
);

pub(crate) fn record(
    (id, email, password_hash, role, email_verified, created_at): Row,
) -> UserRecord {
    UserRecord {
        id: UserId(id),
        email: Email::from_trusted(email),
        password_hash,
        // The CHECK constraint allows only `user` and `admin`.
        role: role.parse().unwrap_or(Role::User),
        email_verified,
        created_at,
    }
}

/// Inserts a new account unless the address is taken; returns the new row, or `None` when an
/// account with that address exists already.
pub async fn insert_if_absent(
    conn: &mut AsyncPgConnection,
    id: UserId,
    email: &Email,
    password_hash: &str,
) -> Result<Option<UserRecord>, PersistenceError> {
    let row = diesel::insert_into(users::table)
        .values((
            users::id.eq(id.0),
            users::email.eq(email.as_str()),
            users::password_hash.eq(password_hash),
        ))
        .on_conflict_do_nothing()
        .returning(COLUMNS)
        .get_result::<Row>(conn)
        .await
        .optional()?;
    Ok(row.map(record))
}

/// The account with this address, if any.
pub async fn find_by_email(
    conn: &mut AsyncPgConnection,
    email: &Email,
) -> Result<Option<UserRecord>, PersistenceError> {
    let row = users::table
        .filter(lower(users::email).eq(email.as_str()))
        .select(COLUMNS)
        .first::<Row>(conn)
        .await
        .optional()?;
    Ok(row.map(record))
}

/// The account with this id, if any.
pub async fn find(
    conn: &mut AsyncPgConnection,
    id: UserId,
) -> Result<Option<UserRecord>, PersistenceError> {
    let row = users::table
        .find(id.0)
        .select(COLUMNS)
        .first::<Row>(conn)
        .await
        .optional()?;
    Ok(row.map(record))
}

/// The current role of the account with this id (`None`: no such account). Reads only the
/// role, so that services without access to credentials can ask.
pub async fn role(
    conn: &mut AsyncPgConnection,
    id: UserId,
) -> Result<Option<Role>, PersistenceError> {
    let role = users::table
        .find(id.0)
        .select(users::role)
        .first::<String>(conn)
        .await
        .optional()?;
    Ok(role.map(|role| role.parse().unwrap_or(Role::User)))
}

/// Marks the address as proven and returns the updated account.
pub async fn mark_verified(
    conn: &mut AsyncPgConnection,
    id: UserId,
) -> Result<UserRecord, PersistenceError> {
    let row = diesel::update(users::table.find(id.0))
        .set((
            users::email_verified.eq(true),
            users::updated_at.eq(diesel::dsl::now),
        ))
        .returning(COLUMNS)
        .get_result::<Row>(conn)
        .await?;
    Ok(record(row))
}

/// Replaces the password hash.
pub async fn set_password(
    conn: &mut AsyncPgConnection,
    id: UserId,
    password_hash: &str,
) -> Result<(), PersistenceError> {
    diesel::update(users::table.find(id.0))
        .set((
            users::password_hash.eq(password_hash),
            users::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Gives the account with this address `role`; `None` when there is no such account.
pub async fn set_role(
    conn: &mut AsyncPgConnection,
    email: &Email,
    role: Role,
) -> Result<Option<UserRecord>, PersistenceError> {
    let row = diesel::update(users::table.filter(lower(users::email).eq(email.as_str())))
        .set((
            users::role.eq(role.as_str()),
            users::updated_at.eq(diesel::dsl::now),
        ))
        .returning(COLUMNS)
        .get_result::<Row>(conn)
        .await
        .optional()?;
    Ok(row.map(record))
}
