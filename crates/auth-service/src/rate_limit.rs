//! Abuse limits kept in Redis, so they hold across replicas.
//!
//! - One budget of `AUTH_RATE_LIMIT_PER_MINUTE` requests per client IP, shared by the sign-in
//!   routes (fixed one-minute window, one round trip per check: `fixed_window.lua`).
//! - `LOGIN_FAILURE_LIMIT` failed logins per account per 15 minutes (wrong current passwords at
//!   change-password count too). Login checks both limits in the same round trip.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use redis::Script;

use crate::error::ApiError;

const IP_WINDOW: Duration = Duration::from_secs(60);
const LOGIN_FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The limits of one process (state is in Redis).
#[derive(Clone)]
pub struct RateLimiter {
    pool: deadpool_redis::Pool,
    prefix: String,
    per_ip_per_minute: u32,
    login_failure_limit: u32,
    script: std::sync::Arc<Script>,
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
            pool,
            prefix: prefix.to_owned(),
            per_ip_per_minute,
            login_failure_limit,
            script: std::sync::Arc::new(Script::new(include_str!("fixed_window.lua"))),
        }
    }

    /// Runs `fixed_window.lua`: counts a hit on `keys[0]` and, with a second key, reads that
    /// counter too.
    async fn run(&self, keys: &[&str], window: Duration) -> Result<Vec<i64>, ApiError> {
        let mut conn = self.pool.get().await?;
        let mut invocation = self.script.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        Ok(invocation
            .arg(u64::try_from(window.as_millis()).unwrap_or(u64::MAX))
            .invoke_async(&mut conn)
            .await?)
    }

    fn ip_key(&self, ip: IpAddr) -> String {
        format!("{}ratelimit:auth:{ip}", self.prefix)
    }

    /// 429 when `count` hits on a counter exceed `limit`.
    fn refuse_over(
        count: i64,
        limit: u32,
        ttl_ms: i64,
        label: &'static str,
    ) -> Result<(), ApiError> {
        if count > i64::from(limit) {
            metrics::counter!("auth_rate_limited_total", "limit" => label).increment(1);
            return Err(ApiError::RateLimited {
                retry_after_secs: u64::try_from(ttl_ms.max(0))
                    .unwrap_or(0)
                    .div_ceil(1000)
                    .max(1),
            });
        }
        Ok(())
    }

    /// Counts one request from `ip` against the shared budget; 429 beyond it.
    pub async fn check_ip(&self, ip: IpAddr) -> Result<(), ApiError> {
        let reply = self.run(&[&self.ip_key(ip)], IP_WINDOW).await?;
        let (count, ttl_ms) = pair(&reply, 0);
        Self::refuse_over(count, self.per_ip_per_minute, ttl_ms, "ip")
    }

    /// Keyed by a hash of the address, so Redis holds no email addresses.
    fn login_key(&self, account: &str) -> String {
        let digest = URL_SAFE_NO_PAD.encode(crate::secrets::token_hash(account));
        format!("{}login-failures:{digest}", self.prefix)
    }

    /// At login, in one round trip: counts the request against `ip`'s budget and checks the
    /// failed logins of `account`. 429 when either is used up; else the number of recent
    /// failures (so that a success clears them only when there are any).
    pub async fn check_login(&self, ip: IpAddr, account: &str) -> Result<u64, ApiError> {
        let reply = self
            .run(&[&self.ip_key(ip), &self.login_key(account)], IP_WINDOW)
            .await?;
        let (count, ttl_ms) = pair(&reply, 0);
        Self::refuse_over(count, self.per_ip_per_minute, ttl_ms, "ip")?;
        let (failures, ttl_ms) = pair(&reply, 2);
        Self::refuse_over(
            failures + 1,
            self.login_failure_limit,
            ttl_ms,
            "login_failures",
        )?;
        Ok(u64::try_from(failures).unwrap_or(0))
    }

    /// The failed logins of `account`: 429 when they are used up, else how many there are.
    pub async fn check_login_failures(&self, account: &str) -> Result<u64, ApiError> {
        let mut conn = self.pool.get().await?;
        let (count, ttl_ms): (Option<i64>, i64) = redis::pipe()
            .get(self.login_key(account))
            .cmd("PTTL")
            .arg(self.login_key(account))
            .query_async(&mut conn)
            .await?;
        let failures = count.unwrap_or(0);
        Self::refuse_over(
            failures + 1,
            self.login_failure_limit,
            ttl_ms,
            "login_failures",
        )?;
        Ok(u64::try_from(failures).unwrap_or(0))
    }

    /// Counts a failed login of `account`.
    pub async fn record_login_failure(&self, account: &str) -> Result<(), ApiError> {
        self.run(&[&self.login_key(account)], LOGIN_FAILURE_WINDOW)
            .await
            .map(drop)
    }

    /// Forgets the failed logins of `account` after a successful one.
    pub async fn clear_login_failures(&self, account: &str) -> Result<(), ApiError> {
        let mut conn = self.pool.get().await?;
        redis::cmd("DEL")
            .arg(self.login_key(account))
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }
}

/// The counter and milliseconds-to-reset at `at` in a `fixed_window.lua` reply (0 when absent).
fn pair(reply: &[i64], at: usize) -> (i64, i64) {
    (
        reply.get(at).copied().unwrap_or(0),
        reply.get(at + 1).copied().unwrap_or(0),
    )
}
