#![allow(clippy::unwrap_used, clippy::expect_used)]
//! End to end: the job service (in-process) and real worker processes on one PostgreSQL and
//! one Redis, each test with its own database and key prefix.

mod dependencies;
mod email_budget;
mod harness;
mod idle;
mod job_logs;
mod least_privilege;
mod lifecycle;
mod limits;
mod logs;
mod pause;
mod races;
mod resilience;
mod retention;
mod schedules;
mod startup;
mod storage;
