//! Task Vault's record in PostgreSQL.
//!
//! Error policy: repositories return [`PersistenceError`]; they know nothing of HTTP. The
//! services turn the few client-caused variants (such as [`PersistenceError::Conflict`]) into
//! problem documents and log the rest.

pub mod dependencies;
pub mod email_tokens;
pub mod error;
pub mod job_batch;
pub mod job_limits;
pub mod job_logs;
pub mod jobs;
pub mod migrate;
pub mod otp_codes;
pub mod pool;
pub mod queue_depth;
pub mod queue_pause;
pub mod retention;
pub mod roles;
pub mod schedules;
pub mod schema;
pub mod sessions;
pub mod users;

pub use error::PersistenceError;
pub use pool::{PgPool, PoolSettings, PooledConnection};
