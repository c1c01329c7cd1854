//! The WebSocket's two directions on actix-web's HTTP/1 connection, with actix-http's frame
//! codec and nothing per socket that an idle socket does not need.
//!
//! - [`Outbound`] is the `101` response's body: the connection pulls frames from the socket's
//!   outbox in the hub when it can write, so a routed frame wakes the connection directly
//!   (no channel, no hop through the socket's task), and a client that does not read leaves
//!   its frames in the bounded outbox, which is what overflows (1013).
//! - [`Inbound`] reads the client's frames from the request payload, joins fragmented
//!   messages, and keeps no buffer between frames.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_codec::Decoder as _;
use actix_http::body::{BodySize, MessageBody};
use actix_http::ws::{Codec, Frame, Item, ProtocolError};
use actix_web::web::{self, Bytes, BytesMut};
use bytestring::ByteString;
use futures_util::StreamExt as _;

use super::Gateway;
use super::hub::{Socket, Written};

/// A client frame, fragments joined.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// A text message.
    Text(ByteString),
    /// A binary message (not understood by the gateway).
    Binary,
    /// A ping, with its payload.
    Ping(Bytes),
    /// A pong.
    Pong,
    /// The client closes.
    Close,
}

/// The client → server direction.
pub struct Inbound {
    payload: web::Payload,
    /// Bytes read and not yet a whole frame; released (not kept allocated) when empty.
    buf: BytesMut,
    codec: Codec,
    /// The fragments of a message in progress.
    fragments: Vec<Bytes>,
    fragments_len: usize,
    fragments_text: bool,
    /// A fragmented message went over the limit: its remaining fragments are skipped.
    skipping: bool,
    max: usize,
    ended: bool,
}

impl Inbound {
    /// Reads frames from `payload`; frames and joined messages over `max` bytes are refused
    /// with [`ProtocolError::Overflow`].
    pub fn new(payload: web::Payload, max: usize) -> Self {
        Self {
            payload,
            buf: BytesMut::new(),
            codec: Codec::new().max_size(max),
            fragments: Vec::new(),
            fragments_len: 0,
            fragments_text: false,
            skipping: false,
            max,
            ended: false,
        }
    }

    /// The next client message; `None` once the client's side has ended. Cancel-safe: bytes
    /// read are kept in `self` until a frame is whole.
    pub async fn next(&mut self) -> Option<Result<Received, ProtocolError>> {
        loop {
            match self.codec.decode(&mut self.buf) {
                Err(error) => return Some(Err(error)),
                Ok(Some(frame)) => {
                    if let Some(message) = self.message(frame) {
                        return Some(message);
                    }
                    continue;
                }
                Ok(None) => {}
            }
            if self.buf.is_empty() {
                // An idle socket keeps no read buffer.
                self.buf = BytesMut::new();
            }
            if self.ended {
                return None;
            }
            match self.payload.next().await {
                Some(Ok(bytes)) => self.buf.extend_from_slice(&bytes),
                Some(Err(error)) => return Some(Err(ProtocolError::Io(io::Error::other(error)))),
                None => self.ended = true,
            }
        }
    }

    /// A frame as a message, or `None` for a fragment that does not end one.
    fn message(&mut self, frame: Frame) -> Option<Result<Received, ProtocolError>> {
        let whole = match frame {
            Frame::Text(bytes) => return Some(text(bytes)),
            Frame::Binary(_) => return Some(Ok(Received::Binary)),
            Frame::Ping(bytes) => return Some(Ok(Received::Ping(bytes))),
            Frame::Pong(_) => return Some(Ok(Received::Pong)),
            Frame::Close(_) => return Some(Ok(Received::Close)),
            Frame::Continuation(item) => match item {
                Item::FirstText(bytes) => return self.start_fragments(true, bytes),
                Item::FirstBinary(bytes) => return self.start_fragments(false, bytes),
                Item::Continue(bytes) => return self.add_fragment(bytes),
                Item::Last(bytes) => {
                    if let Some(refused) = self.add_fragment(bytes) {
                        return Some(refused);
                    }
                    if std::mem::take(&mut self.skipping) {
                        return None;
                    }
                    let mut joined = BytesMut::with_capacity(self.fragments_len);
                    for part in self.fragments.drain(..) {
                        joined.extend_from_slice(&part);
                    }
                    self.fragments = Vec::new();
                    self.fragments_len = 0;
                    joined.freeze()
                }
            },
        };
        Some(if self.fragments_text {
            text(whole)
        } else {
            Ok(Received::Binary)
        })
    }

    /// Starts a fragmented message (text or binary) with its first fragment.
    fn start_fragments(
        &mut self,
        text: bool,
        bytes: Bytes,
    ) -> Option<Result<Received, ProtocolError>> {
        self.fragments_text = text;
        self.fragments.clear();
        self.fragments_len = 0;
        self.skipping = false;
        self.add_fragment(bytes)
    }

    /// Adds a fragment; `Some` refuses the message (over the limit).
    fn add_fragment(&mut self, bytes: Bytes) -> Option<Result<Received, ProtocolError>> {
        if self.skipping {
            return None;
        }
        self.fragments_len += bytes.len();
        if self.fragments_len > self.max {
            self.fragments = Vec::new();
            self.fragments_len = 0;
            self.skipping = true;
            return Some(Err(ProtocolError::Overflow));
        }
        if !bytes.is_empty() {
            self.fragments.push(bytes);
        }
        None
    }
}

fn text(bytes: Bytes) -> Result<Received, ProtocolError> {
    ByteString::try_from(bytes)
        .map(Received::Text)
        .map_err(|error| ProtocolError::Io(io::Error::new(io::ErrorKind::InvalidData, error)))
}

/// The server → client direction: the `101` response's body.
pub struct Outbound {
    socket: Arc<Socket>,
    gateway: Arc<Gateway>,
    codec: Codec,
}

impl Outbound {
    /// The body writing `socket`'s frames.
    pub fn new(socket: Arc<Socket>, gateway: Arc<Gateway>) -> Self {
        Self {
            socket,
            gateway,
            codec: Codec::new(),
        }
    }
}

impl MessageBody for Outbound {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        let mut buf = BytesMut::new();
        match this.socket.write(
            &mut this.codec,
            &mut buf,
            this.gateway.hub.metrics(),
            cx.waker(),
        ) {
            Written::Frames => Poll::Ready(Some(Ok(buf.freeze()))),
            Written::Nothing => Poll::Pending,
            Written::Finished => Poll::Ready(None),
        }
    }
}

impl Drop for Outbound {
    fn drop(&mut self) {
        // The connection ended (or the response was dropped): the socket's task must end too.
        self.socket.connection_gone();
    }
}
