//! The Redis-backed list of revoked sessions.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use deadpool_redis::Pool;
use deadpool_redis::redis;
use domain::SessionId;
use moka::future::Cache;

/// How long an "is not revoked" answer is reused without asking Redis again.
const NOT_REVOKED_CACHE_TTL: Duration = Duration::from_secs(1);

/// Most answers cached; past this the least used are evicted.
const MAX_CACHED_SESSIONS: u64 = 100_000;

/// Redis could not be reached or answered with an error.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    /// No connection could be taken from the pool.
    #[error("no Redis connection: {0}")]
    Pool(#[from] deadpool_redis::PoolError),
    /// A Redis command failed.
    #[error("Redis command failed: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis had lost the list and the record could not be read to restore it.
    #[error("cannot read the revocation record: {0}")]
    Record(String),
    /// The Redis question that concurrent checks of the same session shared failed.
    #[error(transparent)]
    Shared(#[from] Arc<RevocationError>),
}

/// What [`RevocationRecord::revoked_within`] answers: each session revoked, with how long ago;
/// or why the record could not be read.
pub type RevokedSessions<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<(SessionId, Duration)>, String>> + Send + 'a>>;

/// Where revocations are recorded for good (PostgreSQL's `sessions.revoked_at`): read back
/// into Redis when Redis has lost them (flushed, or restarted without persistence).
pub trait RevocationRecord: Send + Sync + 'static {
    /// The sessions revoked less than `within` ago, each with how long ago.
    fn revoked_within(&self, within: Duration) -> RevokedSessions<'_>;
}

/// How long after a failed write a revocation is tried again, at first (doubling up to
/// [`RETRY_MAX_DELAY`]).
const RETRY_FIRST_DELAY: Duration = Duration::from_millis(500);
const RETRY_MAX_DELAY: Duration = Duration::from_secs(30);

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
    /// Cached answers: "revoked" for `remember_for`, "not revoked" for
    /// [`NOT_REVOKED_CACHE_TTL`]; concurrent checks of one session share one Redis request.
    cache: Cache<SessionId, bool>,
    record: OnceLock<Arc<dyn RevocationRecord>>,
    /// Held while the list is restored from the record, so one task does it.
    reseeding: tokio::sync::Mutex<()>,
}

/// How long each cached answer lives: a revocation as long as it matters, a "not revoked"
/// answer only briefly.
struct AnswerLifetime {
    remember_for: Duration,
}

impl moka::Expiry<SessionId, bool> for AnswerLifetime {
    fn expire_after_create(&self, _: &SessionId, revoked: &bool, _: Instant) -> Option<Duration> {
        Some(if *revoked {
            self.remember_for
        } else {
            NOT_REVOKED_CACHE_TTL
        })
    }

    fn expire_after_update(
        &self,
        sid: &SessionId,
        revoked: &bool,
        at: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(sid, revoked, at)
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
    /// revocation for `remember_for` (the access-token lifetime) plus the verifiers'
    /// [`crate::LEEWAY_SECS`]: as long as any token of the session can be accepted.
    pub fn new(pool: Pool, key_prefix: String, remember_for: Duration) -> Self {
        let remember_for = remember_for + Duration::from_secs(crate::LEEWAY_SECS);
        Self {
            inner: Arc::new(Inner {
                pool,
                key_prefix,
                remember_for,
                cache: Cache::builder()
                    .max_capacity(MAX_CACHED_SESSIONS)
                    .expire_after(AnswerLifetime { remember_for })
                    .build(),
                record: OnceLock::new(),
                reseeding: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Restores the list from `record` whenever Redis has lost it, so that a revoked session
    /// stays revoked through a Redis flush or restart. Redis holds a marker key
    /// (`{prefix}revocations-seeded`, no expiry) next to the list; a check that finds it gone
    /// first writes back every session the record revoked within the remembering time (one
    /// task at a time, once per loss).
    pub fn backed_by(self, record: impl RevocationRecord) -> Self {
        let _ = self.inner.record.set(Arc::new(record));
        self
    }

    /// [`RevocationList::revoke`], and, if Redis cannot take it now, again in the background
    /// (doubling waits up to 30 s) until it does or the revocation no longer matters: call this
    /// once the revocation is committed to the record, so a Redis hiccup cannot leave a
    /// revoked session usable. This instance treats the sessions as revoked at once.
    pub fn revoke_or_retry(&self, sids: &[SessionId]) -> impl Future<Output = ()> + Send + 'static {
        let list = self.clone();
        let sids = sids.to_vec();
        async move {
            let Err(error) = list.revoke(&sids).await else {
                return;
            };
            tracing::warn!(%error, count = sids.len(), "cannot store revocations in Redis; retrying in the background");
            list.remember_revoked(&sids).await;
            tokio::spawn(async move {
                let started = Instant::now();
                let mut delay = RETRY_FIRST_DELAY;
                while started.elapsed() < list.inner.remember_for {
                    tokio::time::sleep(delay).await;
                    match list.revoke(&sids).await {
                        Ok(()) => {
                            tracing::info!(count = sids.len(), "revocations stored after a retry");
                            return;
                        }
                        Err(error) => {
                            tracing::warn!(%error, "revocations still not stored; retrying")
                        }
                    }
                    delay = (delay * 2).min(RETRY_MAX_DELAY);
                }
            });
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
        self.remember_revoked(sids).await;
        Ok(())
    }

    /// Caches `sids` as revoked in this process.
    async fn remember_revoked(&self, sids: &[SessionId]) {
        for sid in sids {
            self.inner.cache.insert(*sid, true).await;
        }
    }

    /// Whether `sid` has been revoked (Redis `EXISTS`, behind the in-process cache described
    /// on [`RevocationList`]).
    pub async fn is_revoked(&self, sid: SessionId) -> Result<bool, RevocationError> {
        Ok(self.inner.cache.try_get_with(sid, self.exists(sid)).await?)
    }

    /// Asks Redis; when a record backs the list and Redis has lost the list, restores it
    /// first.
    async fn exists(&self, sid: SessionId) -> Result<bool, RevocationError> {
        let mut conn = self.inner.pool.get().await?;
        let (revoked, seeded): (i64, i64) = redis::pipe()
            .cmd("EXISTS")
            .arg(self.key(sid))
            .cmd("EXISTS")
            .arg(self.marker_key())
            .query_async(&mut conn)
            .await?;
        if revoked > 0 {
            return Ok(true);
        }
        if seeded > 0 || self.inner.record.get().is_none() {
            return Ok(false);
        }
        drop(conn);
        self.reseed().await?;
        let mut conn = self.inner.pool.get().await?;
        let revoked: i64 = redis::cmd("EXISTS")
            .arg(self.key(sid))
            .query_async(&mut conn)
            .await?;
        Ok(revoked > 0)
    }

    /// Writes back every revocation of the record that still matters, then the marker.
    async fn reseed(&self) -> Result<(), RevocationError> {
        let Some(record) = self.inner.record.get() else {
            return Ok(());
        };
        let _one_at_a_time = self.inner.reseeding.lock().await;
        let mut conn = self.inner.pool.get().await?;
        let seeded: i64 = redis::cmd("EXISTS")
            .arg(self.marker_key())
            .query_async(&mut conn)
            .await?;
        if seeded > 0 {
            return Ok(());
        }
        let remember_for = self.inner.remember_for;
        let revoked = record
            .revoked_within(remember_for)
            .await
            .map_err(RevocationError::Record)?;
        let mut pipe = redis::pipe();
        let mut restored = 0usize;
        for (sid, ago) in &revoked {
            let left = remember_for.saturating_sub(*ago);
            let millis = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
            if millis == 0 {
                continue;
            }
            pipe.cmd("SET")
                .arg(self.key(*sid))
                .arg(1)
                .arg("PX")
                .arg(millis)
                .ignore();
            restored += 1;
        }
        pipe.cmd("SET").arg(self.marker_key()).arg(1).ignore();
        pipe.query_async::<()>(&mut conn).await?;
        tracing::info!(
            restored,
            "revocation list restored in Redis from the record"
        );
        Ok(())
    }

    fn marker_key(&self) -> String {
        format!("{}revocations-seeded", self.inner.key_prefix)
    }

    fn key(&self, sid: SessionId) -> String {
        format!("{}revoked-session:{sid}", self.inner.key_prefix)
    }

    /// `remember_for` in whole seconds, rounded up, at least 1 (`EX 0` is an error).
    fn ttl_secs(&self) -> u64 {
        let d = self.inner.remember_for;
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
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

        // Stored with the TTL of the access tokens plus the verifiers' leeway.
        let mut conn = pool.get().await?;
        let ttl: i64 = redis::cmd("TTL")
            .arg(writer.key(sid))
            .query_async(&mut conn)
            .await?;
        assert!((56..=65).contains(&ttl), "ttl {ttl}");

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
    async fn a_revocation_redis_could_not_take_is_retried_until_it_can() -> TestResult {
        // A Redis of this test's own, started only after the revocation failed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let url = format!("redis://127.0.0.1:{port}");
        let pool = deadpool_redis::Config::from_url(url.as_str())
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))?;
        let list = RevocationList::new(pool, test_prefix(), Duration::from_secs(30));
        let sid = SessionId::new();
        list.revoke_or_retry(&[sid]).await;
        // This instance refuses the session at once, Redis or not.
        assert!(list.is_revoked(sid).await?);

        let mut server = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()?;
        let result = async {
            let client = redis::Client::open(url.as_str())?;
            // The retries come 0.5, 1.5, 3.5, 7.5 and 15.5 s after the failure: on a loaded
            // machine the server may be up only after the fourth.
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                    let exists: i64 = redis::cmd("EXISTS")
                        .arg(list.key(sid))
                        .query_async(&mut conn)
                        .await?;
                    if exists > 0 {
                        return Ok::<_, Box<dyn Error>>(());
                    }
                }
                assert!(Instant::now() < deadline, "the revocation was never stored");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        .await;
        let _ = server.kill();
        let _ = server.wait();
        result
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
