//! Password hashing on a bounded pool, so that a login storm cannot take every core.
//!
//! bcrypt is deliberately slow (cost 12: about a third of a second of one core). Run unbounded,
//! a few clients hammering login keep every core hashing, and every other route queues behind
//! them. Here at most `HASH_CONCURRENCY` hashes run at once (default: the cores minus one, at
//! least one), each on a blocking thread; a request waits for a slot at most
//! `HASH_QUEUE_TIMEOUT_MS`, then gets 503 `unavailable` with `Retry-After`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::error::ApiError;

/// Hashes and checks passwords, a bounded number at once. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Hasher {
    slots: Arc<Semaphore>,
    concurrency: usize,
    max_wait: Duration,
    cost: u32,
}

impl Hasher {
    /// At most `concurrency` hashes at once (0: the cores minus one, at least one), waiting at
    /// most `max_wait` for a slot; new hashes at bcrypt `cost`.
    pub fn new(concurrency: usize, max_wait: Duration, cost: u32) -> Self {
        let concurrency = match concurrency {
            0 => std::thread::available_parallelism()
                .map_or(1, |n| n.get().saturating_sub(1))
                .max(1),
            n => n,
        };
        Self {
            slots: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            max_wait,
            cost,
        }
    }

    /// How many hashes may run at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Runs `work` on a blocking thread once a slot is free; 503 when none frees up in time.
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
        let result = tokio::task::spawn_blocking(move || {
            let result = work();
            drop(permit);
            result
        })
        .await?;
        result.map_err(ApiError::internal)
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn at_most_the_bound_hash_at_once_and_the_rest_wait_a_bounded_time() {
        let hasher = Hasher::new(2, Duration::from_millis(300), 4);
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
    fn the_default_leaves_a_core_free() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let hasher = Hasher::new(0, Duration::from_secs(1), 4);
        assert_eq!(hasher.concurrency(), cores.saturating_sub(1).max(1));
    }
}
