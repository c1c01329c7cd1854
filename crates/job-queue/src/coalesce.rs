//! Batches of concurrent callers merged into one round trip ([`Coalescer`]).

use crate::{Batch, Queue};

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
