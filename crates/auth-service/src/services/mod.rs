//! What the routes ask for, independent of HTTP: accounts, sessions and email.

pub mod account;
pub mod email;
pub mod session;

use chrono::{DateTime, Utc};
use domain::Role;
use persistence::users::UserRecord;
use serde::Serialize;
use uuid::Uuid;

/// The user object of the contract.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserView {
    /// The user's id.
    pub id: Uuid,
    /// The normalized email address.
    pub email: String,
    /// `user` or `admin`.
    pub role: Role,
    /// Whether the address has been proven.
    pub email_verified: bool,
    /// When the account was created (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
}

impl From<&UserRecord> for UserView {
    fn from(user: &UserRecord) -> Self {
        Self {
            id: user.id.0,
            email: user.email.as_str().to_owned(),
            role: user.role,
            email_verified: user.email_verified,
            created_at: user.created_at,
        }
    }
}

/// The moment `secs` from now: when a token or link issued now expires. Lifetimes are bounded
/// by the settings, so the sum cannot overflow.
pub fn expires_after(secs: u64) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000))
}
