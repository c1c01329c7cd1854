//! Task Vault's dispatch index: Redis sorted sets that say which job runs next.
//!
//! PostgreSQL is the record of every job; this crate only indexes them for dispatch, and
//! everything in it can be rebuilt from PostgreSQL ([`Queue::reconcile`]). Keys live under
//! `{prefix}q:` (the process's `REDIS_PREFIX`, `tv:` by default):
//!
//! | key | type | member | score |
//! |---|---|---|---|
//! | `{prefix}q:ready:{type}` | ZSET | job id | [`ready_score`]: priority first, then the user's round |
//! | `{prefix}q:scheduled` | ZSET | `"<id>\|<user id>\|<priority>\|<type>"` | `run_at` (ms since the epoch) |
//! | `{prefix}q:rounds` | HASH | `"<priority>:<user id>"` | the round of the user's last job queued at that priority |
//! | `{prefix}q:served` | HASH | `1000 - priority` | the highest round claimed at that priority |
//! | `{prefix}q:lease` | ZSET | job id | lease deadline (ms since the epoch, Redis's clock) |
//! | `{prefix}q:leased` | HASH | job id | (value: the job's type, for the leases in `q:lease`) |
//! | `{prefix}q:running:{type}` | ZSET | job id | lease deadline: the type's running jobs |
//! | `{prefix}q:starts:{type}` | ZSET | job id | start time (ms): the type's starts in the last second |
//! | `{prefix}q:blocked:{type}` | string | | set while ready jobs of the type wait for a free slot |
//! | `{prefix}q:paused` | HASH | `_v`, then one field per paused type | (mirror of PostgreSQL's paused types, `_v` its version) |
//! | `{prefix}q:swept:v2` | string | | `"<Redis run_id> <RFC 3339 time>"`: see [`Queue::sweep_mark`] |
//!
//! Fair order: at equal priority, users are served in turn. A job entering the ready set gets
//! the next round of its user at its priority, but never a round behind the one being claimed
//! there (`scripts/fair.lua`); its score is `(1000 - priority) · 2^42 + round`. So a user who
//! queues 10,000 jobs holds rounds `r … r + 9999` and another user's job queued a moment later
//! gets round `r`: it runs within the next claim. A higher priority still always runs first,
//! and one user's jobs keep their order (their rounds grow; within a round, UUID v7 ids sort by
//! creation). Rounds are assigned in Redis when a job becomes ready (submit, promotion, retry,
//! reconcile), so losing Redis loses nothing that PostgreSQL cannot rebuild: the reconciler
//! re-adds pending jobs in fair order from the rows.
//!
//! Idle workers do not poll: every script that makes a type's ready set non-empty publishes on
//! `{prefix}q:ready:wake`, and [`ReadySignal`] turns that into a wake-up of the claimers. So
//! does freeing a slot of a type that had ready jobs waiting for one, and a change of the
//! paused types.
//!
//! Claims are one Lua script (`scripts/claim.lua`): it looks at the head of every type's ready
//! set, skips the types that may not start now (paused, at their concurrency limit, or out of
//! their rate: see [`TypeLimits`]), takes a batch from the rest in the order one merged set
//! would have (score, then member), and leases it, atomically, so two workers never take the
//! same job and a limit is never overrun by claims racing on different workers. A type's
//! running count is the number of live leases in `q:running:{type}` (renewed with the lease,
//! removed when the lease is released or reaped), so a worker that dies cannot leak a slot:
//! its leases lapse. Rates are a sliding one-second window of start times (`q:starts:{type}`). Every deadline and every "now"
//! (leases, expiry, promotion) is taken from Redis's own clock (`TIME`) inside the scripts, so
//! a worker whose clock is wrong cannot reap live jobs or promote early. Equal scores (same priority, same
//! millisecond) fall back to member order, and UUID v7 strings sort by creation time, so FIFO
//! holds within a priority.
//!
//! Events: every status or progress change is published as
//! `{"event": "jobUpdated", "data": {"job": {...}}}` on the channel
//! `{prefix}events:user:{user_id}` ([`events_channel`]). A consumer that wants every user's
//! events (the admin room) subscribes to the pattern `{prefix}events:user:*`; publishing once
//! per change instead of also on a global channel halves the publish cost on the hot path.

mod batch;
mod coalesce;
mod events;
mod keys;
mod scripts;
mod signal;
mod sweep;

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_redis::Pool;
use redis::aio::MultiplexedConnection;
use uuid::Uuid;

pub use batch::Batch;
pub use coalesce::{CoalescedError, Coalescer};
pub use domain::job::JobType;
pub use events::{events_channel, job_updated_event, job_updated_event_from_json};
use keys::Keys;
pub use keys::{ready_score, scheduled_member};
use scripts::Scripts;
pub use signal::ReadySignal;
pub use sweep::SweepMark;

/// What can go wrong talking to Redis.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// No connection could be had from the pool.
    #[error("no Redis connection: {0}")]
    Pool(#[from] deadpool_redis::PoolError),
    /// A command or script failed, or its answer did not come within its timeout (then Redis
    /// may still have applied it).
    #[error("Redis command failed: {0}")]
    Redis(#[from] redis::RedisError),
}

/// How long the index waits for Redis's answers. Set explicitly rather than left to the
/// client's default (500 ms), which is too short for a big reconcile script and needlessly
/// long for nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Claims, renewals, batches of writes and other small commands.
    pub command: Duration,
    /// Reconcile scripts (thousands of entries per call).
    pub bulk: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            command: Duration::from_secs(2),
            bulk: Duration::from_secs(30),
        }
    }
}

/// What the dispatch index needs to know about a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The job (UUID v7: ids sort by creation).
    pub id: Uuid,
    /// Its owner, whose turn it waits for.
    pub user_id: Uuid,
    /// Its priority.
    pub priority: i16,
    /// Its type (each type has its own ready set, for pauses and per-type limits).
    pub job_type: JobType,
}

impl Entry {
    fn scheduled_member(&self) -> String {
        scheduled_member(self.id, self.user_id, self.priority, self.job_type)
    }

    fn owner_priority_and_type(&self) -> String {
        format!(
            "{}|{}|{}",
            self.user_id,
            self.priority,
            self.job_type.as_str()
        )
    }
}

/// Per-type limits that a claim honours, across every worker together (the counts live in
/// Redis). Types not named are unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeLimits {
    /// At most this many jobs of the type run at once (live leases).
    pub concurrency: std::collections::HashMap<JobType, u32>,
    /// At most this many jobs of the type start in any one-second window.
    pub rate_per_sec: std::collections::HashMap<JobType, u32>,
}

impl TypeLimits {
    /// Whether no type is limited.
    pub fn is_empty(&self) -> bool {
        self.concurrency.is_empty() && self.rate_per_sec.is_empty()
    }
}

/// What [`Queue::claim_within`] took.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claim {
    /// The jobs claimed (and leased), best first.
    pub ids: Vec<Uuid>,
    /// When a rate-limited type has ready jobs but no start left in the current window: how
    /// long until it has one. An idle claimer sleeps at most this long.
    pub retry_in: Option<Duration>,
    /// True when Redis has no mirror of the paused types (flushed, or never written): nothing
    /// was claimed; write it with [`Queue::mirror_paused`] from PostgreSQL and claim again.
    pub paused_unknown: bool,
}

/// A job for [`Queue::reconcile`], as PostgreSQL has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// `pending`: belongs in its type's ready set (unless leased).
    Pending(Entry),
    /// `scheduled`: belongs in the scheduled set at `run_at`.
    Scheduled(Entry, DateTime<Utc>),
    /// `running`: belongs in the lease set and its type's running set.
    Running(Uuid, JobType),
}

/// Sizes of the three sets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depth {
    /// Ready to run (every type's ready set).
    pub ready: u64,
    /// Waiting for their time.
    pub scheduled: u64,
    /// Claimed and leased.
    pub running: u64,
}

/// The dispatch index. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    pool: Pool,
    prefix: String,
    keys: std::sync::Arc<Keys>,
    scripts: std::sync::Arc<Scripts>,
    timeouts: Timeouts,
    shared_conn: std::sync::Arc<std::sync::Mutex<Option<MultiplexedConnection>>>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Queue {
    /// The index under `prefix` (e.g. `"tv:"`; queue keys are `{prefix}q:*`), with the default
    /// [`Timeouts`].
    pub fn new(pool: Pool, prefix: &str) -> Self {
        Self::with_timeouts(pool, prefix, Timeouts::default())
    }

    /// The index under `prefix` with explicit timeouts.
    pub fn with_timeouts(pool: Pool, prefix: &str, timeouts: Timeouts) -> Self {
        Self {
            pool,
            prefix: prefix.to_owned(),
            keys: std::sync::Arc::new(Keys::new(prefix)),
            timeouts,
            shared_conn: std::sync::Arc::default(),
            scripts: std::sync::Arc::new(Scripts::load()),
        }
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The channel on which the ready sets announce that they stopped being empty (and
    /// limited or paused types that they may start again).
    pub fn wake_channel(&self) -> String {
        format!("{}ready:wake", self.keys.stem)
    }

    /// The ready-set key of `job_type` (for tests and tools that look inside the index).
    pub fn ready_key(&self, job_type: JobType) -> String {
        self.keys.ready(job_type)
    }

    /// The channel on which schedule changes wake the workers' schedulers (see
    /// [`Batch::wake_schedulers`]).
    pub fn schedules_channel(&self) -> String {
        format!("{}schedules:wake", self.prefix)
    }

    /// A handle on the shared multiplexed connection that waits at most `timeout` for each
    /// answer. The connection is taken from the pool once and kept (it multiplexes every
    /// caller's commands), rather than checked out per command: a checkout pings the server
    /// first, which doubled the round trips of every claim and cost an idle worker CPU.
    async fn conn(&self, timeout: Duration) -> Result<MultiplexedConnection, QueueError> {
        let cached = self
            .shared_conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut conn = match cached {
            Some(conn) => conn,
            None => {
                let conn: MultiplexedConnection = (*self.pool.get().await?).clone();
                *self
                    .shared_conn
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(conn.clone());
                conn
            }
        };
        conn.set_response_timeout(timeout);
        Ok(conn)
    }

    /// Forgets the shared connection when `error` says it is broken (the next command takes a
    /// fresh one from the pool); a timed-out answer leaves it usable.
    fn broken(&self, error: redis::RedisError) -> QueueError {
        if error.is_io_error() || error.is_connection_dropped() || error.is_connection_refusal() {
            self.shared_conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
        }
        QueueError::Redis(error)
    }

    /// Pops up to `max` ready jobs of any type, best first, and leases them for `lease_ms` (by
    /// Redis's clock), with no per-type limit and whatever is paused: for tools and tests.
    /// Workers use [`Queue::claim_within`].
    pub async fn claim(&self, max: usize, lease_ms: i64) -> Result<Vec<Uuid>, QueueError> {
        Ok(self
            .claim_script(max, lease_ms, &TypeLimits::default(), false)
            .await?
            .ids)
    }

    /// Claims up to `max` ready jobs, best first among the types that may start now: not
    /// paused (the mirror of PostgreSQL's paused types), below their concurrency limit and
    /// within their rate (`limits`, counted across every worker), and leases them for
    /// `lease_ms` (by Redis's clock). One script, one round trip.
    ///
    /// An error may come after Redis applied the claim (an answer that timed out): the popped
    /// jobs are then leased to nobody, and taken back when the lease expires (see
    /// [`Queue::take_expired`]).
    pub async fn claim_within(
        &self,
        max: usize,
        lease_ms: i64,
        limits: &TypeLimits,
    ) -> Result<Claim, QueueError> {
        self.claim_script(max, lease_ms, limits, true).await
    }

    async fn claim_script(
        &self,
        max: usize,
        lease_ms: i64,
        limits: &TypeLimits,
        honour_pause: bool,
    ) -> Result<Claim, QueueError> {
        let mut invocation = self.scripts.claim.prepare_invoke();
        invocation
            .key(&self.keys.lease)
            .key(&self.keys.served)
            .key(&self.keys.leased)
            .key(&self.keys.paused)
            .arg(max)
            .arg(lease_ms)
            .arg(&self.keys.stem)
            .arg(if honour_pause { "1" } else { "0" });
        for job_type in JobType::ALL {
            let concurrency = limits.concurrency.get(&job_type).copied().unwrap_or(0);
            let rate = limits.rate_per_sec.get(&job_type).copied().unwrap_or(0);
            invocation.arg(job_type.as_str()).arg(concurrency).arg(rate);
        }
        let mut conn = self.conn(self.timeouts.command).await?;
        let answer: Vec<String> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.broken(e))?;
        let Some((hint, ids)) = answer.split_first() else {
            return Ok(Claim::default());
        };
        if hint == "sync" {
            return Ok(Claim {
                paused_unknown: true,
                ..Claim::default()
            });
        }
        Ok(Claim {
            ids: parse_ids(ids),
            retry_in: hint.parse::<u64>().ok().map(Duration::from_millis),
            paused_unknown: false,
        })
    }

    /// Writes Redis's mirror of the paused types (`version` is PostgreSQL's, which grows with
    /// every change): a mirror already at `version` or newer is kept, so a slow writer never
    /// undoes a newer change. Wakes idle workers. Returns whether it was written.
    pub async fn mirror_paused(
        &self,
        version: i64,
        paused: &[JobType],
    ) -> Result<bool, QueueError> {
        let mut invocation = self.scripts.paused.prepare_invoke();
        invocation
            .key(&self.keys.paused)
            .arg(version)
            .arg(&self.keys.stem);
        for job_type in paused {
            invocation.arg(job_type.as_str());
        }
        let mut conn = self.conn(self.timeouts.command).await?;
        let written: i64 = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.broken(e))?;
        Ok(written == 1)
    }

    /// Moves up to `max` scheduled jobs that are due (by Redis's clock) to the ready set;
    /// returns their ids and how long until the next scheduled job is due (`None`: none is
    /// scheduled).
    pub async fn promote_due(
        &self,
        max: usize,
    ) -> Result<(Vec<Uuid>, Option<Duration>), QueueError> {
        let mut conn = self.conn(self.timeouts.command).await?;
        let ids: Vec<String> = self
            .scripts
            .promote
            .key(&self.keys.scheduled)
            .key(&self.keys.rounds)
            .key(&self.keys.served)
            .arg(max)
            .arg(&self.keys.stem)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.broken(e))?;
        let next = ids
            .first()
            .and_then(|ms| ms.parse::<u64>().ok())
            .map(Duration::from_millis);
        Ok((parse_ids(ids.get(1..).unwrap_or_default()), next))
    }

    /// Extends the leases of `jobs` (id and type) to `lease_ms` from now by Redis's clock
    /// (re-creating any that Redis lost), and their entries in their types' running sets.
    pub async fn renew(&self, jobs: &[(Uuid, JobType)], lease_ms: i64) -> Result<(), QueueError> {
        if jobs.is_empty() {
            return Ok(());
        }
        let mut invocation = self.scripts.renew.prepare_invoke();
        invocation
            .key(&self.keys.lease)
            .key(&self.keys.leased)
            .arg(lease_ms)
            .arg(&self.keys.stem);
        for (id, job_type) in jobs {
            invocation.arg(id.to_string()).arg(job_type.as_str());
        }
        let mut conn = self.conn(self.timeouts.command).await?;
        invocation
            .invoke_async::<i64>(&mut conn)
            .await
            .map_err(|e| self.broken(e))?;
        Ok(())
    }

    /// Removes and returns up to `max` leases that have expired (by Redis's clock).
    pub async fn take_expired(&self, max: usize) -> Result<Vec<Uuid>, QueueError> {
        let mut conn = self.conn(self.timeouts.command).await?;
        let ids: Vec<String> = self
            .scripts
            .reap
            .key(&self.keys.lease)
            .key(&self.keys.leased)
            .arg(max)
            .arg(&self.keys.stem)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.broken(e))?;
        Ok(parse_ids(&ids))
    }

    /// The jobs among `jobs` that Redis has in none of its sets (read only).
    pub async fn missing(&self, jobs: &[Recorded]) -> Result<Vec<Uuid>, QueueError> {
        self.reconcile_script(jobs, "check", 0).await
    }

    /// Re-adds the jobs among `jobs` that Redis has in none of its sets; running jobs get a
    /// lease of `lease_ms` (by Redis's clock). Returns the ids added.
    ///
    /// `jobs` should be fresh from PostgreSQL: a row read before its job was claimed and
    /// finished would be queued again (harmlessly: the claim's conditional update skips it).
    /// [`Queue::missing`] on a long scan, then this on a re-read of the few missing rows,
    /// keeps that window to a moment.
    pub async fn reconcile(
        &self,
        jobs: &[Recorded],
        lease_ms: i64,
    ) -> Result<Vec<Uuid>, QueueError> {
        self.reconcile_script(jobs, "add", lease_ms).await
    }

    async fn reconcile_script(
        &self,
        jobs: &[Recorded],
        mode: &str,
        lease_ms: i64,
    ) -> Result<Vec<Uuid>, QueueError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.scripts.reconcile.prepare_invoke();
        invocation
            .key(&self.keys.scheduled)
            .key(&self.keys.lease)
            .key(&self.keys.rounds)
            .key(&self.keys.served)
            .key(&self.keys.leased);
        invocation.arg(lease_ms).arg(mode).arg(&self.keys.stem);
        for job in jobs {
            match job {
                Recorded::Pending(entry) => {
                    invocation
                        .arg("r")
                        .arg(entry.id.to_string())
                        .arg(entry.owner_priority_and_type());
                }
                Recorded::Scheduled(entry, run_at) => {
                    invocation
                        .arg("s")
                        .arg(entry.scheduled_member())
                        .arg(run_at.timestamp_millis());
                }
                Recorded::Running(id, job_type) => {
                    invocation
                        .arg("l")
                        .arg(id.to_string())
                        .arg(job_type.as_str());
                }
            }
        }
        let mut conn = self.conn(self.timeouts.bulk).await?;
        let ids: Vec<String> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.broken(e))?;
        Ok(parse_ids(&ids))
    }

    /// Takes the lock `name` for `ttl_ms` if nobody holds it (`SET NX PX`); the lock simply
    /// expires, so a holder that dies cannot wedge the others.
    pub async fn try_lock(&self, name: &str, ttl_ms: u64) -> Result<bool, QueueError> {
        let mut conn = self.conn(self.timeouts.command).await?;
        let set: Option<String> = redis::cmd("SET")
            .arg(format!("{}q:lock:{name}", self.prefix))
            .arg(Uuid::new_v4().to_string())
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms.max(1))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.broken(e))?;
        Ok(set.is_some())
    }

    /// The sizes of the ready (all types together), scheduled and lease sets.
    pub async fn depth(&self) -> Result<Depth, QueueError> {
        let mut conn = self.conn(self.timeouts.command).await?;
        let mut invocation = self.scripts.depth.prepare_invoke();
        invocation
            .key(&self.keys.scheduled)
            .key(&self.keys.lease)
            .arg(&self.keys.stem);
        for job_type in JobType::ALL {
            invocation.arg(job_type.as_str());
        }
        let (ready, scheduled, running): (u64, u64, u64) = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.broken(e))?;
        Ok(Depth {
            ready,
            scheduled,
            running,
        })
    }
}

fn parse_ids(ids: &[String]) -> Vec<Uuid> {
    ids.iter()
        .filter_map(|id| Uuid::parse_str(id).ok())
        .collect()
}
