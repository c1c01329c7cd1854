//! Password hashing on a pool of its own, at a lower CPU priority, so that a login storm
//! cannot starve every other route.
//!
//! bcrypt is deliberately slow (cost 12: about a third of a second of one core). Run on the
//! async runtime's threads or at normal priority, a few clients hammering login keep every core
//! hashing, and every other route queues behind them. Here hashes run on `HASH_CONCURRENCY`
//! threads of their own (default: one per core) whose scheduling priority is lowered by
//! `HASH_NICE` (Linux `nice` is per thread): they soak up whatever CPU is idle, yet a thread of
//! the HTTP server or the runtime that has work takes the CPU from them at once. At most that
//! many hashes run at once; a request waits for a slot at most `HASH_QUEUE_TIMEOUT_MS`, then
//! gets 503 `unavailable` with `Retry-After`.

use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, oneshot};

use crate::error::ApiError;

/// The name of the hashing threads (as `/proc/<pid>/task/<tid>/comm` shows it).
pub const THREAD_NAME: &str = "tv-hash";

type Work = Box<dyn FnOnce() + Send>;

/// Hashes and checks passwords on its own low-priority threads, a bounded number at once.
/// Cheap to clone; the threads end when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct Hasher {
    slots: Arc<Semaphore>,
    work: SyncSender<Work>,
    concurrency: usize,
    max_wait: Duration,
    cost: u32,
}

/// Why the hashing pool could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the password hashing threads: {0}")]
pub struct PoolError(#[from] std::io::Error);

impl Hasher {
    /// `concurrency` hashing threads (0: one per core) at `nice` (0 to 19; higher yields the
    /// CPU more readily), each request waiting at most `max_wait` for one of them; new hashes
    /// at bcrypt `cost`.
    pub fn new(
        concurrency: usize,
        nice: i32,
        max_wait: Duration,
        cost: u32,
    ) -> Result<Self, PoolError> {
        let concurrency = match concurrency {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        // A slot is taken before work is queued, so the queue never holds more than there are
        // threads and a queued hash starts at once.
        let (work, queue) = std::sync::mpsc::sync_channel::<Work>(concurrency);
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..concurrency {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(THREAD_NAME.to_owned())
                .spawn(move || hashing_thread(n, nice, &queue))?;
        }
        Ok(Self {
            slots: Arc::new(Semaphore::new(concurrency)),
            work,
            concurrency,
            max_wait,
            cost,
        })
    }

    /// How many hashes may run at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Runs `work` on a hashing thread once one is free; 503 when none frees up in time.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, bcrypt::BcryptError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = tokio::time::timeout(self.max_wait, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| {
                metrics::counter!("auth_hashing_refused_total").increment(1);
                ApiError::Busy
            })?
            .map_err(ApiError::internal)?;
        let (done, result) = oneshot::channel();
        self.work
            .try_send(Box::new(move || {
                let _ = done.send(work());
                drop(permit);
            }))
            .map_err(|e| ApiError::internal(format!("hashing queue: {e}")))?;
        result
            .await
            .map_err(|_| ApiError::internal("a hashing thread stopped"))?
            .map_err(ApiError::internal)
    }

    /// A bcrypt hash of `password`.
    pub async fn hash(&self, password: &str) -> Result<String, ApiError> {
        let (password, cost) = (password.to_owned(), self.cost);
        self.run(move || bcrypt::hash(password, cost)).await
    }

    /// Whether `password` matches the bcrypt `hash`.
    pub async fn verify(&self, password: &str, hash: &str) -> Result<bool, ApiError> {
        let (password, hash) = (password.to_owned(), hash.to_owned());
        self.run(move || bcrypt::verify(password, &hash)).await
    }
}

fn hashing_thread(n: usize, nice: i32, queue: &Mutex<Receiver<Work>>) {
    // Only this thread: on Linux a thread id names one thread for setpriority(2). Lowered
    // relative to the process's own priority, up to the lowest (19).
    let tid = Some(rustix::thread::gettid());
    if nice != 0
        && let Err(error) = rustix::process::getpriority_process(tid)
            .and_then(|current| rustix::process::setpriority_process(tid, (current + nice).min(19)))
    {
        tracing::warn!(%error, thread = n, nice, "cannot lower the hashing thread's priority");
    }
    loop {
        // The lock is held only while waiting for work, never while hashing.
        let next = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        match next {
            Ok(work) => work(),
            // Every `Hasher` is gone.
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn at_most_the_bound_hash_at_once_and_the_rest_wait_a_bounded_time() {
        let hasher = Hasher::new(2, 10, Duration::from_millis(300), 4).unwrap();
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..12 {
            let (hasher, running, peak) = (hasher.clone(), running.clone(), peak.clone());
            tasks.spawn(async move {
                hasher
                    .run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(100));
                        running.fetch_sub(1, Ordering::SeqCst);
                        Ok(())
                    })
                    .await
            });
        }
        let (mut done, mut busy) = (0, 0);
        while let Some(result) = tasks.join_next().await {
            match result.unwrap() {
                Ok(()) => done += 1,
                Err(ApiError::Busy) => busy += 1,
                Err(other) => panic!("{other}"),
            }
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        // 12 jobs of 100 ms on 2 slots take 600 ms; waiting 300 ms at most, some are refused.
        assert!(done >= 2 && busy >= 1, "done {done}, busy {busy}");
    }

    #[test]
    fn the_default_is_one_thread_per_core() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let hasher = Hasher::new(0, 10, Duration::from_secs(1), 4).unwrap();
        assert_eq!(hasher.concurrency(), cores);
    }

    /// The name and `nice` of the thread at `task` (`/proc/self/task/<tid>`), from its `stat`:
    /// the name (field 2) is in parentheses and may hold spaces; nice is field 19.
    fn nice_of(task: &std::path::Path) -> Option<(String, i64)> {
        let stat = std::fs::read_to_string(task.join("stat")).ok()?;
        let (open, close) = (stat.find('(')?, stat.rfind(')')?);
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        Some((
            stat[open + 1..close].to_owned(),
            fields.get(19 - 3)?.parse().ok()?,
        ))
    }

    /// The `nice` of each thread of this process named `name`.
    fn nice_of_threads(name: &str) -> Vec<i64> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| nice_of(&task.ok()?.path()))
            .filter(|(thread, _)| thread == name)
            .map(|(_, nice)| nice)
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashes_run_on_threads_of_lowered_priority_only() {
        let base = nice_of(std::path::Path::new("/proc/thread-self"))
            .unwrap()
            .1;
        let lowered = (base + 13).min(19);
        let hasher = Hasher::new(3, 13, Duration::from_secs(5), 4).unwrap();
        // Each thread lowers its priority as it starts.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let hashing = nice_of_threads(THREAD_NAME);
            // Other tests of this process may have pools of their own.
            if hashing.iter().filter(|&&n| n == lowered).count() >= 3 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{hashing:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
        // Every other thread (the runtime's, this one) keeps the process's priority.
        let others: Vec<_> = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| nice_of(&task.ok()?.path()))
            .filter(|(name, _)| name != THREAD_NAME)
            .collect();
        assert!(
            others.iter().any(|(name, _)| name == "tokio-rt-worker")
                && others.iter().all(|&(_, nice)| nice == base),
            "{others:?}"
        );
        let hash = hasher.hash("password").await.unwrap();
        assert!(hasher.verify("password", &hash).await.unwrap());
    }
}
