//! The one error type of this crate.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// What can go wrong talking to PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum PersistenceError {
    /// No connection could be had from the pool in time (database down or pool exhausted).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A unique constraint refused the write; the name of the constraint is kept.
    #[error("conflicts with an existing row ({constraint})")]
    Conflict {
        /// The violated constraint or index.
        constraint: String,
    },
    /// Migrations could not be applied.
    #[error("migration failed: {0}")]
    Migration(String),
    /// A request refused before reaching the server (such as an unusable role name).
    #[error("{0}")]
    Invalid(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Query(#[source] DieselError),
}

impl From<DieselError> for PersistenceError {
    fn from(error: DieselError) -> Self {
        match error {
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                PersistenceError::Conflict {
                    constraint: info.constraint_name().unwrap_or("unknown").to_owned(),
                }
            }
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                PersistenceError::Unavailable(info.message().to_owned())
            }
            other => PersistenceError::Query(other),
        }
    }
}

impl From<deadpool::managed::PoolError<diesel_async::pooled_connection::PoolError>>
    for PersistenceError
{
    fn from(
        error: deadpool::managed::PoolError<diesel_async::pooled_connection::PoolError>,
    ) -> Self {
        PersistenceError::Unavailable(error.to_string())
    }
}
