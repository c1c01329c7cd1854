//! Task Vault's record in PostgreSQL.
//!
//! Error policy: repositories return [`PersistenceError`]; they know nothing of HTTP. The
//! services turn the few client-caused variants (such as [`PersistenceError::Conflict`]) into
//! problem documents and log the rest.

pub mod error;
pub mod migrate;
pub mod pool;
pub mod schema;

pub use error::PersistenceError;
pub use pool::{PgPool, PoolSettings, PooledConnection};
