//! Task Vault's domain: the values every service agrees on.
//!
//! Types here can only be built valid (`parse` returns a `Result`), so code that holds an
//! [`Email`] or a [`job::Priority`] never re-checks it. Nothing in this crate does I/O.

pub mod ids;
pub mod job;
#[cfg(feature = "diesel")]
mod job_sql;
pub mod job_view;
pub mod schedule;
pub mod user;
pub mod validation;

pub use ids::{JobId, SessionId, UserId};
pub use user::{Email, Password, Role};
pub use validation::ValidationErrors;
