//! The real-time gateway: `GET /api/ws` (section 5 of the contract).
//!
//! - [`upgrade`]: authentication (cookie, bearer header or `access_token` query parameter),
//!   the `Origin` check for cookies, the WebSocket handshake.
//! - [`session`]: one task per socket: reads client frames, writes queued frames, pings,
//!   closes on expiry, revocation, slowness or shutdown.
//! - [`hub`]: the replica's sockets and rooms in memory, and each socket's bounded outbox.
//! - [`bridge`]: the replica's one Redis pub/sub connection, subscriptions following the rooms
//!   local sockets hold, reconnecting by itself.
//! - [`transport`]: the WebSocket's frames on actix-web's HTTP/1 connection: the `101`
//!   response's body takes frames straight from the socket's outbox; client frames are read
//!   from the request payload.
//! - [`protocol`]: frames, room names, error and close codes.
//! - [`metrics`]: what `/metrics` shows about it.

pub mod bridge;
pub mod hub;
pub mod metrics;
pub mod protocol;
pub mod session;
pub mod transport;
pub mod upgrade;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use access_token::RevocationList;
use actix_web::web;
use service_kit::http::AllowedOrigins;

use crate::Settings;
use bridge::{Bridge, Channels};
use hub::{Hub, QueueLimits};

/// The gateway's limits and timings (from [`Settings`]).
#[derive(Debug, Clone)]
pub struct Limits {
    /// `WS_PING_SECS`.
    pub ping: Duration,
    /// `WS_MESSAGES_PER_SEC`.
    pub messages_per_sec: u32,
    /// `WS_MAX_FRAME_BYTES`.
    pub max_frame_bytes: usize,
}

/// The hard limit on an inbound frame (above the soft `WS_MAX_FRAME_BYTES`): past it the
/// frame cannot be read and skipped, so the socket is closed with 1009.
pub const HARD_FRAME_LIMIT: usize = 64 * 1024;

/// How long shutdown waits for sockets to take their 1001 close before the server stops.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How long a join or a new socket waits for its Redis subscription to be in effect before
/// going ahead anyway (Redis down: the bridge subscribes when it is back).
pub const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);

/// One replica's gateway: shared by every HTTP worker thread.
pub struct Gateway {
    /// Sockets and rooms.
    pub hub: Arc<Hub>,
    /// Channel names.
    pub channels: Channels,
    /// For `PUBLISH` of room messages.
    pub redis: deadpool_redis::Pool,
    /// Browser origins allowed to use the cookie.
    pub origins: AllowedOrigins,
    /// Limits and timings.
    pub limits: Limits,
    /// The Redis bridge while no runtime runs it ([`Gateway::run_bridge_here`]).
    bridge: Arc<Mutex<Option<Bridge>>>,
}

/// Holds the bridge while a runtime runs it, and puts it back if that runtime drops the task,
/// for the next [`Gateway::run_bridge_here`].
struct Running {
    bridge: Option<Bridge>,
    slot: Arc<Mutex<Option<Bridge>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(bridge) = self.bridge.take() {
            *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(bridge);
        }
    }
}

impl Gateway {
    /// Builds the gateway and starts its Redis bridge on the current runtime.
    pub fn start(
        settings: &Settings,
        redis: deadpool_redis::Pool,
        revocations: Option<RevocationList>,
    ) -> Result<Arc<Self>, service_kit::settings::SettingsError> {
        let client = redis::Client::open(settings.redis_url.as_str())
            .map_err(|e| service_kit::settings::SettingsError::invalid("REDIS_URL", e))?;
        let channels = Channels::new(&settings.redis_prefix);
        let (commands, receiver) = tokio::sync::mpsc::unbounded_channel();
        let hub = Arc::new(Hub::new(
            commands,
            QueueLimits {
                messages: settings.ws_send_queue_messages,
                bytes: settings.ws_send_queue_bytes,
            },
            settings.ws_max_rooms,
        ));
        let bridge = Bridge::new(client, channels.clone(), hub.clone(), receiver, revocations);
        let gateway = Arc::new(Self {
            hub,
            channels,
            redis,
            origins: AllowedOrigins::new(settings.origins()),
            limits: Limits {
                ping: Duration::from_secs(settings.ws_ping_secs),
                messages_per_sec: settings.ws_messages_per_sec,
                max_frame_bytes: settings.ws_max_frame_bytes,
            },
            bridge: Arc::new(Mutex::new(Some(bridge))),
        });
        gateway.run_bridge_here();
        Ok(gateway)
    }

    /// Runs the Redis bridge on the current runtime unless one already does.
    ///
    /// The service's main runtime, not an HTTP worker's: measured, the bridge on the sockets'
    /// worker thread cost 7× the CPU per delivered room message (16.7 µs against 2.2 µs): a
    /// worker that both routes and writes wakes every member's connection for every message
    /// and writes each frame with a system call of its own, where routing on another thread
    /// lets frames gather in the outboxes while the worker writes, several per system call.
    pub fn run_bridge_here(&self) {
        let Some(bridge) = self
            .bridge
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return;
        };
        let mut running = Running {
            bridge: Some(bridge),
            slot: self.bridge.clone(),
        };
        tokio::spawn(async move {
            if let Some(bridge) = running.bridge.as_mut() {
                bridge::run(bridge).await;
            }
            // The hub is gone: nothing to put back.
            drop(running.bridge.take());
        });
    }

    /// Closes every socket with 1001 and waits (up to [`SHUTDOWN_GRACE`]) for them to go.
    pub async fn shut_down(&self) {
        let open = self.hub.socket_count();
        self.hub.close_all();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.hub.drained())
            .await
            .is_err()
        {
            tracing::warn!(
                left = self.hub.socket_count(),
                "real-time gateway: sockets still open after the shutdown grace period"
            );
        } else {
            tracing::info!(
                closed = open,
                "real-time gateway: every socket closed with 1001"
            );
        }
    }
}

/// Mounts `GET /api/ws`; needs `web::Data<Gateway>` and the job service's state.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/ws", web::get().to(upgrade::upgrade));
}
