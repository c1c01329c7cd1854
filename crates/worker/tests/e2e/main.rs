#![allow(clippy::unwrap_used, clippy::expect_used)]
//! End to end: the job service (in-process) and real worker processes on one PostgreSQL and
//! one Redis, each test with its own database and key prefix.

mod email_budget;
mod harness;
mod idle;
mod job_logs;
mod lifecycle;
mod logs;
mod races;
mod resilience;
mod retention;
mod schedules;
mod startup;
