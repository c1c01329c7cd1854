//! The Redis connection pool shared by a process.

use deadpool_redis::{Config, Pool, Runtime};

/// Builds a pool for `url`. Connections open lazily.
pub fn build(url: &str, max_size: usize) -> Result<Pool, crate::settings::SettingsError> {
    let mut config = Config::from_url(url);
    config.pool = Some(deadpool_redis::PoolConfig {
        max_size,
        timeouts: deadpool_redis::Timeouts {
            wait: Some(std::time::Duration::from_secs(5)),
            create: Some(std::time::Duration::from_secs(5)),
            recycle: Some(std::time::Duration::from_secs(5)),
        },
        ..Default::default()
    });
    config
        .create_pool(Some(Runtime::Tokio1))
        .map_err(|e| crate::settings::SettingsError::invalid("REDIS_URL", e))
}

/// Checks that Redis answers.
pub async fn ping(pool: &Pool) -> Result<(), String> {
    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}
