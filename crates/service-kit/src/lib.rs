//! Plumbing shared by Task Vault's three processes, so each service keeps only its own logic.
//!
//! - [`budget`]: limits over several time windows, kept in Redis.
//! - [`settings`]: defaults → optional TOML file → environment variables.
//! - [`telemetry`]: `tracing` output, `pretty` or `json`.
//! - [`problem`]: RFC 9457 problem documents, the one error body of every HTTP service.
//! - [`json`]: a strict JSON body extractor (415 / 413 / 400 / 422 as the contract says).
//! - [`http`]: CORS, CSRF, security headers, default 404s, API docs.
//! - [`metrics`]: the Prometheus recorder, request metrics and logging, the `METRICS_ADDR`
//!   listener.
//! - [`request_id`]: one id per HTTP request, in its logs, its answer and its problem document.
//! - [`retention`]: the periodic deletion of rows nobody needs any more.
//! - [`openapi`]: the finishing pass that makes each OpenAPI document describe every answer.
//! - [`mail`]: outgoing email through SMTP, or to the log without `SMTP_URL`.
//! - [`health`]: `/healthz` and `/readyz`.
//! - [`redis_pool`]: the deadpool Redis pool and key prefixes.
//! - [`revocation_record`]: PostgreSQL behind the Redis list of revoked sessions.

pub mod budget;
pub mod health;
pub mod http;
pub mod json;
pub mod listener;
pub mod mail;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod redis_pool;
pub mod request_id;
pub mod retention;
pub mod revocation_record;
pub mod settings;
pub mod telemetry;

pub use problem::Problem;
