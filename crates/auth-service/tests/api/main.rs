//! Integration tests of the auth service: the real server on a free port, a database and a
//! Redis key prefix of its own per test, and an SMTP capture server for the emails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod binary;
mod db_roles;
mod helpers;
mod hygiene;
mod limits;
mod login;
mod passwords;
mod refresh;
mod retention;
mod settings;
mod signup;
mod verification;
