//! The frames of `GET /api/ws` (section 5 of the contract): what a client may send, what the
//! server answers, room names and the close codes.
//!
//! Every frame is a JSON text `{"event": "...", "data": {...}}`.

use bytestring::ByteString;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

/// Close codes the gateway uses (RFC 6455 ones and the project's own 4xxx ones).
pub mod close {
    /// The server is shutting down: reconnect (to another replica).
    pub const GOING_AWAY: u16 = 1001;
    /// An inbound frame was larger than the hard frame limit (64 KiB).
    pub const TOO_BIG: u16 = 1009;
    /// The client did not read its frames fast enough: reconnect and re-read the state.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// The access token expired and no fresh one was sent with `authenticate`: get a new
    /// access token (refresh), then reconnect.
    pub const TOKEN_EXPIRED: u16 = 4001;
    /// The session was revoked (logout, password change or reset, refresh-token reuse): sign in
    /// again; do not reconnect with the same token.
    pub const SESSION_REVOKED: u16 = 4002;
    /// Two pings went without any answer from the client.
    pub const PING_TIMEOUT: u16 = 4008;
}

/// `error` codes, stable strings a client can switch on.
pub mod code {
    /// The frame is not a JSON object with a string `event`, or its `data` lacks a field.
    pub const BAD_FRAME: &str = "bad_frame";
    /// The `event` is not one the server knows.
    pub const UNKNOWN_EVENT: &str = "unknown_event";
    /// A `sendMessage` text over 4 KiB.
    pub const MESSAGE_TOO_LARGE: &str = "message_too_large";
    /// An inbound frame over `WS_MAX_FRAME_BYTES`.
    pub const FRAME_TOO_LARGE: &str = "frame_too_large";
    /// The room is not open to this user, or the socket does not hold it (`sendMessage`).
    pub const FORBIDDEN: &str = "forbidden";
    /// The room name does not match `[A-Za-z0-9:_-]{1,64}`.
    pub const INVALID_ROOM: &str = "invalid_room";
    /// An admin asked for `job:<id>` of a job that does not exist.
    pub const NOT_FOUND: &str = "not_found";
    /// More frames per second than `WS_MESSAGES_PER_SEC`.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// The socket already holds `WS_MAX_ROOMS` rooms.
    pub const TOO_MANY_ROOMS: &str = "too_many_rooms";
    /// `authenticate` with a token that is not valid (or revoked, or expired).
    pub const INVALID_TOKEN: &str = "invalid_token";
    /// A dependency (PostgreSQL, Redis) did not answer; try again.
    pub const UNAVAILABLE: &str = "unavailable";
}

/// The longest `sendMessage` text, in bytes of UTF-8.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// The longest room name.
pub const MAX_ROOM_LEN: usize = 64;

/// A frame from the client, parsed.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound {
    /// `joinRoom {room}`.
    Join(String),
    /// `leaveRoom {room}`.
    Leave(String),
    /// `sendMessage {room, message}`.
    Send {
        /// The room.
        room: String,
        /// The text (checked against [`MAX_MESSAGE_BYTES`] by the caller).
        message: String,
    },
    /// `authenticate {token}`.
    Authenticate(String),
}

/// Why a frame could not be understood: the `error` to answer (the socket stays open).
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    /// One of [`code`].
    pub code: &'static str,
    /// What to do about it.
    pub message: String,
}

impl Refusal {
    fn bad(message: impl Into<String>) -> Self {
        Self {
            code: code::BAD_FRAME,
            message: message.into(),
        }
    }
}

#[derive(Deserialize)]
struct RawFrame {
    event: String,
    #[serde(default)]
    data: Value,
}

#[derive(Deserialize)]
struct RoomData {
    room: String,
}

#[derive(Deserialize)]
struct SendData {
    room: String,
    message: String,
}

#[derive(Deserialize)]
struct TokenData {
    token: String,
}

/// Parses a text frame.
pub fn parse(text: &str) -> Result<Inbound, Refusal> {
    let frame: RawFrame = serde_json::from_str(text).map_err(|_| {
        Refusal::bad(r#"Frames are JSON objects: {"event": "...", "data": {...}}."#)
    })?;
    fn data<T: serde::de::DeserializeOwned>(
        event: &str,
        data: Value,
        shape: &str,
    ) -> Result<T, Refusal> {
        serde_json::from_value(data)
            .map_err(|_| Refusal::bad(format!("`{event}` needs data {shape}.")))
    }
    match frame.event.as_str() {
        "joinRoom" => Ok(Inbound::Join(
            data::<RoomData>("joinRoom", frame.data, r#"{"room": string}"#)?.room,
        )),
        "leaveRoom" => Ok(Inbound::Leave(
            data::<RoomData>("leaveRoom", frame.data, r#"{"room": string}"#)?.room,
        )),
        "sendMessage" => {
            let send: SendData = data(
                "sendMessage",
                frame.data,
                r#"{"room": string, "message": string}"#,
            )?;
            Ok(Inbound::Send {
                room: send.room,
                message: send.message,
            })
        }
        "authenticate" => Ok(Inbound::Authenticate(
            data::<TokenData>("authenticate", frame.data, r#"{"token": string}"#)?.token,
        )),
        other => Err(Refusal {
            code: code::UNKNOWN_EVENT,
            message: format!(
                "Unknown event `{}`; send joinRoom, leaveRoom, sendMessage or authenticate.",
                other.chars().take(64).collect::<String>()
            ),
        }),
    }
}

/// What a room name means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomKind {
    /// `job:<uuid>`: that job's events and messages; its owner and admins only.
    Job(Uuid),
    /// `job:<not a uuid>`: names no job, so nobody may join.
    NoSuchJob,
    /// `admin:*`: admins only (`admin:jobs` also carries every user's job events).
    Admin,
    /// Anything else: a chat room open to every signed-in user.
    Open,
}

/// The room every user's job events go to when an admin holds it.
pub const ADMIN_JOBS: &str = "admin:jobs";

/// Checks a room name against `[A-Za-z0-9:_-]{1,64}` and returns its canonical form (job rooms
/// with a lower-case hyphenated id) and kind.
pub fn room(name: &str) -> Result<(String, RoomKind), Refusal> {
    let valid = !name.is_empty()
        && name.len() <= MAX_ROOM_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-'));
    if !valid {
        return Err(Refusal {
            code: code::INVALID_ROOM,
            message: "Room names are 1 to 64 characters among A-Z, a-z, 0-9, ':', '_' and '-'."
                .to_owned(),
        });
    }
    if let Some(id) = name.strip_prefix("job:") {
        return Ok(match Uuid::parse_str(id) {
            Ok(id) => (job_room(id), RoomKind::Job(id)),
            Err(_) => (name.to_owned(), RoomKind::NoSuchJob),
        });
    }
    let kind = if name.starts_with("admin:") {
        RoomKind::Admin
    } else {
        RoomKind::Open
    };
    Ok((name.to_owned(), kind))
}

/// The room of one job.
pub fn job_room(id: Uuid) -> String {
    format!("job:{id}")
}

/// `{"event": event, "data": data}` as a text frame.
pub fn frame(event: &str, data: Value) -> ByteString {
    ByteString::from(json!({"event": event, "data": data}).to_string())
}

/// `joined {room}`.
pub fn joined(room: &str) -> ByteString {
    frame("joined", json!({"room": room}))
}

/// `left {room}`.
pub fn left(room: &str) -> ByteString {
    frame("left", json!({"room": room}))
}

/// `error {code, message}`, with the room when the error is about one.
pub fn error(code: &str, message: &str, room: Option<&str>) -> ByteString {
    let mut data = json!({"code": code, "message": message});
    if let (Some(room), Some(map)) = (room, data.as_object_mut()) {
        map.insert("room".to_owned(), Value::from(room));
    }
    frame("error", data)
}

/// `authenticated {expires_at}`: the answer to a successful `authenticate`.
pub fn authenticated(expires_at: i64) -> ByteString {
    let at = chrono::DateTime::from_timestamp(expires_at, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    frame("authenticated", json!({"expires_at": at}))
}

/// The fields of a published `jobUpdated` event that routing needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobEventHead {
    /// The job.
    pub id: Uuid,
    /// Its owner.
    pub user_id: Uuid,
    /// `updated_at` in microseconds since the epoch, when present.
    pub updated_at_us: Option<i64>,
}

#[derive(Deserialize)]
struct PublishedEvent {
    data: PublishedData,
}

#[derive(Deserialize)]
struct PublishedData {
    job: PublishedJob,
}

#[derive(Deserialize)]
struct PublishedJob {
    id: Uuid,
    user_id: Uuid,
    #[serde(default)]
    updated_at: Option<String>,
}

/// Reads the routing fields of a `jobUpdated` frame as the worker and the job service publish
/// it (`{"event": "jobUpdated", "data": {"job": {...}}}`); other fields are skipped unparsed.
pub fn job_event_head(payload: &str) -> Option<JobEventHead> {
    let event: PublishedEvent = serde_json::from_str(payload).ok()?;
    let job = event.data.job;
    Some(JobEventHead {
        id: job.id,
        user_id: job.user_id,
        updated_at_us: job
            .updated_at
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.timestamp_micros()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_four_client_events() {
        assert_eq!(
            parse(r#"{"event":"joinRoom","data":{"room":"a"}}"#),
            Ok(Inbound::Join("a".into()))
        );
        assert_eq!(
            parse(r#"{"event":"leaveRoom","data":{"room":"a"}}"#),
            Ok(Inbound::Leave("a".into()))
        );
        assert_eq!(
            parse(r#"{"event":"sendMessage","data":{"room":"a","message":"hi"}}"#),
            Ok(Inbound::Send {
                room: "a".into(),
                message: "hi".into()
            })
        );
        assert_eq!(
            parse(r#"{"event":"authenticate","data":{"token":"t"}}"#),
            Ok(Inbound::Authenticate("t".into()))
        );
    }

    #[test]
    fn refuses_bad_frames_and_unknown_events() {
        for text in ["nope", "[]", r#"{"data":{}}"#, r#"{"event":1}"#] {
            assert_eq!(
                parse(text).map_err(|r| r.code),
                Err(code::BAD_FRAME),
                "{text}"
            );
        }
        assert_eq!(
            parse(r#"{"event":"joinRoom","data":{"room":5}}"#).map_err(|r| r.code),
            Err(code::BAD_FRAME)
        );
        assert_eq!(
            parse(r#"{"event":"dance","data":{}}"#).map_err(|r| r.code),
            Err(code::UNKNOWN_EVENT)
        );
    }

    #[test]
    fn room_names() {
        assert_eq!(room("lobby-1_a:b").map(|r| r.1), Ok(RoomKind::Open));
        assert_eq!(room("admin:jobs").map(|r| r.1), Ok(RoomKind::Admin));
        let id = Uuid::now_v7();
        let upper = format!("job:{}", id.to_string().to_uppercase());
        assert_eq!(room(&upper), Ok((job_room(id), RoomKind::Job(id))));
        assert_eq!(room("job:42").map(|r| r.1), Ok(RoomKind::NoSuchJob));
        for bad in ["", "a b", "é", &"x".repeat(65), "a/b"] {
            assert_eq!(
                room(bad).map_err(|r| r.code),
                Err(code::INVALID_ROOM),
                "{bad}"
            );
        }
        assert!(room(&"x".repeat(64)).is_ok());
    }

    #[test]
    fn reads_the_routing_fields_of_a_published_event() {
        let id = Uuid::now_v7();
        let user = Uuid::now_v7();
        let payload = job_queue::job_updated_event(&json!({
            "id": id, "user_id": user, "data": {"big": [1, 2, 3]},
            "updated_at": "2026-12-01T12:00:00.123Z"
        }));
        let head = job_event_head(&payload);
        assert_eq!(
            head,
            Some(JobEventHead {
                id,
                user_id: user,
                updated_at_us: Some(1_796_126_400_123_000)
            })
        );
        assert_eq!(job_event_head("{}"), None);
    }
}
