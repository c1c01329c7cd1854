//! One socket's task: reads and answers client frames, writes what the hub queued, pings, and
//! closes the socket when its token expires (4001), its session is revoked (4002), it reads
//! too slowly (1013), it stops answering pings (4008) or the replica shuts down (1001).
//!
//! The task never writes: its answers go to the hub's bounded outbox like every other frame,
//! and the connection takes them from there ([`super::transport::Outbound`]), so the task never
//! waits on a slow client.

use std::sync::Arc;
use std::time::Duration;

use access_token::Claims;
use actix_http::ws::ProtocolError;
use actix_web::web;
use domain::{Role, SessionId};
use serde_json::json;
use tokio::time::Instant;
use uuid::Uuid;

use super::hub::{Closing, JoinRefused, Outgoing, Socket as Routed};
use super::metrics::{Event, InEvent};
use super::protocol::{self, Inbound, RoomKind, close, code};
use super::transport::{self, Outbound, Received};
use super::{Gateway, HARD_FRAME_LIMIT, SUBSCRIBE_WAIT};
use crate::AppState;

/// Who is on the socket, from the access token.
#[derive(Debug, Clone, Copy)]
pub struct Identity {
    /// The user.
    pub user: Uuid,
    /// Admin at the time of the token.
    pub admin: bool,
    /// The session.
    pub sid: SessionId,
    /// The token's `exp` (seconds since the epoch).
    pub expires_at: i64,
}

impl Identity {
    /// From verified claims.
    pub fn from_claims(claims: &Claims) -> Self {
        Self {
            user: claims.sub.0,
            admin: claims.role == Role::Admin,
            sid: claims.sid,
            expires_at: claims.exp,
        }
    }
}

/// How long the sender's address, once looked up, is used before it is looked up again: a
/// socket whose account was deleted meanwhile finds out within this time.
pub const SENDER_RECHECK: Duration = Duration::from_secs(60);

/// Why the sender of a `sendMessage` could not be named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum SenderError {
    /// The user's account no longer exists (deleted): its sessions went with it.
    #[error("the account no longer exists")]
    AccountGone,
    /// PostgreSQL did not answer.
    #[error("the account could not be looked up")]
    Unavailable,
}

/// A token bucket: `rate` frames per second, bursts of twice that.
struct RateLimit {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    fn new(rate: u32) -> Self {
        let rate = f64::from(rate.max(1));
        Self {
            rate,
            tokens: rate * 2.0,
            at: Instant::now(),
        }
    }

    fn allow(&mut self) -> bool {
        let now = Instant::now();
        let elapsed = now.duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate * 2.0);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A registered socket with its task's state.
pub struct Socket {
    gateway: Arc<Gateway>,
    state: Arc<AppState>,
    routed: Arc<Routed>,
    who: Identity,
    stream: transport::Inbound,
    rate: RateLimit,
    /// The user's address, looked up on the first `sendMessage` (again after
    /// [`SENDER_RECHECK`]), with when it was looked up.
    email: Option<(String, Instant)>,
    /// When the access token expires.
    expires: Instant,
    /// Whether anything came from the client since the last ping.
    heard: bool,
    missed_pings: u8,
}

impl Socket {
    /// Registers the socket with the hub and waits (briefly) until its user's events are
    /// subscribed, so that nothing published after the upgrade answer is missed. `None` when
    /// the replica is shutting down.
    pub async fn open(
        gateway: Arc<Gateway>,
        state: Arc<AppState>,
        who: Identity,
        payload: web::Payload,
    ) -> Option<Self> {
        let routed = gateway.hub.register(who.user, who.admin, who.sid)?;
        let _ = tokio::time::timeout(SUBSCRIBE_WAIT, gateway.hub.subscribed()).await;
        let hard = HARD_FRAME_LIMIT.max(gateway.limits.max_frame_bytes);
        let stream = transport::Inbound::new(payload, hard);
        let rate = RateLimit::new(gateway.limits.messages_per_sec);
        Some(Self {
            gateway,
            state,
            routed,
            who,
            stream,
            rate,
            email: None,
            expires: expiry_instant(who.expires_at),
            heard: true,
            missed_pings: 0,
        })
    }

    /// The `101` response's body, which writes this socket's frames.
    pub fn outbound(&self) -> Outbound {
        Outbound::new(self.routed.clone(), self.gateway.clone())
    }

    /// Serves the socket until it closes, then takes it out of the hub. The close frame is
    /// written by the connection after what is queued (a close asked for by the hub emptied
    /// the queue; the socket's own last `error` goes first).
    pub async fn run(mut self) {
        let closing = self.serve().await;
        let hub = &self.gateway.hub;
        hub.unregister(self.routed.id);
        match closing {
            Some(closing) => {
                hub.metrics().closed(closing.code);
                self.routed.close_after_queue(closing);
            }
            None => self.routed.end(),
        }
    }

    /// The loop; returns how to close (None: the client closed or went away).
    async fn serve(&mut self) -> Option<Closing> {
        let ping_every = self.gateway.limits.ping;
        let mut next_ping = Instant::now() + ping_every;
        loop {
            if let Some(closing) = self.routed.closing() {
                return Some(closing);
            }
            if self.routed.is_gone() {
                return None;
            }
            let expires = self.expires;
            let wake = next_ping.min(expires);
            tokio::select! {
                biased;
                () = self.routed.changed() => {}
                message = self.stream.next() => match message {
                    None => return None,
                    Some(Ok(message)) => {
                        // Boxed: handling a frame may wait on PostgreSQL, Redis or the token
                        // verifier, whose futures are kilobytes; inline they would sit in every
                        // idle socket's task (17 KB in all, measured), boxed they exist only
                        // while a frame is handled.
                        if let Some(closing) = Box::pin(self.receive(message)).await {
                            return closing;
                        }
                    }
                    Some(Err(ProtocolError::Overflow)) => {
                        return Some(Closing { code: close::TOO_BIG, reason: "frame over 64 KiB" });
                    }
                    Some(Err(_)) => return None,
                },
                () = tokio::time::sleep_until(wake) => {
                    let now = Instant::now();
                    if now >= expires {
                        return Some(Closing {
                            code: close::TOKEN_EXPIRED,
                            reason: "access token expired: refresh it and reconnect",
                        });
                    }
                    if now >= next_ping {
                        if self.heard {
                            self.missed_pings = 0;
                        } else {
                            self.missed_pings += 1;
                            if self.missed_pings >= 2 {
                                return Some(Closing {
                                    code: close::PING_TIMEOUT,
                                    reason: "no answer to two pings",
                                });
                            }
                        }
                        self.heard = false;
                        self.routed.ping();
                        next_ping = now + ping_every;
                    }
                }
            }
        }
    }

    /// Queues an answer for this socket.
    fn reply(&self, event: Event, frame: bytestring::ByteString) {
        let hub = &self.gateway.hub;
        self.routed.push(
            Outgoing {
                frame,
                event,
                job: None,
                changed_at_us: None,
            },
            hub.limits(),
            hub.metrics(),
        );
    }

    fn error(&self, code: &str, message: &str, room: Option<&str>) {
        self.reply(Event::Error, protocol::error(code, message, room));
    }

    /// Handles one client frame; `Some` ends the loop.
    async fn receive(&mut self, message: Received) -> Option<Option<Closing>> {
        self.heard = true;
        let metrics = self.gateway.hub.metrics();
        let text = match message {
            Received::Text(text) => text,
            Received::Binary => {
                metrics.received(InEvent::Invalid);
                if self.rate.allow() {
                    self.error(
                        code::BAD_FRAME,
                        "Frames are JSON text; binary frames are not understood.",
                        None,
                    );
                } else {
                    self.rate_limited();
                }
                return None;
            }
            Received::Ping(bytes) => {
                self.routed.pong(bytes);
                return None;
            }
            Received::Pong => return None,
            Received::Close => return Some(None),
        };
        if !self.rate.allow() {
            metrics.received(InEvent::Invalid);
            self.rate_limited();
            return None;
        }
        if text.len() > self.gateway.limits.max_frame_bytes {
            metrics.received(InEvent::Invalid);
            self.error(
                code::FRAME_TOO_LARGE,
                &format!(
                    "Frames are limited to {} bytes.",
                    self.gateway.limits.max_frame_bytes
                ),
                None,
            );
            return None;
        }
        match protocol::parse(&text) {
            Err(refusal) => {
                metrics.received(InEvent::Invalid);
                self.error(refusal.code, &refusal.message, None);
            }
            Ok(Inbound::Join(room)) => {
                metrics.received(InEvent::Join);
                self.join(&room).await;
            }
            Ok(Inbound::Leave(room)) => {
                metrics.received(InEvent::Leave);
                match protocol::room(&room) {
                    Err(refusal) => self.error(refusal.code, &refusal.message, Some(&room)),
                    Ok((room, _)) => {
                        self.gateway.hub.leave(self.routed.id, &room);
                        self.reply(Event::Reply, protocol::left(&room));
                    }
                }
            }
            Ok(Inbound::Send { room, message }) => {
                metrics.received(InEvent::Send);
                if let Some(closing) = self.send_message(&room, &message).await {
                    return Some(Some(closing));
                }
            }
            Ok(Inbound::Authenticate(token)) => {
                metrics.received(InEvent::Authenticate);
                self.authenticate(&token).await;
            }
        }
        None
    }

    fn rate_limited(&self) {
        self.error(
            code::RATE_LIMITED,
            &format!(
                "More than {} frames per second; slow down (this frame was ignored).",
                self.gateway.limits.messages_per_sec
            ),
            None,
        );
    }

    async fn join(&mut self, raw: &str) {
        let (room, kind) = match protocol::room(raw) {
            Ok(room) => room,
            Err(refusal) => return self.error(refusal.code, &refusal.message, Some(raw)),
        };
        let owner = match kind {
            RoomKind::Open => None,
            RoomKind::Admin if self.who.admin => None,
            RoomKind::Admin => {
                return self.error(
                    code::FORBIDDEN,
                    "admin:* rooms are for admins.",
                    Some(&room),
                );
            }
            RoomKind::NoSuchJob => {
                return self.error(code::FORBIDDEN, "No such job.", Some(&room));
            }
            RoomKind::Job(id) => match self.job_owner(id).await {
                Ok(Some(owner)) => Some(owner),
                Ok(None) if self.who.admin => {
                    return self.error(code::NOT_FOUND, "No such job.", Some(&room));
                }
                Ok(None) => {
                    return self.error(
                        code::FORBIDDEN,
                        "job:<id> rooms are open to the job's owner and admins.",
                        Some(&room),
                    );
                }
                Err(()) => {
                    return self.error(
                        code::UNAVAILABLE,
                        "The job could not be looked up; try again.",
                        Some(&room),
                    );
                }
            },
        };
        match self.gateway.hub.join(self.routed.id, &room, owner) {
            Ok(added) => {
                if added {
                    let _ =
                        tokio::time::timeout(SUBSCRIBE_WAIT, self.gateway.hub.subscribed()).await;
                }
                self.reply(Event::Reply, protocol::joined(&room));
            }
            Err(JoinRefused::TooManyRooms) => self.error(
                code::TOO_MANY_ROOMS,
                &format!(
                    "A socket may hold at most {} rooms; leave one first.",
                    self.gateway.hub.max_rooms()
                ),
                Some(&room),
            ),
            Err(JoinRefused::Gone) => {}
        }
    }

    /// The owner of job `id` if this user may see it.
    async fn job_owner(&self, id: Uuid) -> Result<Option<Uuid>, ()> {
        let scope = if self.who.admin {
            None
        } else {
            Some(self.who.user)
        };
        let mut conn = self.state.conn().await.map_err(|error| {
            tracing::warn!(%error, "real-time gateway: no database connection");
        })?;
        persistence::jobs::find(&mut conn, id, scope)
            .await
            .map(|job| job.map(|job| job.user_id))
            .map_err(|error| {
                tracing::warn!(%error, "real-time gateway: job lookup failed");
            })
    }

    /// Publishes a message to `raw`'s members; `Some` when the socket must close (its
    /// account no longer exists).
    async fn send_message(&mut self, raw: &str, message: &str) -> Option<Closing> {
        let room = match protocol::room(raw) {
            Ok((room, _)) => room,
            Err(refusal) => {
                self.error(refusal.code, &refusal.message, Some(raw));
                return None;
            }
        };
        if message.len() > protocol::MAX_MESSAGE_BYTES {
            self.error(
                code::MESSAGE_TOO_LARGE,
                "Messages are limited to 4 KiB (4096 bytes of UTF-8).",
                Some(&room),
            );
            return None;
        }
        if !self.gateway.hub.holds(self.routed.id, &room) {
            self.error(
                code::FORBIDDEN,
                "Join the room before sending to it.",
                Some(&room),
            );
            return None;
        }
        let email = match self.email().await {
            Ok(email) => email,
            Err(SenderError::Unavailable) => {
                self.error(
                    code::UNAVAILABLE,
                    "The message could not be sent; try again.",
                    Some(&room),
                );
                return None;
            }
            Err(SenderError::AccountGone) => {
                self.error(
                    code::FORBIDDEN,
                    "Your account no longer exists; the message was not sent.",
                    Some(&room),
                );
                let closing = Closing {
                    code: close::SESSION_REVOKED,
                    reason: ACCOUNT_GONE,
                };
                // The user's other sockets here are as dead: their sessions went with the account.
                self.gateway
                    .hub
                    .close_user(self.who.user, Some(self.routed.id), closing.clone());
                return Some(closing);
            }
        };
        let sent_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let frame = protocol::frame(
            "receiveMessage",
            json!({
                "room": room,
                "message": message,
                "from": {"id": self.who.user, "email": email},
                "sent_at": sent_at,
            }),
        );
        if let Err(error) = self.publish(&room, &frame).await {
            tracing::warn!(%error, "real-time gateway: publishing a message failed");
            self.error(
                code::UNAVAILABLE,
                "The message could not be sent; try again.",
                Some(&room),
            );
        }
        None
    }

    async fn publish(&self, room: &str, frame: &str) -> Result<(), String> {
        let mut conn = self.gateway.redis.get().await.map_err(|e| e.to_string())?;
        redis::cmd("PUBLISH")
            .arg(self.gateway.channels.room(room))
            .arg(frame)
            .query_async::<i64>(&mut *conn)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// The sender's address: looked up in PostgreSQL on the first message and again once the
    /// last look-up is [`SENDER_RECHECK`] old.
    async fn email(&mut self) -> Result<String, SenderError> {
        if let Some((email, at)) = &self.email
            && at.elapsed() < SENDER_RECHECK
        {
            return Ok(email.clone());
        }
        let mut conn = self.state.conn().await.map_err(|error| {
            tracing::warn!(%error, "real-time gateway: no database connection");
            SenderError::Unavailable
        })?;
        // Only the address: the job service's database role cannot read credentials.
        match persistence::jobs::user_email(&mut conn, self.who.user).await {
            Ok(Some((email, _))) => {
                self.email = Some((email.clone(), Instant::now()));
                Ok(email)
            }
            Ok(None) => {
                tracing::info!(user = %self.who.user, "real-time gateway: the sender's account no longer exists; closing its sockets");
                self.email = None;
                Err(SenderError::AccountGone)
            }
            Err(error) => {
                tracing::warn!(%error, "real-time gateway: looking up the sender failed");
                Err(SenderError::Unavailable)
            }
        }
    }

    async fn authenticate(&mut self, token: &str) {
        let claims = match self.state.verifier.verify(token).await {
            Ok(claims) => claims,
            Err(error) if error.is_unavailable() => {
                return self.error(
                    code::UNAVAILABLE,
                    "The token could not be checked; try again.",
                    None,
                );
            }
            Err(error) => {
                return self.error(
                    code::INVALID_TOKEN,
                    &format!("The token was refused ({error}); the socket keeps its current one."),
                    None,
                );
            }
        };
        if claims.sub.0 != self.who.user {
            return self.error(
                code::FORBIDDEN,
                "The token belongs to another user; open a new socket for them.",
                None,
            );
        }
        let who = Identity::from_claims(&claims);
        let hub = &self.gateway.hub;
        hub.reauthenticate(self.routed.id, who.sid, who.admin);
        if self.who.admin && !who.admin {
            // No longer an admin: give up what only admins (or owners) may hold.
            for (room, owner) in hub.rooms_of(self.routed.id) {
                let foreign_job = owner.is_some_and(|owner| owner != who.user);
                if room.starts_with("admin:") || foreign_job {
                    hub.leave(self.routed.id, &room);
                    self.reply(Event::Reply, protocol::left(&room));
                }
            }
        }
        self.who = who;
        self.expires = expiry_instant(who.expires_at);
        self.reply(Event::Reply, protocol::authenticated(who.expires_at));
    }
}

/// The close reason sent with 4002 when the socket's account no longer exists.
const ACCOUNT_GONE: &str = "account no longer exists";

/// The instant the token expires (`exp` is in seconds since the epoch).
fn expiry_instant(expires_at: i64) -> Instant {
    let now_unix = chrono::Utc::now().timestamp_micros();
    let left_us = expires_at
        .saturating_mul(1_000_000)
        .saturating_sub(now_unix);
    Instant::now() + Duration::from_micros(left_us.max(0) as u64)
}
