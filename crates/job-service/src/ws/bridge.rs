//! The replica's one Redis pub/sub connection: subscribes to what local sockets need (as the
//! [`Hub`] asks), hands every message to the hub, and after Redis goes away reconnects with
//! backoff and subscribes again to everything, by itself, while sockets stay open.
//!
//! Channels (under the `REDIS_PREFIX`):
//!
//! | channel | carries | subscribed while |
//! |---|---|---|
//! | `events:user:{user_id}` | `jobUpdated` frames of the user's jobs (published by the worker and the job service) | a local socket of the user, or a local `job:<id>` room of one of their jobs, exists |
//! | `events:user:*` (pattern) | the same, for every user | a local socket holds `admin:jobs` |
//! | `ws:room:{room}` | `receiveMessage` frames | a local socket holds the room |
//! | `sessions-revoked` | revoked session ids (published by the auth service) | always |
//!
//! A publish that matches both a subscribed channel and the pattern reaches this connection
//! twice, back to back (Redis serves channel subscribers, then pattern subscribers, of one
//! publish in one go); the second copy is dropped, so each socket gets each event once.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use access_token::RevocationList;
use bytestring::ByteString;
use domain::SessionId;
use futures_util::StreamExt as _;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::hub::Hub;
use super::protocol;

/// Something the replica listens to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subscription {
    /// A user's job events.
    User(Uuid),
    /// Every user's job events (a pattern).
    AllUsers,
    /// A room's messages.
    Room(String),
}

/// A request to the bridge, in the order the hub made it.
#[derive(Debug)]
pub enum Command {
    /// Start listening.
    Subscribe(Subscription),
    /// Stop listening.
    Unsubscribe(Subscription),
    /// Answer once everything asked before is in effect.
    Sync(oneshot::Sender<()>),
}

/// Channel names under one prefix.
#[derive(Debug, Clone)]
pub struct Channels {
    prefix: String,
    user_prefix: String,
    room_prefix: String,
    revoked: String,
    all_users: String,
}

impl Channels {
    /// The names under `prefix` (the `REDIS_PREFIX`).
    pub fn new(prefix: &str) -> Self {
        let user_prefix = job_queue::events_channel(prefix, Uuid::nil())
            .trim_end_matches(&Uuid::nil().to_string())
            .to_owned();
        Self {
            prefix: prefix.to_owned(),
            all_users: format!("{}*", escape_glob(&user_prefix)),
            user_prefix,
            room_prefix: format!("{prefix}ws:room:"),
            revoked: access_token::sessions_revoked_channel(prefix),
        }
    }

    /// The channel on which `room`'s messages are published.
    pub fn room(&self, room: &str) -> String {
        format!("{}{room}", self.room_prefix)
    }

    fn name(&self, subscription: &Subscription) -> String {
        match subscription {
            Subscription::User(user) => job_queue::events_channel(&self.prefix, *user),
            Subscription::AllUsers => self.all_users.clone(),
            Subscription::Room(room) => self.room(room),
        }
    }
}

/// Backslash-escapes the characters Redis patterns treat specially.
fn escape_glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// How often an otherwise quiet connection is checked with a PING.
const HEALTH_CHECK: Duration = Duration::from_secs(15);
/// How long a connect, subscribe or PING may take before the connection counts as lost.
const REDIS_TIMEOUT: Duration = Duration::from_secs(5);
/// First and longest wait between reconnection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Most channels in one SUBSCRIBE.
const SUBSCRIBE_BATCH: usize = 512;

/// The bridge's state, kept between runs: if the thread running it stops (an HTTP worker
/// restarted), the next one picks it up with the subscriptions wanted and the hub's queued
/// commands, reconnects and subscribes again to everything.
pub struct Bridge {
    client: redis::Client,
    channels: Channels,
    hub: Arc<Hub>,
    commands: mpsc::UnboundedReceiver<Command>,
    revocations: Option<RevocationList>,
    wanted: HashSet<Subscription>,
    waiting: Vec<oneshot::Sender<()>>,
    connected_before: bool,
}

impl Bridge {
    /// A bridge taking the hub's `commands`, not yet connected.
    pub fn new(
        client: redis::Client,
        channels: Channels,
        hub: Arc<Hub>,
        commands: mpsc::UnboundedReceiver<Command>,
        revocations: Option<RevocationList>,
    ) -> Self {
        Self {
            client,
            channels,
            hub,
            commands,
            revocations,
            wanted: HashSet::new(),
            waiting: Vec::new(),
            connected_before: false,
        }
    }
}

/// Runs the bridge for ever: connects, subscribes, routes, reconnects. Returns when the hub
/// is gone.
pub async fn run(bridge: &mut Bridge) {
    let Bridge {
        client,
        channels,
        hub,
        commands,
        revocations,
        wanted,
        waiting,
        connected_before,
    } = bridge;
    let mut backoff = BACKOFF_MIN;
    loop {
        let connection = tokio::time::timeout(REDIS_TIMEOUT, client.get_async_pubsub()).await;
        let (mut sink, stream) = match connection {
            Ok(Ok(pubsub)) => pubsub.split(),
            failure => {
                let error = match failure {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_owned(),
                };
                tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "real-time gateway: cannot reach Redis for pub/sub");
                // Keep up with the hub meanwhile, so the resubscription is exact.
                let deadline = tokio::time::sleep(backoff);
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        () = &mut deadline => break,
                        command = commands.recv() => match command {
                            Some(command) => note(wanted, waiting, command),
                            None => return,
                        },
                    }
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        let resubscribed = subscribe_all(&mut sink, channels, wanted).await;
        if let Err(error) = resubscribed {
            tracing::warn!(%error, "real-time gateway: subscribing failed; reconnecting");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
            continue;
        }
        backoff = BACKOFF_MIN;
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
        if *connected_before {
            hub.metrics().redis_reconnected();
            tracing::info!(
                subscriptions = wanted.len(),
                "real-time gateway: Redis pub/sub reconnected and resubscribed"
            );
            if let Some(revocations) = revocations.clone() {
                tokio::spawn(recheck_sessions(hub.clone(), revocations));
            }
        }
        *connected_before = true;
        let ended = serve(&mut sink, stream, channels, hub, commands, wanted, waiting).await;
        match ended {
            Ended::Commands => return,
            Ended::Connection(error) => {
                tracing::warn!(%error, "real-time gateway: Redis pub/sub connection lost; reconnecting");
            }
        }
    }
}

enum Ended {
    /// The hub is gone.
    Commands,
    /// The connection failed.
    Connection(String),
}

fn note(
    wanted: &mut HashSet<Subscription>,
    waiting: &mut Vec<oneshot::Sender<()>>,
    command: Command,
) {
    match command {
        Command::Subscribe(s) => {
            wanted.insert(s);
        }
        Command::Unsubscribe(s) => {
            wanted.remove(&s);
        }
        Command::Sync(done) => waiting.push(done),
    }
}

async fn subscribe_all(
    sink: &mut PubSubSink,
    channels: &Channels,
    wanted: &HashSet<Subscription>,
) -> Result<(), String> {
    let mut names = vec![channels.revoked.clone()];
    let mut pattern = false;
    for subscription in wanted {
        match subscription {
            Subscription::AllUsers => pattern = true,
            other => names.push(channels.name(other)),
        }
    }
    for batch in names.chunks(SUBSCRIBE_BATCH) {
        timed(sink.subscribe(batch)).await?;
    }
    if pattern {
        timed(sink.psubscribe(&channels.all_users)).await?;
    }
    Ok(())
}

async fn timed<F>(future: F) -> Result<(), String>
where
    F: std::future::Future<Output = redis::RedisResult<()>>,
{
    match tokio::time::timeout(REDIS_TIMEOUT, future).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("Redis did not answer in time".to_owned()),
    }
}

/// Applies a run of commands: consecutive subscribes (and unsubscribes) go in one command.
async fn apply(
    sink: &mut PubSubSink,
    channels: &Channels,
    batch: Vec<Command>,
    wanted: &mut HashSet<Subscription>,
    waiting: &mut Vec<oneshot::Sender<()>>,
) -> Result<(), String> {
    let mut subscribe: Vec<String> = Vec::new();
    let mut unsubscribe: Vec<String> = Vec::new();
    let mut done: Vec<oneshot::Sender<()>> = Vec::new();
    for command in batch {
        match command {
            Command::Subscribe(s) => {
                if !unsubscribe.is_empty() {
                    flush(sink, channels, &mut subscribe, &mut unsubscribe).await?;
                }
                wanted.insert(s.clone());
                subscribe.push(channels.name(&s));
            }
            Command::Unsubscribe(s) => {
                if !subscribe.is_empty() {
                    flush(sink, channels, &mut subscribe, &mut unsubscribe).await?;
                }
                wanted.remove(&s);
                unsubscribe.push(channels.name(&s));
            }
            Command::Sync(sender) => done.push(sender),
        }
    }
    flush(sink, channels, &mut subscribe, &mut unsubscribe).await?;
    for sender in done.into_iter().chain(waiting.drain(..)) {
        let _ = sender.send(());
    }
    Ok(())
}

async fn flush(
    sink: &mut PubSubSink,
    channels: &Channels,
    subscribe: &mut Vec<String>,
    unsubscribe: &mut Vec<String>,
) -> Result<(), String> {
    let pattern = |n: &String| *n == channels.all_users;
    if !subscribe.is_empty() {
        let (patterns, names): (Vec<String>, Vec<String>) = subscribe.drain(..).partition(pattern);
        for batch in names.chunks(SUBSCRIBE_BATCH) {
            timed(sink.subscribe(batch)).await?;
        }
        if !patterns.is_empty() {
            timed(sink.psubscribe(&channels.all_users)).await?;
        }
    }
    if !unsubscribe.is_empty() {
        let (patterns, names): (Vec<String>, Vec<String>) =
            unsubscribe.drain(..).partition(pattern);
        for batch in names.chunks(SUBSCRIBE_BATCH) {
            timed(sink.unsubscribe(batch)).await?;
        }
        if !patterns.is_empty() {
            timed(sink.punsubscribe(&channels.all_users)).await?;
        }
    }
    Ok(())
}

async fn serve(
    sink: &mut PubSubSink,
    mut stream: PubSubStream,
    channels: &Channels,
    hub: &Hub,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    wanted: &mut HashSet<Subscription>,
    waiting: &mut Vec<oneshot::Sender<()>>,
) -> Ended {
    let mut router = Router {
        channels,
        hub,
        twin: None,
    };
    let mut health = tokio::time::interval(HEALTH_CHECK);
    health.reset();
    loop {
        tokio::select! {
            message = stream.next() => match message {
                Some(message) => router.route(&message),
                None => return Ended::Connection("the connection closed".to_owned()),
            },
            command = commands.recv() => {
                let Some(first) = command else { return Ended::Commands };
                let mut batch = vec![first];
                while let Ok(more) = commands.try_recv() {
                    batch.push(more);
                }
                if let Err(error) = apply(sink, channels, batch, wanted, waiting).await {
                    return Ended::Connection(error);
                }
            }
            _ = health.tick() => {
                let ping = tokio::time::timeout(REDIS_TIMEOUT, sink.ping::<redis::Value>()).await;
                if !matches!(ping, Ok(Ok(_))) {
                    return Ended::Connection("PING went unanswered".to_owned());
                }
            }
        }
    }
}

/// Hands messages to the hub.
struct Router<'a> {
    channels: &'a Channels,
    hub: &'a Hub,
    /// The last channel message on a user channel, whose pattern copy may follow.
    twin: Option<(String, ByteString)>,
}

impl Router<'_> {
    fn route(&mut self, message: &redis::Msg) {
        let channel = message.get_channel_name();
        let Ok(text) = std::str::from_utf8(message.get_payload_bytes()) else {
            return;
        };
        let twin = self.twin.take();
        if channel.starts_with(&self.channels.user_prefix) {
            if message.from_pattern() && twin.is_some_and(|(c, p)| c == channel && &*p == text) {
                return;
            }
            let Some(head) = protocol::job_event_head(text) else {
                tracing::warn!(%channel, "real-time gateway: unreadable job event dropped");
                return;
            };
            // One copy of the payload, shared by every recipient (and the twin check).
            let frame = ByteString::from(text.to_owned());
            if !message.from_pattern() {
                self.twin = Some((channel.to_owned(), frame.clone()));
            }
            self.hub
                .job_event(head.user_id, head.id, head.updated_at_us, frame);
        } else if let Some(room) = channel.strip_prefix(&self.channels.room_prefix) {
            self.hub
                .room_message(room, ByteString::from(text.to_owned()));
        } else if channel == self.channels.revoked
            && let Ok(sid) = text.trim().parse::<Uuid>()
        {
            self.hub.session_revoked(SessionId(sid));
        }
    }
}

/// After an outage, asks the revocation list about every local session: a revocation
/// published while this replica was not listening would otherwise go unnoticed.
async fn recheck_sessions(hub: Arc<Hub>, revocations: RevocationList) {
    for sid in hub.sessions() {
        match revocations.is_revoked(sid).await {
            Ok(true) => hub.session_revoked(sid),
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(%error, "real-time gateway: cannot re-check revocations");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_under_a_prefix() {
        let channels = Channels::new("tv:");
        let user = Uuid::nil();
        assert_eq!(
            channels.name(&Subscription::User(user)),
            format!("tv:events:user:{user}")
        );
        assert_eq!(channels.name(&Subscription::AllUsers), "tv:events:user:*");
        assert_eq!(
            channels.name(&Subscription::Room("lobby".into())),
            "tv:ws:room:lobby"
        );
        assert_eq!(channels.revoked, "tv:sessions-revoked");
        assert_eq!(Channels::new("a*b:").all_users, "a\\*b:events:user:*");
    }
}
