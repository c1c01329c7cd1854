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

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_redis::Pool;
use redis::Script;
use redis::aio::MultiplexedConnection;
use uuid::Uuid;

pub use domain::job::JobType;

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

/// Priorities span −1000..=1000; `(MAX_PRIORITY - priority)` puts the highest first.
const MAX_PRIORITY: i64 = 1000;
/// Rounds fit in 42 bits (4.4 · 10^12 jobs per priority).
const ROUND_BITS: u32 = 42;

/// The ready-set score of a job in round `round` of its user: `(1000 - priority) · 2^42 +
/// round`. Lower pops first. The largest score (2000 · 2^42 + 2^42 ≈ 8.8 · 10^15) stays below
/// 2^53, so Redis's doubles hold it exactly. (The scripts compute it; this is its definition.)
pub fn ready_score(priority: i16, round: i64) -> i64 {
    (MAX_PRIORITY - i64::from(priority)) * (1_i64 << ROUND_BITS)
        + round.clamp(0, (1_i64 << ROUND_BITS) - 1)
}

/// The scheduled-set member of a job: `"<id>|<user id>|<priority>|<type>"` (its round is
/// assigned when it becomes due).
pub fn scheduled_member(id: Uuid, user_id: Uuid, priority: i16, job_type: JobType) -> String {
    format!("{id}|{user_id}|{priority}|{}", job_type.as_str())
}

/// The channel on which a user's job events are published.
pub fn events_channel(prefix: &str, user_id: Uuid) -> String {
    format!("{prefix}events:user:{user_id}")
}

/// The `jobUpdated` event for a job object.
pub fn job_updated_event(job: &serde_json::Value) -> String {
    serde_json::json!({"event": "jobUpdated", "data": {"job": job}}).to_string()
}

/// [`job_updated_event`] for a job object already serialized (`job_json` must be one JSON
/// object): the same text, without parsing or serializing the job again.
pub fn job_updated_event_from_json(job_json: &str) -> String {
    format!(r#"{{"data":{{"job":{job_json}}},"event":"jobUpdated"}}"#)
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

/// The Redis key names under one prefix.
#[derive(Debug, Clone)]
struct Keys {
    /// `{prefix}q:`: the scripts name the per-type keys after it.
    stem: String,
    scheduled: String,
    lease: String,
    leased: String,
    paused: String,
    swept: String,
    rounds: String,
    served: String,
}

impl Keys {
    fn ready(&self, job_type: JobType) -> String {
        format!("{}ready:{}", self.stem, job_type.as_str())
    }
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

struct Scripts {
    /// `fair.lua` + `enqueue.lua`, sent with `EVAL` inside pipelines.
    enqueue: String,
    /// `fair.lua` + `release.lua`, sent with `EVAL` inside pipelines.
    release: String,
    /// `publish.lua`: many events in one command, sent with `EVAL` inside pipelines.
    publish: &'static str,
    claim: Script,
    renew: Script,
    promote: Script,
    reap: Script,
    reconcile: Script,
    depth: Script,
    paused: Script,
    set_if_unchanged: Script,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Sets KEYS[1] to ARGV[2] if it holds ARGV[1]; returns 1 if it did.
const SET_IF_UNCHANGED: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    redis.call('SET', KEYS[1], ARGV[2]) return 1 end return 0";

/// What [`Queue::sweep_mark`] found: whether Redis kept everything since the last full sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepMark {
    run_id: String,
    /// The key's value when the sweep began (a recorded mark, or the placeholder this sweep
    /// wrote): the sweep's own mark replaces exactly that value, or nothing.
    value: String,
    /// The time recorded by the last sweep of this Redis process (`None`: no sweep recorded,
    /// or Redis restarted or was flushed since, so the index may have lost anything).
    pub since: Option<DateTime<Utc>>,
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
            keys: std::sync::Arc::new(Keys {
                stem: format!("{prefix}q:"),
                scheduled: format!("{prefix}q:scheduled"),
                lease: format!("{prefix}q:lease"),
                leased: format!("{prefix}q:leased"),
                paused: format!("{prefix}q:paused"),
                // Renamed when the index's layout changed (per-type ready sets), so that the
                // first sweep after an upgrade is a full one and re-indexes every queued job.
                swept: format!("{prefix}q:swept:v2"),
                rounds: format!("{prefix}q:rounds"),
                served: format!("{prefix}q:served"),
            }),
            timeouts,
            shared_conn: std::sync::Arc::default(),
            scripts: std::sync::Arc::new(Scripts {
                enqueue: fair(include_str!("scripts/enqueue.lua")),
                release: fair(include_str!("scripts/release.lua")),
                publish: include_str!("scripts/publish.lua"),
                claim: Script::new(&fair(include_str!("scripts/claim.lua"))),
                renew: Script::new(include_str!("scripts/renew.lua")),
                promote: Script::new(&fair(include_str!("scripts/promote.lua"))),
                reap: Script::new(&fair(include_str!("scripts/reap.lua"))),
                reconcile: Script::new(&fair(include_str!("scripts/reconcile.lua"))),
                depth: Script::new(&fair(include_str!("scripts/depth.lua"))),
                paused: Script::new(&fair(include_str!("scripts/paused.lua"))),
                set_if_unchanged: Script::new(SET_IF_UNCHANGED),
            }),
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

    /// A batch of writes sent in one round trip by [`Queue::send`].
    pub fn batch(&self) -> Batch {
        Batch {
            pipe: redis::pipe(),
            enqueues: Vec::new(),
            releases: Vec::new(),
            events: Vec::new(),
            wakes: false,
            keys: self.keys.clone(),
            prefix: self.prefix.clone(),
            len: 0,
        }
    }

    /// Sends `batch` (one round trip); an empty batch costs nothing. Its events go first, in
    /// one command however many there are, then its index changes: the enqueues in one script
    /// call, so a batch of a thousand jobs costs a handful of commands, not thousands.
    pub async fn send(&self, mut batch: Batch) -> Result<(), QueueError> {
        if batch.len == 0 {
            return Ok(());
        }
        match batch.events.len() {
            0 => {}
            1 => {
                if let Some((channel, message)) = batch.events.first() {
                    batch.pipe.publish(channel, message).ignore();
                }
            }
            _ => {
                let mut eval = redis::cmd("EVAL");
                eval.arg(self.scripts.publish).arg(0);
                for (channel, message) in &batch.events {
                    eval.arg(channel).arg(message);
                }
                batch.pipe.add_command(eval).ignore();
            }
        }
        if !batch.releases.is_empty() {
            let mut eval = redis::cmd("EVAL");
            eval.arg(&self.scripts.release)
                .arg(2)
                .arg(&self.keys.lease)
                .arg(&self.keys.leased)
                .arg(&self.keys.stem);
            for id in &batch.releases {
                eval.arg(id.to_string());
            }
            batch.pipe.add_command(eval).ignore();
        }
        if !batch.enqueues.is_empty() {
            // In submission order, so that one user's jobs get their rounds in that order.
            batch.enqueues.sort_by_key(|entry| entry.id);
            let mut eval = redis::cmd("EVAL");
            eval.arg(&self.scripts.enqueue)
                .arg(2)
                .arg(&self.keys.rounds)
                .arg(&self.keys.served)
                .arg(&self.keys.stem);
            for entry in &batch.enqueues {
                eval.arg(entry.id.to_string())
                    .arg(entry.user_id.to_string())
                    .arg(entry.priority)
                    .arg(entry.job_type.as_str());
            }
            batch.pipe.add_command(eval).ignore();
        }
        let timeout = if batch.len > 256 {
            self.timeouts.bulk
        } else {
            self.timeouts.command
        };
        let mut conn = self.conn(timeout).await?;
        batch
            .pipe
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.broken(e))?;
        Ok(())
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

    /// Whether Redis may have lost index entries since the last sweep: `since` is `None` when
    /// no sweep is recorded under this prefix (a flush, an eviction, a new Redis) or the one
    /// recorded was made by another Redis process (a restart, which may lose the last writes,
    /// or a failover). Then a full sweep is due; otherwise a sweep of what changed since
    /// `since` is enough.
    pub async fn sweep_mark(&self) -> Result<SweepMark, QueueError> {
        let mut conn = self.conn(self.timeouts.command).await?;
        let (info, mark): (String, Option<String>) = redis::pipe()
            .cmd("INFO")
            .arg("server")
            .get(&self.keys.swept)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.broken(e))?;
        let run_id = info
            .lines()
            .find_map(|line| line.strip_prefix("run_id:"))
            .unwrap_or_default()
            .trim()
            .to_owned();
        let since = mark.as_deref().and_then(|mark| {
            let (id, at) = mark.split_once(' ')?;
            if id != run_id {
                return None;
            }
            DateTime::parse_from_rfc3339(at)
                .ok()
                .map(|at| at.with_timezone(&Utc))
        });
        if let (Some(_), Some(value)) = (since, mark) {
            return Ok(SweepMark {
                run_id,
                value,
                since,
            });
        }
        // A full sweep begins: a placeholder (which reads as "no sweep recorded") marks it, so
        // that a flush during the sweep, which deletes the placeholder, keeps the sweep from
        // recording itself (see `set_sweep_mark`).
        let value = format!("{run_id} sweeping:{}", Uuid::new_v4().simple());
        redis::cmd("SET")
            .arg(&self.keys.swept)
            .arg(&value)
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.broken(e))?;
        Ok(SweepMark {
            run_id,
            value,
            since: None,
        })
    }

    /// Records a sweep of everything that changed before `at`, by the Redis process that
    /// `mark` was read from, if the mark is still the one the sweep began with: when Redis
    /// lost data during the sweep (a flush deletes the mark, a restart changes the process),
    /// entries the sweep restored may be gone again, so nothing is recorded and the next sweep
    /// is a full one. Returns whether the mark was recorded.
    pub async fn set_sweep_mark(
        &self,
        mark: &SweepMark,
        at: DateTime<Utc>,
    ) -> Result<bool, QueueError> {
        let mut conn = self.conn(self.timeouts.command).await?;
        let set: i64 = self
            .scripts
            .set_if_unchanged
            .key(&self.keys.swept)
            .arg(&mark.value)
            .arg(format!("{} {}", mark.run_id, at.to_rfc3339()))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.broken(e))?;
        Ok(set == 1)
    }

    /// Forgets the last sweep, so that the next one reads every unfinished job (as after a
    /// loss of Redis data): for a writer that removed index entries it could not record.
    pub async fn forget_sweep_mark(&self) -> Result<(), QueueError> {
        let mut conn = self.conn(self.timeouts.command).await?;
        redis::cmd("DEL")
            .arg(&self.keys.swept)
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.broken(e))
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

/// `script` with the fair-order functions it calls.
fn fair(script: &str) -> String {
    format!("{}\n{script}", include_str!("scripts/fair.lua"))
}

fn parse_ids(ids: &[String]) -> Vec<Uuid> {
    ids.iter()
        .filter_map(|id| Uuid::parse_str(id).ok())
        .collect()
}

/// Writes to the index, sent together by [`Queue::send`].
pub struct Batch {
    pipe: redis::Pipeline,
    /// Jobs for the ready sets: one fair-order script call for all of them.
    enqueues: Vec<Entry>,
    /// Leases to drop: one script call for all of them.
    releases: Vec<Uuid>,
    /// Events to publish, `(channel, message)` in order: one script call for all of them.
    events: Vec<(String, String)>,
    /// Whether a wake-up is already in the pipeline.
    wakes: bool,
    keys: std::sync::Arc<Keys>,
    prefix: String,
    len: usize,
}

impl Batch {
    /// Adds a pending job to the ready set, at its user's next turn.
    pub fn enqueue(&mut self, entry: Entry) -> &mut Self {
        self.len += 1;
        self.enqueues.push(entry);
        self
    }

    /// Adds a job to the scheduled set, due at `run_at` (and wakes the promoters, which sleep
    /// until the earliest due time they know of).
    pub fn schedule(&mut self, entry: Entry, run_at: DateTime<Utc>) -> &mut Self {
        if !self.wakes {
            self.wakes = true;
            self.pipe
                .publish(format!("{}ready:wake", self.keys.stem), "s")
                .ignore();
        }
        self.len += 1;
        self.pipe
            .zadd(
                &self.keys.scheduled,
                entry.scheduled_member(),
                run_at.timestamp_millis(),
            )
            .ignore();
        self
    }

    /// Removes a job from its ready set and the scheduled set (cancellation).
    pub fn dequeue(&mut self, entry: Entry) -> &mut Self {
        self.len += 1;
        self.pipe
            .zrem(self.keys.ready(entry.job_type), entry.id.to_string())
            .ignore();
        self.pipe
            .zrem(&self.keys.scheduled, entry.scheduled_member())
            .ignore();
        self
    }

    /// Drops the lease of a job whose attempt ended (and frees its slot in its type's
    /// concurrency, waking idle workers if that type had jobs waiting for one).
    pub fn release_lease(&mut self, id: Uuid) -> &mut Self {
        self.len += 1;
        self.releases.push(id);
        self
    }

    /// Publishes a `jobUpdated` event for `job` (the API job object) to its owner's channel.
    pub fn publish(&mut self, user_id: Uuid, job: &serde_json::Value) -> &mut Self {
        self.publish_event(user_id, job_updated_event(job))
    }

    /// Publishes `event` (a whole event, such as [`job_updated_event_from_json`] makes) to the
    /// channel of `user_id`.
    pub fn publish_event(&mut self, user_id: Uuid, event: String) -> &mut Self {
        self.len += 1;
        self.events
            .push((events_channel(&self.prefix, user_id), event));
        self
    }

    /// Wakes the workers' schedulers (a schedule was created or resumed: its first due time
    /// may be earlier than the one they sleep until).
    pub fn wake_schedulers(&mut self) -> &mut Self {
        self.len += 1;
        self.pipe
            .publish(format!("{}schedules:wake", self.prefix), "s")
            .ignore();
        self
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends the writes of `other`.
    pub fn append(&mut self, other: &Batch) {
        for cmd in other.pipe.cmd_iter() {
            self.pipe.add_command(cmd.clone()).ignore();
        }
        self.enqueues.extend_from_slice(&other.enqueues);
        self.releases.extend_from_slice(&other.releases);
        self.events.extend_from_slice(&other.events);
        self.len += other.len;
    }
}

/// Wake-ups of idle claimers: a task subscribed to [`Queue::wake_channel`] that notifies every
/// [`ReadySignal::notified`] future waiting when jobs become ready. It resubscribes after a
/// lost connection (with backoff) and then wakes everyone once, in case it missed something;
/// callers still bound their waits, as a safety net.
#[derive(Clone)]
pub struct ReadySignal {
    notify: std::sync::Arc<tokio::sync::Notify>,
}

impl ReadySignal {
    /// Subscribes to the wake channel of `queue` on the Redis at `redis_url`; the task ends
    /// when every clone of the signal is gone (checked on reconnects).
    pub fn start(redis_url: &str, queue: &Queue) -> Result<Self, QueueError> {
        Self::on_channel(redis_url, queue.wake_channel())
    }

    /// The same for any `channel` (such as [`Queue::schedules_channel`]).
    pub fn on_channel(redis_url: &str, channel: String) -> Result<Self, QueueError> {
        use futures_util::StreamExt as _;
        let client = redis::Client::open(redis_url)?;
        let notify = std::sync::Arc::new(tokio::sync::Notify::new());
        let weak = std::sync::Arc::downgrade(&notify);
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(100);
            loop {
                match client.get_async_pubsub().await {
                    Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                        Ok(()) => {
                            delay = Duration::from_millis(100);
                            let Some(notify) = weak.upgrade() else { return };
                            notify.notify_waiters();
                            drop(notify);
                            let mut messages = pubsub.on_message();
                            while messages.next().await.is_some() {
                                let Some(notify) = weak.upgrade() else { return };
                                notify.notify_waiters();
                            }
                            tracing::warn!("wake-up subscription lost; resubscribing");
                        }
                        Err(error) => tracing::warn!(%error, "cannot subscribe to wake-ups"),
                    },
                    Err(error) => tracing::warn!(%error, "no Redis connection for wake-ups"),
                }
                if weak.strong_count() == 0 {
                    return;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        });
        Ok(Self { notify })
    }

    /// A future that completes at the next wake-up. Call [`tokio::sync::futures::Notified::enable`]
    /// on it (pinned) before looking at the queue, so a wake-up in between is not missed.
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}

/// A failure of a coalesced send, shared by every batch that went in the same round trip.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct CoalescedError(String);

type Pending = (
    Batch,
    tokio::sync::oneshot::Sender<Result<(), CoalescedError>>,
);

/// Merges the batches sent by concurrent callers into one pipeline per round trip: under
/// load, many requests share one Redis write instead of one each. Each caller still waits
/// for its own writes to be done. The task runs on the runtime that calls [`Coalescer::start`]
/// (one per HTTP worker thread keeps everything on that thread).
#[derive(Clone)]
pub struct Coalescer {
    inner: CoalescerInner,
}

#[derive(Clone)]
enum CoalescerInner {
    Merging(tokio::sync::mpsc::UnboundedSender<Pending>),
    Direct(Queue),
}

/// Most writes merged into one round trip.
const COALESCE_MAX: usize = 2048;

impl Coalescer {
    /// Starts the merging task for `queue`; it ends when every clone of the coalescer is gone.
    pub fn start(queue: Queue) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Pending>();
        tokio::spawn(async move {
            while let Some((mut merged, first)) = rx.recv().await {
                let mut waiters = vec![first];
                while merged.len < COALESCE_MAX {
                    match rx.try_recv() {
                        Ok((batch, waiter)) => {
                            merged.append(&batch);
                            waiters.push(waiter);
                        }
                        Err(_) => break,
                    }
                }
                let result = queue
                    .send(merged)
                    .await
                    .map_err(|e| CoalescedError(e.to_string()));
                for waiter in waiters {
                    let _ = waiter.send(result.clone());
                }
            }
        });
        Self {
            inner: CoalescerInner::Merging(tx),
        }
    }

    /// A coalescer that does not merge: each batch is its own round trip.
    pub fn direct(queue: Queue) -> Self {
        Self {
            inner: CoalescerInner::Direct(queue),
        }
    }

    /// Sends `batch` with whatever else is waiting, and waits until it is written.
    pub async fn send(&self, batch: Batch) -> Result<(), CoalescedError> {
        if batch.is_empty() {
            return Ok(());
        }
        let tx = match &self.inner {
            CoalescerInner::Merging(tx) => tx,
            CoalescerInner::Direct(queue) => {
                return queue
                    .send(batch)
                    .await
                    .map_err(|e| CoalescedError(e.to_string()));
            }
        };
        let (done, wait) = tokio::sync::oneshot::channel();
        tx.send((batch, done))
            .map_err(|_| CoalescedError("the coalescer stopped".to_owned()))?;
        wait.await
            .map_err(|_| CoalescedError("the coalescer stopped".to_owned()))?
    }
}

#[cfg(test)]
mod tests {
    use super::ready_score;

    #[test]
    fn scores_order_by_priority_then_round_and_stay_exact_in_a_double() {
        assert!(ready_score(0, 1) < ready_score(0, 2));
        // A higher priority in a much later round still comes first.
        assert!(ready_score(1, 1 << 41) < ready_score(0, 0));
        // The largest score a job can get is exact in an f64 (Redis scores are doubles).
        let largest = ready_score(-1000, i64::MAX);
        assert!(largest < (1_i64 << 53));
        assert_eq!(largest as f64 as i64, largest);
    }
}
