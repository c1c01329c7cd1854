//! Account values: email addresses, passwords and roles.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ValidationErrors;

/// A syntactically valid email address, trimmed and lower-cased so that uniqueness is
/// case-insensitive everywhere.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Longest address accepted (RFC 5321 path limit).
    pub const MAX_LEN: usize = 254;

    /// Validates and normalizes `raw`; errors are reported against `field`.
    pub fn parse(raw: &str, field: &str) -> Result<Self, ValidationErrors> {
        let normalized = raw.trim().to_lowercase();
        if normalized.len() > Self::MAX_LEN
            || !email_address::EmailAddress::is_valid(&normalized)
            || !normalized.contains('.')
        {
            return Err(ValidationErrors::field(
                field,
                "must be a valid email address",
            ));
        }
        Ok(Self(normalized))
    }

    /// The normalized address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps an address read back from the database, where it was stored normalized.
    pub fn from_trusted(stored: String) -> Self {
        Self(stored)
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password that meets the policy: 8 to 72 bytes (bcrypt reads at most 72).
/// Its `Debug` output is redacted so it cannot leak into logs.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Fewest bytes accepted.
    pub const MIN_BYTES: usize = 8;
    /// Most bytes accepted: bcrypt ignores anything past 72.
    pub const MAX_BYTES: usize = 72;

    /// Checks the length policy; errors are reported against `field`.
    pub fn parse(raw: String, field: &str) -> Result<Self, ValidationErrors> {
        let len = raw.len();
        if len < Self::MIN_BYTES {
            return Err(ValidationErrors::field(
                field,
                format!("must be at least {} bytes long", Self::MIN_BYTES),
            ));
        }
        if len > Self::MAX_BYTES {
            return Err(ValidationErrors::field(
                field,
                format!("must be at most {} bytes long", Self::MAX_BYTES),
            ));
        }
        Ok(Self(raw))
    }

    /// The password itself, for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// What a user may do: admins see and manage every user's jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A regular account.
    User,
    /// An operator with access to every user's jobs.
    Admin,
}

impl Role {
    /// The stored and serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

/// A role name that is neither `user` nor `admin`.
#[derive(Debug, thiserror::Error)]
#[error("unknown role `{0}`")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user" => Ok(Role::User),
            "admin" => Ok(Role::Admin),
            other => Err(UnknownRole(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_normalized_and_checked() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ", "email").map(|e| e.0),
            Ok("ada@example.com".into())
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
        ] {
            assert!(
                Email::parse(bad, "email").is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn password_length_is_counted_in_bytes() {
        assert!(Password::parse("short".into(), "password").is_err());
        assert!(Password::parse("a".repeat(8), "password").is_ok());
        assert!(Password::parse("a".repeat(72), "password").is_ok());
        assert!(Password::parse("a".repeat(73), "password").is_err());
        // 25 three-byte characters are 75 bytes.
        assert!(Password::parse("€".repeat(25), "password").is_err());
        assert_eq!(
            format!("{:?}", Password::parse("a".repeat(8), "p").ok()),
            "Some(Password(<redacted>))"
        );
    }
}
