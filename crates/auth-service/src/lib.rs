//! Task Vault's auth service: accounts, email verification, sessions with rotating refresh
//! tokens, and the EdDSA access tokens that the other services verify.
//!
//! Layers: [`routes`] (thin actix handlers) → [`services`] (the rules) → the `persistence`
//! repositories. Errors: one [`error::ApiError`] mapped to problem documents; causes of 5xx
//! answers are logged, never sent. Abuse limits live in Redis ([`rate_limit`]) so that they
//! hold across replicas.
#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod auth;
pub mod client_ip;
pub mod cookies;
pub mod error;
pub mod hashing;
pub mod openapi;
pub mod rate_limit;
pub mod routes;
pub mod secrets;
pub mod services;
pub mod settings;
pub mod startup;
pub mod state;

pub use settings::Settings;
pub use startup::{Application, StartupError};
