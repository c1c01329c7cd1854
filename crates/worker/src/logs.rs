//! Job logs: lines that handlers write through [`crate::handlers::JobContext::log`].
//!
//! Lines are never written one statement each. Every attempt of this worker appends to one
//! [`LogBuffer`]; its contents are written in one statement ([`persistence::job_logs::append`])
//! by whichever comes first: the flusher ([`flush_loop`], [`FLUSH_INTERVAL`] after a line is
//! buffered, or as soon as [`FLUSH_AT`] lines wait; asleep while none is), or the batcher about
//! to record attempt outcomes, so that a job's lines are stored before the job is seen to have
//! finished.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use persistence::PgPool;
use persistence::job_logs::NewLine;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How often buffered lines are written.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(250);
/// Buffered lines that trigger a write before the timer.
pub const FLUSH_AT: usize = 500;
/// Most lines buffered (PostgreSQL slow or down); beyond it the oldest are dropped.
pub const MAX_BUFFERED: usize = 20_000;
/// Longest message kept, in bytes (longer ones are cut at a character boundary).
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// The level of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Detail.
    Debug,
    /// Normal progress.
    Info,
    /// Something odd, not fatal.
    Warn,
    /// A failure.
    Error,
}

impl LogLevel {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// The lines of every attempt of this worker, waiting to be written.
#[derive(Default)]
pub struct LogBuffer {
    lines: Mutex<VecDeque<NewLine>>,
    /// One write at a time, so that a write that must follow the lines buffered so far (the
    /// batcher's) waits for a timer write in progress.
    writing: tokio::sync::Mutex<()>,
    /// Signalled by every push (a stored permit when nobody waits), so an idle worker's
    /// flusher sleeps instead of waking on a timer.
    pushed: Notify,
    full: Notify,
}

impl LogBuffer {
    /// Buffers a line of attempt `attempt` of job `job_id` (never blocks, never fails).
    pub fn push(&self, job_id: Uuid, attempt: i32, level: LogLevel, message: impl Into<String>) {
        let mut message = message.into();
        if message.len() > MAX_MESSAGE_BYTES {
            let mut end = MAX_MESSAGE_BYTES;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        let line = NewLine {
            job_id,
            at: Utc::now(),
            attempt,
            level: level.as_str(),
            message,
        };
        let len = {
            let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
            if lines.len() >= MAX_BUFFERED {
                lines.pop_front();
                metrics::counter!("worker_job_log_lines_dropped_total").increment(1);
            }
            lines.push_back(line);
            lines.len()
        };
        self.pushed.notify_one();
        if len >= FLUSH_AT {
            self.full.notify_one();
        }
    }

    /// Writes every buffered line (one statement). On a database failure the lines go back to
    /// the front of the buffer for the next write.
    pub async fn flush(&self, pg: &PgPool) {
        let _writing = self.writing.lock().await;
        let lines: Vec<NewLine> = {
            let mut buffered = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
            buffered.drain(..).collect()
        };
        if lines.is_empty() {
            return;
        }
        let written = async {
            let mut conn = pg.get().await?;
            persistence::job_logs::append(&mut conn, &lines).await
        }
        .await;
        match written {
            Ok(n) => metrics::counter!("worker_job_log_lines_total").increment(n as u64),
            Err(error) => {
                tracing::warn!(%error, count = lines.len(), "writing job logs failed; kept for the next write");
                let mut buffered = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
                for line in lines.into_iter().rev() {
                    if buffered.len() >= MAX_BUFFERED {
                        metrics::counter!("worker_job_log_lines_dropped_total").increment(1);
                        continue;
                    }
                    buffered.push_front(line);
                }
            }
        }
    }

    /// Lines waiting (test aid).
    pub fn len(&self) -> usize {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Writes buffered lines at most [`FLUSH_INTERVAL`] after the first of them was pushed (sooner
/// when [`FLUSH_AT`] wait), until `stop` fires; then writes what is left. Sleeps while no line
/// is pushed.
pub async fn flush_loop(buffer: std::sync::Arc<LogBuffer>, pg: PgPool, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = buffer.pushed.notified() => {}
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = buffer.full.notified() => {}
            () = tokio::time::sleep(FLUSH_INTERVAL) => {}
        }
        buffer.flush(&pg).await;
    }
    buffer.flush(&pg).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        let buffer = LogBuffer::default();
        buffer.push(
            Uuid::nil(),
            1,
            LogLevel::Info,
            "é".repeat(MAX_MESSAGE_BYTES),
        );
        let lines = buffer.lines.lock().unwrap_or_else(PoisonError::into_inner);
        let message = lines.front().map(|l| l.message.clone()).unwrap_or_default();
        assert!(message.len() <= MAX_MESSAGE_BYTES && message.len() > MAX_MESSAGE_BYTES - 2);
        assert!(message.chars().all(|c| c == 'é'));
    }

    #[test]
    fn the_oldest_lines_go_when_the_buffer_is_full() {
        let buffer = LogBuffer::default();
        for n in 0..MAX_BUFFERED + 3 {
            buffer.push(Uuid::nil(), 1, LogLevel::Debug, n.to_string());
        }
        assert_eq!(buffer.len(), MAX_BUFFERED);
        let lines = buffer.lines.lock().unwrap_or_else(PoisonError::into_inner);
        assert_eq!(lines.front().map(|l| l.message.as_str()), Some("3"));
    }
}
