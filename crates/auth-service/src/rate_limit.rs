//! Abuse limits kept in Redis, so they hold across replicas.
//!
//! - One budget of `AUTH_RATE_LIMIT_PER_MINUTE` requests per client IP, shared by the sign-in
//!   routes (fixed one-minute window, one round trip per check: `fixed_window.lua`).
//! - Failed logins are throttled per (account, client), never per account alone, so that
//!   nobody can lock an account's owner out by failing on purpose. A client may fail
//!   `LOGIN_FAILURE_LIMIT` times on an account; after that each further try waits, 1 s after its
//!   latest failure, doubling with each failure up to 15 minutes. Once the account has that
//!   many failures from anyone, every client that failed on it waits after each of its own
//!   failures (many clients guessing together get no more tries than one). A client that has
//!   not failed never waits, and its success clears only its own record. Wrong current
//!   passwords at change-password count the same way. Login checks the per-IP budget and the
//!   throttle in one round trip (`login_check.lua`).
//! - Verification emails: at most [`RESEND_WINDOWS`] per address, counted whether or not the
//!   address has an account, so the limit reveals nothing.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use redis::Script;
use service_kit::budget::{Budgets, Window};

use crate::error::ApiError;

const IP_WINDOW: Duration = Duration::from_secs(60);
/// How long an account's failure record lives after its latest failure.
const LOGIN_FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// The first wait once a client has used up its failures.
const FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest wait.
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);

/// Verification emails an address may ask for: 3 an hour and 10 a day.
pub const RESEND_WINDOWS: [Window; 2] = [
    Window::new(3, Duration::from_secs(60 * 60)),
    Window::new(10, Duration::from_secs(24 * 60 * 60)),
];

/// The limits of one process (state is in Redis).
#[derive(Clone)]
pub struct RateLimiter {
    pool: deadpool_redis::Pool,
    prefix: String,
    per_ip_per_minute: u32,
    login_failure_limit: u32,
    budgets: Budgets,
    fixed_window: Arc<Script>,
    login_check: Arc<Script>,
    login_failure: Arc<Script>,
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Whole seconds to wait for `ms` milliseconds, at least one.
fn retry_after_secs(ms: i64) -> u64 {
    u64::try_from(ms.max(0)).unwrap_or(0).div_ceil(1000).max(1)
}

fn refused(label: &'static str, wait_ms: i64) -> ApiError {
    metrics::counter!("auth_rate_limited_total", "limit" => label).increment(1);
    ApiError::RateLimited {
        retry_after_secs: retry_after_secs(wait_ms),
    }
}

impl RateLimiter {
    /// Limits stored under `prefix`.
    pub fn new(
        pool: deadpool_redis::Pool,
        prefix: &str,
        per_ip_per_minute: u32,
        login_failure_limit: u32,
    ) -> Self {
        Self {
            budgets: Budgets::new(pool.clone(), prefix),
            pool,
            prefix: prefix.to_owned(),
            per_ip_per_minute,
            login_failure_limit,
            fixed_window: Arc::new(Script::new(include_str!("fixed_window.lua"))),
            login_check: Arc::new(Script::new(include_str!("login_check.lua"))),
            login_failure: Arc::new(Script::new(include_str!("login_failure.lua"))),
        }
    }

    fn ip_key(&self, ip: IpAddr) -> String {
        format!("{}ratelimit:auth:{ip}", self.prefix)
    }

    /// Keyed by a hash of the address, so Redis holds no email addresses.
    fn account_digest(account: &str) -> String {
        URL_SAFE_NO_PAD.encode(crate::secrets::token_hash(account))
    }

    fn login_key(&self, account: &str) -> String {
        format!(
            "{}login-failures:{}",
            self.prefix,
            Self::account_digest(account)
        )
    }

    /// Counts one request from `ip` against the shared budget; 429 beyond it.
    pub async fn check_ip(&self, ip: IpAddr) -> Result<(), ApiError> {
        let mut conn = self.pool.get().await?;
        let (count, ttl_ms): (i64, i64) = self
            .fixed_window
            .key(self.ip_key(ip))
            .arg(millis(IP_WINDOW))
            .invoke_async(&mut conn)
            .await?;
        if count > i64::from(self.per_ip_per_minute) {
            return Err(refused("ip", ttl_ms));
        }
        Ok(())
    }

    /// Before a password of `account` is checked for the client `ip`: counts the request
    /// against the IP's budget when `count_ip`, and refuses (429) while this client must wait
    /// after its failures. Else returns this client's recent failures (so that a success
    /// clears them only when there are any).
    pub async fn check_login(
        &self,
        ip: IpAddr,
        account: &str,
        count_ip: bool,
    ) -> Result<u64, ApiError> {
        let mut conn = self.pool.get().await?;
        let (count, ttl_ms, failures, wait_ms): (i64, i64, i64, i64) = self
            .login_check
            .key(self.ip_key(ip))
            .key(self.login_key(account))
            .arg(if count_ip { millis(IP_WINDOW) } else { 0 })
            .arg(ip.to_string())
            .arg(self.login_failure_limit)
            .arg(millis(FIRST_DELAY))
            .arg(millis(MAX_DELAY))
            .invoke_async(&mut conn)
            .await?;
        if count_ip && count > i64::from(self.per_ip_per_minute) {
            return Err(refused("ip", ttl_ms));
        }
        if wait_ms > 0 {
            return Err(refused("login_failures", wait_ms));
        }
        Ok(u64::try_from(failures).unwrap_or(0))
    }

    /// Counts a failed login (or wrong current password) of `account` from `ip`.
    pub async fn record_login_failure(&self, ip: IpAddr, account: &str) -> Result<(), ApiError> {
        let mut conn = self.pool.get().await?;
        self.login_failure
            .key(self.login_key(account))
            .arg(ip.to_string())
            .arg(millis(LOGIN_FAILURE_WINDOW))
            .invoke_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// Forgets the `failures` of `account` from `ip` (as [`RateLimiter::check_login`] counted
    /// them) after it proved the password. Other clients' failures stay.
    pub async fn clear_login_failures(
        &self,
        ip: IpAddr,
        account: &str,
        failures: u64,
    ) -> Result<(), ApiError> {
        let mut conn = self.pool.get().await?;
        let client = ip.to_string();
        let key = self.login_key(account);
        redis::pipe()
            .atomic()
            .hdel(&key, &[client.clone(), format!("{client}:t")])
            .ignore()
            .hincr(&key, "_total", -i64::try_from(failures).unwrap_or(0))
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// Forgets every failure of `account` (after its password was reset through the email
    /// link: whoever was guessing must not keep its owner waiting).
    pub async fn forget_account(&self, account: &str) -> Result<(), ApiError> {
        let mut conn = self.pool.get().await?;
        redis::cmd("DEL")
            .arg(self.login_key(account))
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// Spends one of the verification emails `account` may ask for ([`RESEND_WINDOWS`]); 429
    /// when they are used up.
    pub async fn check_resend(&self, account: &str) -> Result<(), ApiError> {
        let name = format!("resend:{}", Self::account_digest(account));
        match self
            .budgets
            .spend(&name, &RESEND_WINDOWS)
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?
        {
            None => Ok(()),
            Some(wait) => Err(refused(
                "resend",
                i64::try_from(wait.as_millis()).unwrap_or(i64::MAX),
            )),
        }
    }
}
