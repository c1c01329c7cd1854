//! The replica's sockets and rooms, in memory: who gets which frame.
//!
//! Every socket has a bounded `Outbox`; routing only pushes into outboxes (never waits on a
//! socket), so a slow client can only overflow its own outbox and be closed with 1013. The
//! socket's connection takes frames straight from the outbox when it can write
//! ([`Socket::write`], called by [`super::transport::Outbound`]): a pushed frame wakes the
//! connection itself, not the socket's task.
//!
//! The hub also keeps the Redis subscriptions in step with what local sockets hold: a user's
//! event channel while one of their sockets (or a local socket in one of their `job:<id>`
//! rooms) is here, a room's message channel while a local socket holds the room, and the
//! all-users pattern while a local socket holds `admin:jobs`. Changes are queued to the
//! [`super::bridge`] in the order they happen, under the hub's lock.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;

use actix_codec::Encoder as _;
use actix_http::ws::{CloseCode, CloseReason, Codec, Message};
use actix_web::web::{Bytes, BytesMut};
use bytestring::ByteString;
use domain::SessionId;
use tokio::sync::{Notify, mpsc, oneshot};
use uuid::Uuid;

use super::bridge::{Command, Subscription};
use super::metrics::{Event, Metrics};
use super::protocol::{self, close};

/// A socket's id within this replica.
pub type SocketId = u64;

/// How much a socket may have queued and not yet written before it counts as too slow.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Frames.
    pub messages: usize,
    /// Bytes of frame text.
    pub bytes: usize,
}

/// A frame waiting to be written to a socket.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The text.
    pub frame: ByteString,
    /// Its event (for metrics).
    pub event: Event,
    /// For `jobUpdated`: the job, so that a newer event replaces a queued older one.
    pub job: Option<Uuid>,
    /// For `jobUpdated`: the job's `updated_at` (µs since the epoch), for the delay histogram.
    pub changed_at_us: Option<i64>,
}

/// Why and how a socket is to be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closing {
    /// The close code.
    pub code: u16,
    /// A short reason sent with it.
    pub reason: &'static str,
}

#[derive(Default)]
struct Outbox {
    queue: VecDeque<Outgoing>,
    bytes: usize,
    closing: Option<Closing>,
    /// The connection, waiting for something to write.
    writer: Option<Waker>,
    /// A ping to send.
    ping: bool,
    /// A pong to send (the payload of the client's ping).
    pong: Option<Bytes>,
    /// The socket's task ended without a close code of its own (the client closed): send a
    /// plain close frame and end.
    ended: bool,
    /// The close frame was written: the connection's body ends.
    close_written: bool,
    /// The connection is gone (its body was dropped).
    gone: bool,
}

/// What [`Socket::write`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    /// Frames were appended to the buffer.
    Frames,
    /// Nothing to write now; the connection is woken when there is.
    Nothing,
    /// The close frame went out before: nothing will follow.
    Finished,
}

/// Most bytes [`Socket::write`] encodes in one call (then the connection writes them and asks
/// again): a long queue is not copied into one huge buffer.
const WRITE_CHUNK: usize = 64 * 1024;

/// One local socket as the router sees it.
pub struct Socket {
    /// Its id.
    pub id: SocketId,
    /// Its user.
    pub user: Uuid,
    outbox: Mutex<Outbox>,
    notify: Notify,
}

impl Socket {
    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `out`, replacing a queued event of the same job. Returns false when the socket
    /// is over its limits (it is then marked for closing with 1013 and its queue dropped).
    pub fn push(&self, out: Outgoing, limits: QueueLimits, metrics: &Metrics) -> bool {
        let mut outbox = self.outbox();
        if outbox.closing.is_some() || outbox.ended || outbox.gone {
            return true;
        }
        if let Some(job) = out.job
            && let Some(queued) = outbox.queue.iter_mut().find(|q| q.job == Some(job))
        {
            let grown = out.frame.len() as isize - queued.frame.len() as isize;
            *queued = out;
            outbox.bytes = outbox.bytes.saturating_add_signed(grown);
            metrics.collapsed();
            return true;
        }
        let bytes = outbox.bytes + out.frame.len();
        if outbox.queue.len() >= limits.messages || bytes > limits.bytes {
            outbox.queue.clear();
            outbox.bytes = 0;
            outbox.closing = Some(Closing {
                code: close::TRY_AGAIN_LATER,
                reason: "too slow: reconnect",
            });
            let writer = outbox.writer.take();
            drop(outbox);
            metrics.slow_consumer();
            self.notify.notify_one();
            wake(writer);
            return false;
        }
        outbox.bytes = bytes;
        outbox.queue.push_back(out);
        let writer = outbox.writer.take();
        drop(outbox);
        wake(writer);
        true
    }

    /// Marks the socket for closing with `closing` (the first reason wins), dropping what is
    /// queued: the hub's decision (revocation, shutdown).
    pub fn close(&self, closing: Closing) {
        let mut outbox = self.outbox();
        if outbox.closing.is_none() {
            outbox.closing = Some(closing);
            outbox.queue.clear();
            outbox.bytes = 0;
        }
        let writer = outbox.writer.take();
        drop(outbox);
        self.notify.notify_one();
        wake(writer);
    }

    /// Marks the socket for closing with `closing` after what is queued (the socket's own
    /// decision: its last `error` goes out first).
    pub fn close_after_queue(&self, closing: Closing) {
        let mut outbox = self.outbox();
        if outbox.closing.is_none() {
            outbox.closing = Some(closing);
        }
        let writer = outbox.writer.take();
        drop(outbox);
        wake(writer);
    }

    /// The socket's task ended without a close code (the client closed, or broke the
    /// protocol): what is queued goes, then a plain close frame.
    pub fn end(&self) {
        let mut outbox = self.outbox();
        outbox.ended = true;
        let writer = outbox.writer.take();
        drop(outbox);
        wake(writer);
    }

    /// Asks for a ping to be sent.
    pub fn ping(&self) {
        let mut outbox = self.outbox();
        outbox.ping = true;
        let writer = outbox.writer.take();
        drop(outbox);
        wake(writer);
    }

    /// Asks for a pong answering a ping with `payload`.
    pub fn pong(&self, payload: Bytes) {
        let mut outbox = self.outbox();
        outbox.pong = Some(payload);
        let writer = outbox.writer.take();
        drop(outbox);
        wake(writer);
    }

    /// The connection is gone: wakes the socket's task to end.
    pub fn connection_gone(&self) {
        let mut outbox = self.outbox();
        outbox.gone = true;
        outbox.queue.clear();
        outbox.bytes = 0;
        outbox.writer = None;
        drop(outbox);
        self.notify.notify_one();
    }

    /// The closing reason, if the socket is to be closed.
    pub fn closing(&self) -> Option<Closing> {
        self.outbox().closing.clone()
    }

    /// True once the connection is gone.
    pub fn is_gone(&self) -> bool {
        self.outbox().gone
    }

    /// Encodes what is to be written (control frames first, then queued frames, then the
    /// close frame) into `buf`, at most about `WRITE_CHUNK` bytes; with nothing to write,
    /// keeps `waker` to be woken when there is.
    pub fn write(
        &self,
        codec: &mut Codec,
        buf: &mut BytesMut,
        metrics: &Metrics,
        waker: &Waker,
    ) -> Written {
        let mut outbox = self.outbox();
        if outbox.close_written {
            return Written::Finished;
        }
        if outbox.ping {
            outbox.ping = false;
            let _ = codec.encode(Message::Ping(Bytes::new()), buf);
        }
        if let Some(payload) = outbox.pong.take() {
            let _ = codec.encode(Message::Pong(payload), buf);
        }
        let mut sent = SentCounts::default();
        while buf.len() < WRITE_CHUNK {
            let Some(out) = outbox.queue.pop_front() else {
                break;
            };
            outbox.bytes = outbox.bytes.saturating_sub(out.frame.len());
            sent.add(&out, metrics);
            let _ = codec.encode(Message::Text(out.frame), buf);
        }
        if outbox.queue.is_empty() {
            let reason = match (&outbox.closing, outbox.ended) {
                (Some(closing), _) => Some(Some(CloseReason {
                    code: CloseCode::from(closing.code),
                    description: Some(closing.reason.to_owned()),
                })),
                (None, true) => Some(None),
                (None, false) => None,
            };
            if let Some(reason) = reason {
                let _ = codec.encode(Message::Close(reason), buf);
                outbox.close_written = true;
            }
        }
        let wrote = !buf.is_empty();
        if !wrote {
            outbox.writer = Some(waker.clone());
        }
        drop(outbox);
        sent.record(metrics);
        if wrote {
            Written::Frames
        } else {
            Written::Nothing
        }
    }

    /// Resolves when a close was asked for or the connection went away since the last call.
    pub async fn changed(&self) {
        self.notify.notified().await;
    }
}

fn wake(writer: Option<Waker>) {
    if let Some(writer) = writer {
        writer.wake();
    }
}

/// Frames written in one [`Socket::write`], counted once per event kind afterwards.
#[derive(Default)]
struct SentCounts {
    counts: [u64; 4],
}

impl SentCounts {
    fn add(&mut self, out: &Outgoing, metrics: &Metrics) {
        self.counts[out.event as usize] += 1;
        if let Some(changed) = out.changed_at_us {
            metrics.job_event_delay(changed);
        }
    }

    fn record(&self, metrics: &Metrics) {
        for (event, count) in Event::ALL.iter().zip(self.counts) {
            if count > 0 {
                metrics.sent(*event, count);
            }
        }
    }
}

struct Member {
    socket: Arc<Socket>,
    sid: SessionId,
    admin: bool,
    /// Rooms held, with the owner of the job for `job:<id>` rooms.
    rooms: Vec<(String, Option<Uuid>)>,
}

#[derive(Default)]
struct Room {
    members: HashMap<SocketId, Arc<Socket>>,
    /// For `job:<id>` rooms: the job's owner, whose event channel carries the job's events.
    job_owner: Option<Uuid>,
}

#[derive(Default)]
struct State {
    sockets: HashMap<SocketId, Member>,
    by_user: HashMap<Uuid, Vec<Arc<Socket>>>,
    by_session: HashMap<SessionId, Vec<SocketId>>,
    rooms: HashMap<String, Room>,
    /// Reference counts of the Redis subscriptions.
    subscriptions: HashMap<Subscription, usize>,
    shutting_down: bool,
}

/// Why a join was refused by the hub.
#[derive(Debug, PartialEq, Eq)]
pub enum JoinRefused {
    /// The socket holds the most rooms allowed.
    TooManyRooms,
    /// The socket is gone.
    Gone,
}

/// The sockets and rooms of this replica.
pub struct Hub {
    state: Mutex<State>,
    commands: mpsc::UnboundedSender<Command>,
    limits: QueueLimits,
    max_rooms: usize,
    next_id: AtomicU64,
    closed: AtomicBool,
    metrics: Metrics,
    /// Emptied (notified) when the last socket leaves after shutdown began.
    drained: Notify,
}

impl Hub {
    /// A hub queuing its subscription changes on `commands`.
    pub fn new(
        commands: mpsc::UnboundedSender<Command>,
        limits: QueueLimits,
        max_rooms: usize,
    ) -> Self {
        Self {
            state: Mutex::new(State::default()),
            commands,
            limits,
            max_rooms,
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            metrics: Metrics::new(),
            drained: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The gateway's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Most rooms per socket.
    pub fn max_rooms(&self) -> usize {
        self.max_rooms
    }

    /// True when socket `id` holds `room`.
    pub fn holds(&self, id: SocketId, room: &str) -> bool {
        self.state()
            .sockets
            .get(&id)
            .is_some_and(|m| m.rooms.iter().any(|(r, _)| r == room))
    }

    /// The outbox limits.
    pub fn limits(&self) -> QueueLimits {
        self.limits
    }

    /// True once shutdown began: new sockets are refused.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn acquire(&self, state: &mut State, subscription: Subscription) {
        let count = state.subscriptions.entry(subscription.clone()).or_insert(0);
        *count += 1;
        if *count == 1 {
            let _ = self.commands.send(Command::Subscribe(subscription));
        }
    }

    fn release(&self, state: &mut State, subscription: Subscription) {
        if let Entry::Occupied(mut count) = state.subscriptions.entry(subscription) {
            *count.get_mut() -= 1;
            if *count.get() == 0 {
                let (subscription, _) = count.remove_entry();
                let _ = self.commands.send(Command::Unsubscribe(subscription));
            }
        }
    }

    /// Resolves once every subscription change queued so far is in effect in Redis (or Redis
    /// is unreachable and the bridge is retrying: the caller bounds the wait).
    pub async fn subscribed(&self) {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Sync(done)).is_ok() {
            let _ = wait.await;
        }
    }

    /// Adds a socket of `user` in session `sid`; `None` once shutdown began.
    pub fn register(&self, user: Uuid, admin: bool, sid: SessionId) -> Option<Arc<Socket>> {
        let socket = Arc::new(Socket {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            user,
            outbox: Mutex::new(Outbox::default()),
            notify: Notify::new(),
        });
        let mut state = self.state();
        if state.shutting_down {
            return None;
        }
        self.acquire(&mut state, Subscription::User(user));
        state.by_user.entry(user).or_default().push(socket.clone());
        state.by_session.entry(sid).or_default().push(socket.id);
        state.sockets.insert(
            socket.id,
            Member {
                socket: socket.clone(),
                sid,
                admin,
                rooms: Vec::new(),
            },
        );
        self.metrics.sockets.increment(1.0);
        Some(socket)
    }

    /// Removes a socket and its memberships.
    pub fn unregister(&self, id: SocketId) {
        let mut state = self.state();
        let Some(member) = state.sockets.remove(&id) else {
            return;
        };
        for (room, owner) in &member.rooms {
            self.remove_member(&mut state, room, *owner, id);
        }
        let user = member.socket.user;
        if let Entry::Occupied(mut sockets) = state.by_user.entry(user) {
            sockets.get_mut().retain(|s| s.id != id);
            if sockets.get().is_empty() {
                sockets.remove();
            }
        }
        self.release(&mut state, Subscription::User(user));
        remove_session(&mut state, member.sid, id);
        self.metrics.sockets.decrement(1.0);
        if state.shutting_down && state.sockets.is_empty() {
            self.drained.notify_waiters();
        }
    }

    /// Adds the socket to `room` (canonical name; `job_owner` for `job:<id>` rooms). Returns
    /// false when it already held the room.
    pub fn join(
        &self,
        id: SocketId,
        room: &str,
        job_owner: Option<Uuid>,
    ) -> Result<bool, JoinRefused> {
        let mut state = self.state();
        let state = &mut *state;
        let member = state.sockets.get_mut(&id).ok_or(JoinRefused::Gone)?;
        if member.rooms.iter().any(|(r, _)| r == room) {
            return Ok(false);
        }
        if member.rooms.len() >= self.max_rooms {
            return Err(JoinRefused::TooManyRooms);
        }
        member.rooms.push((room.to_owned(), job_owner));
        let socket = member.socket.clone();
        let entry = state.rooms.entry(room.to_owned()).or_default();
        let created = entry.members.is_empty();
        entry.members.insert(id, socket);
        if created {
            entry.job_owner = job_owner;
            self.metrics.rooms.increment(1.0);
            self.acquire(state, Subscription::Room(room.to_owned()));
            if let Some(owner) = job_owner {
                self.acquire(state, Subscription::User(owner));
            }
            if room == protocol::ADMIN_JOBS {
                self.acquire(state, Subscription::AllUsers);
            }
        }
        Ok(true)
    }

    /// Takes the socket out of `room`; false when it did not hold it.
    pub fn leave(&self, id: SocketId, room: &str) -> bool {
        let mut state = self.state();
        let Some(member) = state.sockets.get_mut(&id) else {
            return false;
        };
        let Some(at) = member.rooms.iter().position(|(r, _)| r == room) else {
            return false;
        };
        let (room, owner) = member.rooms.swap_remove(at);
        self.remove_member(&mut state, &room, owner, id);
        true
    }

    fn remove_member(&self, state: &mut State, room: &str, owner: Option<Uuid>, id: SocketId) {
        let Some(entry) = state.rooms.get_mut(room) else {
            return;
        };
        entry.members.remove(&id);
        if entry.members.is_empty() {
            state.rooms.remove(room);
            self.metrics.rooms.decrement(1.0);
            self.release(state, Subscription::Room(room.to_owned()));
            if let Some(owner) = owner {
                self.release(state, Subscription::User(owner));
            }
            if room == protocol::ADMIN_JOBS {
                self.release(state, Subscription::AllUsers);
            }
        }
    }

    /// The rooms a socket holds (with job owners).
    pub fn rooms_of(&self, id: SocketId) -> Vec<(String, Option<Uuid>)> {
        self.state()
            .sockets
            .get(&id)
            .map(|m| m.rooms.clone())
            .unwrap_or_default()
    }

    /// Moves a socket to a new session and role (after `authenticate`).
    pub fn reauthenticate(&self, id: SocketId, sid: SessionId, admin: bool) {
        let mut state = self.state();
        let Some(member) = state.sockets.get_mut(&id) else {
            return;
        };
        let old = std::mem::replace(&mut member.sid, sid);
        member.admin = admin;
        if old != sid {
            remove_session(&mut state, old, id);
            state.by_session.entry(sid).or_default().push(id);
        }
    }

    /// Routes a `jobUpdated` frame of `owner`'s job `job` to the owner's sockets, the members
    /// of `job:<id>` and of `admin:jobs`, each socket once.
    pub fn job_event(&self, owner: Uuid, job: Uuid, changed_at_us: Option<i64>, frame: ByteString) {
        let targets: Vec<Arc<Socket>> = {
            let state = self.state();
            let own = state.by_user.get(&owner);
            let room = state.rooms.get(&protocol::job_room(job));
            let admins = state.rooms.get(protocol::ADMIN_JOBS);
            match (room, admins) {
                (None, None) => own.cloned().unwrap_or_default(),
                _ => {
                    let mut seen = HashSet::new();
                    own.into_iter()
                        .flatten()
                        .chain(room.into_iter().flat_map(|r| r.members.values()))
                        .chain(admins.into_iter().flat_map(|r| r.members.values()))
                        .filter(|s| seen.insert(s.id))
                        .cloned()
                        .collect()
                }
            }
        };
        let out = Outgoing {
            frame,
            event: Event::JobUpdated,
            job: Some(job),
            changed_at_us,
        };
        for socket in targets {
            socket.push(out.clone(), self.limits, &self.metrics);
        }
    }

    /// Routes a `receiveMessage` frame to the members of `room`.
    pub fn room_message(&self, room: &str, frame: ByteString) {
        let targets: Vec<Arc<Socket>> = match self.state().rooms.get(room) {
            Some(room) => room.members.values().cloned().collect(),
            None => return,
        };
        let out = Outgoing {
            frame,
            event: Event::ReceiveMessage,
            job: None,
            changed_at_us: None,
        };
        for socket in targets {
            socket.push(out.clone(), self.limits, &self.metrics);
        }
    }

    /// Closes every socket of session `sid` with 4002.
    pub fn session_revoked(&self, sid: SessionId) {
        let sockets: Vec<Arc<Socket>> = {
            let state = self.state();
            state
                .by_session
                .get(&sid)
                .into_iter()
                .flatten()
                .filter_map(|id| state.sockets.get(id).map(|m| m.socket.clone()))
                .collect()
        };
        for socket in sockets {
            socket.close(Closing {
                code: close::SESSION_REVOKED,
                reason: "session revoked: sign in again",
            });
        }
    }

    /// Closes every local socket of `user` (but `except`) with `closing`: their account is
    /// gone.
    pub fn close_user(&self, user: Uuid, except: Option<SocketId>, closing: Closing) {
        let sockets: Vec<Arc<Socket>> = self
            .state()
            .by_user
            .get(&user)
            .into_iter()
            .flatten()
            .filter(|s| Some(s.id) != except)
            .cloned()
            .collect();
        for socket in sockets {
            socket.close(closing.clone());
        }
    }

    /// The local sessions (to re-check against the revocation list after a Redis outage).
    pub fn sessions(&self) -> Vec<SessionId> {
        self.state().by_session.keys().copied().collect()
    }

    /// Starts shutdown: refuses new sockets and asks every socket to close with 1001.
    pub fn close_all(&self) {
        self.closed.store(true, Ordering::Release);
        let sockets: Vec<Arc<Socket>> = {
            let mut state = self.state();
            state.shutting_down = true;
            state.sockets.values().map(|m| m.socket.clone()).collect()
        };
        for socket in sockets {
            socket.close(Closing {
                code: close::GOING_AWAY,
                reason: "server shutting down: reconnect",
            });
        }
    }

    /// Resolves when no socket is left (after [`Hub::close_all`]).
    pub async fn drained(&self) {
        loop {
            let wait = self.drained.notified();
            if self.state().sockets.is_empty() {
                return;
            }
            wait.await;
        }
    }

    /// Number of local sockets.
    pub fn socket_count(&self) -> usize {
        self.state().sockets.len()
    }
}

fn remove_session(state: &mut State, sid: SessionId, id: SocketId) {
    if let Entry::Occupied(mut ids) = state.by_session.entry(sid) {
        ids.get_mut().retain(|s| *s != id);
        if ids.get().is_empty() {
            ids.remove();
        }
    }
}
