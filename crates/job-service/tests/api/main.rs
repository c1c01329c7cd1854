#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The job service over real HTTP, PostgreSQL and Redis: one database and key prefix per test.

mod batch;
mod binary;
mod dependencies;
mod helpers;
mod jwks_https;
mod limits;
mod pause;
mod redis_proxy;
mod routes;
mod schedules;
mod submit_group;
mod with_auth;
