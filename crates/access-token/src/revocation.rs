//! The Redis-backed list of revoked sessions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use deadpool_redis::Pool;
use deadpool_redis::redis;
use domain::SessionId;
use tokio::sync::OnceCell;

/// How long an "is not revoked" answer is reused without asking Redis again.
const NOT_REVOKED_CACHE_TTL: Duration = Duration::from_secs(1);

/// Past this many cached answers, stale ones are dropped (and, if that is not enough, all).
const MAX_CACHED_SESSIONS: usize = 100_000;

/// Redis could not be reached or answered with an error.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    /// No connection could be taken from the pool.
    #[error("no Redis connection: {0}")]
    Pool(#[from] deadpool_redis::PoolError),
    /// A Redis command failed.
    #[error("Redis command failed: {0}")]
    Redis(#[from] redis::RedisError),
}

/// The revoked sessions, shared through Redis by the auth service (which writes) and the job
/// service (which reads, through [`crate::Verifier::with_revocations`]).
///
/// A revoked session is stored as `{prefix}revoked-session:{sid}` with a TTL of
/// `remember_for` (the access-token lifetime: after that, every token of the session has
/// expired anyway), and announced on the channel `{prefix}sessions-revoked`.
///
/// Reads are cached in-process: "not revoked" for one second, so a hot path makes at most
/// about one Redis round trip per session per second and a revocation takes effect everywhere
/// within about a second; "revoked" for `remember_for`. A revocation made through this
/// instance takes effect here at once. Cheap to clone (shared state).
#[derive(Clone)]
pub struct RevocationList {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    key_prefix: String,
    remember_for: Duration,
    cache: Mutex<HashMap<SessionId, CacheEntry>>,
}

/// A cached answer, or one being fetched (the cell is shared so concurrent checks of one
/// session make a single Redis request).
struct CacheEntry {
    asked_at: Instant,
    revoked: Arc<OnceCell<bool>>,
}

impl CacheEntry {
    fn is_fresh(&self, remember_for: Duration) -> bool {
        let age = self.asked_at.elapsed();
        match self.revoked.get() {
            Some(true) => age < remember_for,
            // Not revoked, or still being asked.
            Some(false) | None => age < NOT_REVOKED_CACHE_TTL,
        }
    }
}

impl std::fmt::Debug for RevocationList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationList")
            .field("key_prefix", &self.inner.key_prefix)
            .field("remember_for", &self.inner.remember_for)
            .finish_non_exhaustive()
    }
}

/// The channel on which revoked session ids are published (`{prefix}sessions-revoked`); the
/// job service's real-time gateway listens to it to close those sessions' sockets.
pub fn sessions_revoked_channel(key_prefix: &str) -> String {
    format!("{key_prefix}sessions-revoked")
}

impl RevocationList {
    /// A list stored in Redis under `key_prefix` (e.g. `"task-vault:"`), remembering each
    /// revocation for `remember_for`, which must be at least the access-token lifetime.
    pub fn new(pool: Pool, key_prefix: String, remember_for: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                key_prefix,
                remember_for,
                cache: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Revokes `sids`, in one pipeline: for each, `SET {prefix}revoked-session:{sid} 1 EX
    /// remember_for` and `PUBLISH {prefix}sessions-revoked {sid}`.
    pub async fn revoke(&self, sids: &[SessionId]) -> Result<(), RevocationError> {
        if sids.is_empty() {
            return Ok(());
        }
        let ttl = self.ttl_secs();
        let channel = sessions_revoked_channel(&self.inner.key_prefix);
        let mut pipe = redis::pipe();
        for sid in sids {
            pipe.cmd("SET")
                .arg(self.key(*sid))
                .arg(1)
                .arg("EX")
                .arg(ttl)
                .ignore()
                .cmd("PUBLISH")
                .arg(&channel)
                .arg(sid.to_string())
                .ignore();
        }
        let mut conn = self.inner.pool.get().await?;
        pipe.query_async::<()>(&mut conn).await?;

        let mut cache = self.cache();
        for sid in sids {
            cache.insert(
                *sid,
                CacheEntry {
                    asked_at: Instant::now(),
                    revoked: Arc::new(OnceCell::new_with(Some(true))),
                },
            );
        }
        Ok(())
    }

    /// Whether `sid` has been revoked (Redis `EXISTS`, behind the in-process cache described
    /// on [`RevocationList`]).
    pub async fn is_revoked(&self, sid: SessionId) -> Result<bool, RevocationError> {
        let cell = {
            let mut cache = self.cache();
            match cache.get(&sid) {
                Some(entry) if entry.is_fresh(self.inner.remember_for) => entry.revoked.clone(),
                _ => {
                    if cache.len() >= MAX_CACHED_SESSIONS {
                        let remember_for = self.inner.remember_for;
                        cache.retain(|_, entry| entry.is_fresh(remember_for));
                        if cache.len() >= MAX_CACHED_SESSIONS {
                            cache.clear();
                        }
                    }
                    let cell = Arc::new(OnceCell::new());
                    cache.insert(
                        sid,
                        CacheEntry {
                            asked_at: Instant::now(),
                            revoked: cell.clone(),
                        },
                    );
                    cell
                }
            }
        };
        let revoked = cell.get_or_try_init(|| self.exists(sid)).await?;
        Ok(*revoked)
    }

    async fn exists(&self, sid: SessionId) -> Result<bool, RevocationError> {
        let mut conn = self.inner.pool.get().await?;
        let count: i64 = redis::cmd("EXISTS")
            .arg(self.key(sid))
            .query_async(&mut conn)
            .await?;
        Ok(count > 0)
    }

    fn key(&self, sid: SessionId) -> String {
        format!("{}revoked-session:{sid}", self.inner.key_prefix)
    }

    /// `remember_for` in whole seconds, rounded up, at least 1 (`EX 0` is an error).
    fn ttl_secs(&self) -> u64 {
        let d = self.inner.remember_for;
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, CacheEntry>> {
        self.inner
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    use futures_util::StreamExt as _;

    use super::*;
    use crate::test_support::{redis_url, test_pool, test_prefix};

    type TestResult = Result<(), Box<dyn Error>>;

    /// Deletes the keys this test created (and nothing else).
    async fn cleanup(pool: &Pool, list: &RevocationList, sids: &[SessionId]) -> TestResult {
        let mut conn = pool.get().await?;
        for sid in sids {
            redis::cmd("DEL")
                .arg(list.key(*sid))
                .query_async::<()>(&mut conn)
                .await?;
        }
        Ok(())
    }

    #[tokio::test]
    async fn revocation_is_seen_within_a_second_despite_a_cached_answer() -> TestResult {
        let pool = test_pool()?;
        let prefix = test_prefix();
        let writer = RevocationList::new(pool.clone(), prefix.clone(), Duration::from_secs(60));
        let reader = RevocationList::new(pool.clone(), prefix, Duration::from_secs(60));
        let sid = SessionId::new();
        let other = SessionId::new();

        assert!(!reader.is_revoked(sid).await?);
        let cached_at = Instant::now();
        writer.revoke(&[sid]).await?;

        // The revoking instance knows at once.
        assert!(writer.is_revoked(sid).await?);
        // The reader still uses its cached "not revoked" answer for up to a second
        // (only checkable if this test was not descheduled for that long).
        let still_cached = reader.is_revoked(sid).await?;
        if cached_at.elapsed() < Duration::from_millis(900) {
            assert!(!still_cached, "the not-revoked answer should be cached");
        }

        tokio::time::sleep(Duration::from_millis(1100).saturating_sub(cached_at.elapsed())).await;
        assert!(reader.is_revoked(sid).await?);
        assert!(!reader.is_revoked(other).await?);

        // Stored with the TTL of the access tokens.
        let mut conn = pool.get().await?;
        let ttl: i64 = redis::cmd("TTL")
            .arg(writer.key(sid))
            .query_async(&mut conn)
            .await?;
        assert!((1..=60).contains(&ttl), "ttl {ttl}");

        cleanup(&pool, &writer, &[sid]).await
    }

    #[tokio::test]
    async fn revoke_publishes_each_session() -> TestResult {
        let pool = test_pool()?;
        let prefix = test_prefix();
        let list = RevocationList::new(pool.clone(), prefix.clone(), Duration::from_secs(30));
        let sids = [SessionId::new(), SessionId::new()];

        let client = redis::Client::open(redis_url())?;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub
            .subscribe(format!("{prefix}sessions-revoked"))
            .await?;
        list.revoke(&sids).await?;

        let mut messages = pubsub.on_message();
        let mut received = Vec::new();
        for _ in 0..sids.len() {
            let message = tokio::time::timeout(Duration::from_secs(5), messages.next())
                .await?
                .ok_or("pub/sub stream ended")?;
            received.push(message.get_payload::<String>()?);
        }
        let expected: Vec<String> = sids.iter().map(ToString::to_string).collect();
        assert_eq!(received, expected);

        let fresh = RevocationList::new(pool.clone(), prefix, Duration::from_secs(30));
        for sid in sids {
            assert!(fresh.is_revoked(sid).await?);
        }
        cleanup(&pool, &list, &sids).await
    }

    #[tokio::test]
    async fn revoking_nothing_is_a_no_op() -> TestResult {
        let list = RevocationList::new(test_pool()?, test_prefix(), Duration::from_secs(30));
        list.revoke(&[]).await?;
        Ok(())
    }

    #[tokio::test]
    async fn unreachable_redis_is_an_error() -> TestResult {
        let pool = deadpool_redis::Config::from_url("redis://127.0.0.1:1")
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))?;
        let list = RevocationList::new(pool, test_prefix(), Duration::from_secs(30));
        assert!(list.is_revoked(SessionId::new()).await.is_err());
        assert!(list.revoke(&[SessionId::new()]).await.is_err());
        Ok(())
    }
}
