//! Writes to the index gathered into one round trip: [`Batch`], and [`Queue::batch`] and
//! [`Queue::send`] that make and send it.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::keys::Keys;
use crate::{Entry, Queue, QueueError, events_channel, job_updated_event};

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
    pub(crate) len: usize,
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

    /// Publishes `event` (a whole event, such as [`crate::job_updated_event_from_json`] makes)
    /// to the channel of `user_id`.
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

impl Queue {
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
}
