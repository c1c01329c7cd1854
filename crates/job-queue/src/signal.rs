//! Wake-ups of idle claimers and schedulers through Redis pub/sub ([`ReadySignal`]).

use std::time::Duration;

use crate::{Queue, QueueError};

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
