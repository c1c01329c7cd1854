//! Abuse limits kept in Redis, so they hold across replicas.
//!
//! - One budget of `AUTH_RATE_LIMIT_PER_MINUTE` requests per client IP, shared by the sign-in
//!   routes (fixed one-minute window, one round trip per check: `fixed_window.lua`).
//! - `LOGIN_FAILURE_LIMIT` failed logins per account per 15 minutes.

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

    async fn hit(&self, key: &str, window: Duration) -> Result<(u64, u64), ApiError> {
        let mut conn = self.pool.get().await?;
        let (count, ttl_ms): (u64, i64) = self
            .script
            .key(key)
            .arg(u64::try_from(window.as_millis()).unwrap_or(u64::MAX))
            .invoke_async(&mut conn)
            .await?;
        Ok((count, ttl_ms.max(0) as u64))
    }

    /// Counts one request from `ip` against the shared budget; 429 beyond it.
    pub async fn check_ip(&self, ip: IpAddr) -> Result<(), ApiError> {
        let key = format!("{}ratelimit:auth:{ip}", self.prefix);
        let (count, ttl_ms) = self.hit(&key, IP_WINDOW).await?;
        if count > u64::from(self.per_ip_per_minute) {
            metrics::counter!("auth_rate_limited_total", "limit" => "ip").increment(1);
            return Err(ApiError::RateLimited {
                retry_after_secs: ttl_ms.div_ceil(1000).max(1),
            });
        }
        Ok(())
    }

    /// Keyed by a hash of the address, so Redis holds no email addresses.
    fn login_key(&self, account: &str) -> String {
        let digest = URL_SAFE_NO_PAD.encode(crate::secrets::token_hash(account));
        format!("{}login-failures:{digest}", self.prefix)
    }

    /// 429 when `account` has used up its failed logins.
    pub async fn check_login_failures(&self, account: &str) -> Result<(), ApiError> {
        let mut conn = self.pool.get().await?;
        let (count, ttl_ms): (Option<u64>, i64) = redis::pipe()
            .get(self.login_key(account))
            .cmd("PTTL")
            .arg(self.login_key(account))
            .query_async(&mut conn)
            .await?;
        if count.unwrap_or(0) >= u64::from(self.login_failure_limit) {
            metrics::counter!("auth_rate_limited_total", "limit" => "login_failures").increment(1);
            let retry_after_secs = (ttl_ms.max(0) as u64).div_ceil(1000).max(1);
            return Err(ApiError::RateLimited { retry_after_secs });
        }
        Ok(())
    }

    /// Counts a failed login of `account`.
    pub async fn record_login_failure(&self, account: &str) -> Result<(), ApiError> {
        self.hit(&self.login_key(account), LOGIN_FAILURE_WINDOW)
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
