#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The real-time gateway (`GET /api/ws`) over real sockets, PostgreSQL and Redis: job-service
//! replicas started in-process on free ports (two where a case crosses replicas), a real
//! worker where jobs must run, and a Redis server of the test's own where Redis must die.
//! `dashboards` checks the Grafana dashboard and alert rules in `deploy/` against the metrics
//! such a run exports.

mod auth;
mod dashboards;
mod frames;
mod helpers;
mod pause;
mod process;
mod replicas;
mod routing;
mod sessions;
mod slow;
