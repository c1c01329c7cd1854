//! Budgets kept in Redis over several fixed windows at once (e.g. "3 in 10 minutes and 10 a
//! day"), so that they hold across replicas and processes. One round trip per spend
//! (`budget.lua`).

use std::sync::Arc;
use std::time::Duration;

use redis::Script;

/// One window of a budget: at most `limit` spends per `length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Spends allowed per window.
    pub limit: u32,
    /// The window's length.
    pub length: Duration,
}

impl Window {
    /// `limit` spends per `length`.
    pub const fn new(limit: u32, length: Duration) -> Self {
        Self { limit, length }
    }
}

/// Redis could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    /// No connection could be taken from the pool.
    #[error("no Redis connection: {0}")]
    Pool(#[from] deadpool_redis::PoolError),
    /// A Redis command failed.
    #[error("Redis command failed: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Budgets stored under a key prefix. Cheap to clone.
#[derive(Clone)]
pub struct Budgets {
    pool: deadpool_redis::Pool,
    prefix: String,
    script: Arc<Script>,
}

impl std::fmt::Debug for Budgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budgets")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Budgets {
    /// Budgets whose keys start with `prefix` (the process's `REDIS_PREFIX`).
    pub fn new(pool: deadpool_redis::Pool, prefix: &str) -> Self {
        Self {
            pool,
            prefix: prefix.to_owned(),
            script: Arc::new(Script::new(include_str!("budget.lua"))),
        }
    }

    /// Spends one unit of the budget `name` (e.g. `email:<hash of the address>`) in every
    /// window. `Ok(None)` when spent; `Ok(Some(wait))` when a window is exhausted (nothing is
    /// spent), with the time until it resets.
    pub async fn spend(
        &self,
        name: &str,
        windows: &[Window],
    ) -> Result<Option<Duration>, BudgetError> {
        if windows.is_empty() {
            return Ok(None);
        }
        let mut invocation = self.script.prepare_invoke();
        for window in windows {
            let millis = u64::try_from(window.length.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            invocation
                .key(format!("{}budget:{name}:{millis}", self.prefix))
                .arg(window.limit)
                .arg(millis);
        }
        let mut conn = self.pool.get().await?;
        let wait_ms: u64 = invocation.invoke_async(&mut conn).await?;
        Ok((wait_ms > 0).then(|| Duration::from_millis(wait_ms)))
    }
}
