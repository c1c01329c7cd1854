//! The gateway's Prometheus metrics (served on `/metrics` with the rest):
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `ws_connected_sockets` | gauge | sockets open on this replica |
//! | `ws_rooms` | gauge | rooms held by at least one local socket |
//! | `ws_messages_in_total{event}` | counter | frames received, by event (`invalid` for unreadable ones) |
//! | `ws_messages_out_total{event}` | counter | frames written, by event |
//! | `ws_slow_consumers_dropped_total` | counter | sockets closed with 1013 for not reading |
//! | `ws_job_events_collapsed_total` | counter | queued `jobUpdated` frames replaced by a newer one of the same job |
//! | `ws_closed_total{code}` | counter | sockets closed by the server, by close code |
//! | `ws_redis_reconnects_total` | counter | pub/sub reconnections after Redis went away |
//! | `ws_job_event_delay_seconds` | histogram | job's `updated_at` (the change, in the worker or the job service) → its frame written to the connection |
//!
//! Gauges are resolved once; counters and histograms are looked up on each use, because the
//! exporter drops series that stay idle (and a kept handle would then record nowhere).

use metrics::Gauge;

/// The events counted separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `jobUpdated`.
    JobUpdated,
    /// `receiveMessage`.
    ReceiveMessage,
    /// `joined`, `left`, `authenticated` (answers to the client).
    Reply,
    /// `error`.
    Error,
}

impl Event {
    /// Every event, in the order of their discriminants.
    pub const ALL: [Event; 4] = [
        Event::JobUpdated,
        Event::ReceiveMessage,
        Event::Reply,
        Event::Error,
    ];

    fn label(self) -> &'static str {
        match self {
            Event::JobUpdated => "jobUpdated",
            Event::ReceiveMessage => "receiveMessage",
            Event::Reply => "reply",
            Event::Error => "error",
        }
    }
}

/// Client events counted on the way in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InEvent {
    /// `joinRoom`.
    Join,
    /// `leaveRoom`.
    Leave,
    /// `sendMessage`.
    Send,
    /// `authenticate`.
    Authenticate,
    /// Anything that could not be parsed or is unknown.
    Invalid,
}

impl InEvent {
    fn label(self) -> &'static str {
        match self {
            InEvent::Join => "joinRoom",
            InEvent::Leave => "leaveRoom",
            InEvent::Send => "sendMessage",
            InEvent::Authenticate => "authenticate",
            InEvent::Invalid => "invalid",
        }
    }
}

/// The gateway's gauges and counters.
pub struct Metrics {
    /// `ws_connected_sockets`.
    pub sockets: Gauge,
    /// `ws_rooms`.
    pub rooms: Gauge,
}

impl Metrics {
    /// Registers the gauges.
    pub fn new() -> Self {
        // The recorder must be installed before handles are taken, or they record nowhere.
        service_kit::metrics::handle();
        Self {
            sockets: metrics::gauge!("ws_connected_sockets"),
            rooms: metrics::gauge!("ws_rooms"),
        }
    }

    /// Counts `count` frames of `event` written.
    pub fn sent(&self, event: Event, count: u64) {
        metrics::counter!("ws_messages_out_total", "event" => event.label()).increment(count);
    }

    /// Records a `jobUpdated` frame written, of a change made at `changed_at_us` (µs since the
    /// epoch).
    pub fn job_event_delay(&self, changed_at_us: i64) {
        let delay_us = chrono::Utc::now().timestamp_micros() - changed_at_us;
        metrics::histogram!("ws_job_event_delay_seconds").record(delay_us.max(0) as f64 / 1e6);
    }

    /// Counts a frame received.
    pub fn received(&self, event: InEvent) {
        metrics::counter!("ws_messages_in_total", "event" => event.label()).increment(1);
    }

    /// Counts a socket closed for reading too slowly.
    pub fn slow_consumer(&self) {
        metrics::counter!("ws_slow_consumers_dropped_total").increment(1);
    }

    /// Counts a queued `jobUpdated` replaced by a newer one.
    pub fn collapsed(&self) {
        metrics::counter!("ws_job_events_collapsed_total").increment(1);
    }

    /// Counts a pub/sub reconnection.
    pub fn redis_reconnected(&self) {
        metrics::counter!("ws_redis_reconnects_total").increment(1);
    }

    /// Counts a socket closed by the server.
    pub fn closed(&self, code: u16) {
        metrics::counter!("ws_closed_total", "code" => code.to_string()).increment(1);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
