//! Protocol profiles: what a session's handshake, readiness, liveness, requests and close
//! codes are.
//!
//! The lifecycle machine knows none of a protocol's frames. A profile implements
//! [`Protocol`]; the machine asks it what to write and how to read what arrived, and
//! keeps every timing, generation and reconnect rule to itself.

use std::time::Duration;

use crate::command::Endpoint;
use std::borrow::Cow;

use crate::event::{ProtocolError, ReconnectMode, RemoteError, RequestId};
use crate::frame::{CloseFrame, Frame, Utf8Bytes};
use crate::input::CloseCause;

pub mod discord;
pub mod openclaw;
pub mod plain;

/// Why a frame could not be read, by kind and place only. It never quotes the frame: a
/// peer's bytes may hold a secret (a token where an object was due), and reasons reach
/// logs and events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(Cow<'static, str>);

impl Malformed {
    /// A reason of ours (never the peer's bytes).
    pub fn new(reason: impl Into<Cow<'static, str>>) -> Self {
        Self(reason.into())
    }

    /// What was wrong with a frame's JSON, after `context`: serde's own message quotes the
    /// offending value, so only its kind and place are kept.
    pub fn unreadable(context: &str, e: &serde_json::Error) -> Self {
        use serde_json::error::Category;
        let kind = match e.classify() {
            Category::Syntax => "not JSON",
            Category::Eof => "JSON cut short",
            Category::Data => "a field missing or of the wrong type",
            Category::Io => "unreadable",
        };
        Self(Cow::Owned(format!(
            "{context}{kind} (line {}, column {})",
            e.line(),
            e.column()
        )))
    }

    /// The reason.
    pub fn reason(&self) -> &str {
        &self.0
    }
}

impl From<&'static str> for Malformed {
    fn from(reason: &'static str) -> Self {
        Self::new(reason)
    }
}

/// A session protocol spoken over the WebSocket.
///
/// Methods are called only for the current connection, in the order events happen on it:
/// [`on_open`](Self::on_open) once per socket, then [`on_frame`](Self::on_frame) per frame,
/// with [`handshake`](Self::handshake), [`heartbeat`](Self::heartbeat) and
/// [`encode_request`](Self::encode_request) when the machine needs those frames. A profile
/// never sees a frame of a stale socket.
pub trait Protocol {
    /// What the application receives for each message.
    type Message;
    /// What the application passes to [`Client::request`](crate::Client::request).
    /// Profiles without requests use [`std::convert::Infallible`].
    type Request;
    /// What a successful response carries.
    type Response;
    /// What the application answers a call of the peer's with
    /// ([`Client::answer`](crate::Client::answer)). Profiles whose peers make no calls use
    /// [`std::convert::Infallible`].
    type Answer;

    /// Where the next socket should connect (a resume URL, for example).
    fn endpoint(&self) -> Endpoint {
        Endpoint::Primary
    }

    /// Query parameters every URL of this protocol carries, each added only where the URL
    /// does not set it (Discord: `v=10`, `encoding=json`). The application's own query is
    /// kept as given, on the primary URL and on every URL the profile chooses.
    fn query_defaults(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    /// A new socket opened: reset per-connection state and say how the handshake starts.
    fn on_open(&mut self) -> OnOpen;

    /// The handshake frame (identify, resume, connect...), written by the machine when the
    /// socket opens ([`OnOpen::Handshake`]) or when the hello arrives. `None`: nothing to
    /// write.
    fn handshake(&mut self) -> Option<Frame>;

    /// Reads one frame of the current connection.
    fn on_frame(&mut self, frame: Frame) -> Inbound<Self::Message, Self::Response>;

    /// A further problem noticed while reading the last frame (a sequence gap on a
    /// dispatch that is still delivered, say). Drained after every `on_frame`.
    fn poll_protocol_error(&mut self) -> Option<ProtocolError> {
        None
    }

    /// How the peer's liveness is judged on this connection, as far as the profile knows
    /// it now. Asked again when the socket opens, after the hello and at ready.
    fn liveness(&self) -> Liveness;

    /// The next heartbeat frame. `None` when the peer does not support one on this
    /// connection (F6): then the machine sends none and never judges the peer by acks.
    fn heartbeat(&mut self) -> Option<Frame>;

    /// The frame that carries request `id`. The machine registers the request before the
    /// frame can be written, so a fast response is never missed.
    fn encode_request(&mut self, id: RequestId, request: Self::Request) -> Frame;

    /// How a close of the current socket is to be treated.
    fn classify_close(&self, cause: &CloseCause) -> CloseClass;

    /// The close frame the machine sends when it leaves a socket for `intent`.
    fn close_frame(&self, intent: CloseIntent) -> CloseFrame;

    /// Whether the next handshake would resume a session.
    fn can_resume(&self) -> bool;

    /// Forgets the resume state, so the next handshake starts a fresh session.
    fn clear_resume(&mut self);

    /// The socket asked for could not be opened.
    fn on_open_failed(&mut self) {}

    /// The current connection ended, after reaching ready or not.
    fn on_connection_end(&mut self, reached_ready: bool) {
        let _ = reached_ready;
    }

    /// The outbound rate limit the peer enforces per connection, if any.
    fn rate_limit(&self) -> Option<RateLimit> {
        None
    }

    /// The largest frame the peer accepts, as far as it has said: a larger send or request
    /// is refused before it is written, rather than written to be closed for.
    fn max_frame(&self) -> Option<usize> {
        None
    }

    /// The frame answering the peer's call `call` (the key given in [`Inbound::Call`]).
    /// `None`: the profile has no calls.
    fn encode_answer(&mut self, call: &Utf8Bytes, answer: Self::Answer) -> Option<Frame> {
        let _ = (call, answer);
        None
    }

    /// The frame the machine writes for a call the application left unanswered until just
    /// before the peer's timeout, so the peer never waits it out.
    fn encode_unanswered(&mut self, call: &Utf8Bytes) -> Option<Frame> {
        let _ = call;
        None
    }

    /// The close frame to leave an unresponsive peer with (a missed heartbeat, silence past
    /// its bound), for protocols whose peers expect to be told. `None`: the socket is
    /// aborted at once, since a close handshake would only wait for a dead peer. With a
    /// frame, the close handshake is bounded by the drain timeout like any other.
    fn unresponsive_close(&self) -> Option<CloseFrame> {
        None
    }

    /// How long the peer said to wait before the next connection, learnt on the connection
    /// that just closed (a restart announced with its expected duration): a floor on the
    /// next delay, within the configured `retry_after_max`.
    fn retry_hint(&self) -> Option<Duration> {
        None
    }
}

/// How the handshake starts once a socket opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnOpen {
    /// Ready at once; no handshake.
    Ready,
    /// Write [`Protocol::handshake`] now, then wait for [`Inbound::Ready`].
    Handshake,
    /// Wait for [`Inbound::Hello`], then write the handshake and wait for ready.
    AwaitHello,
}

/// How the machine judges the peer alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Liveness {
    /// Send [`Protocol::heartbeat`] this often and expect an ack before the next is due.
    pub heartbeat_interval: Option<Duration>,
    /// With no frame at all for this long, the peer is a zombie (for peers that send
    /// ticks of their own).
    pub silence_timeout: Option<Duration>,
    /// Any inbound frame acknowledges the outstanding heartbeat, for peers that ack late
    /// under load.
    pub any_frame_is_ack: bool,
}

/// What one inbound frame means, as the profile reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound<M, R> {
    /// A message for the application.
    Message(M),
    /// The server's hello: write the handshake now. Any interval it carried is reported
    /// by [`Protocol::liveness`] from here on.
    Hello,
    /// The handshake completed.
    Ready {
        /// Whether a session was resumed.
        resumed: bool,
        /// A message to hand to the application as well (the ready payload).
        message: Option<M>,
    },
    /// Acknowledges the outstanding heartbeat.
    HeartbeatAck,
    /// The server asks for a heartbeat now.
    HeartbeatRequest,
    /// The answer to request `id`.
    Response {
        /// The request answered.
        id: RequestId,
        /// Its payload, or the peer's error.
        result: Result<R, RemoteError>,
    },
    /// The server asks the client to reconnect (resuming).
    Reconnect,
    /// The server says the session is invalid.
    InvalidSession {
        /// Whether it may be resumed; if not, the machine clears the resume state.
        resumable: bool,
        /// How long to wait before the next attempt, drawn uniformly from this range.
        wait: (Duration, Duration),
    },
    /// The peer refused the handshake, and said whether and when to try again.
    Refused {
        /// What to do about it.
        refusal: Refusal,
        /// A message to hand to the application as well (a pairing request to approve).
        message: Option<M>,
    },
    /// The peer asks the application something, to be answered on this connection within
    /// `answer_within`; the machine answers with
    /// [`Protocol::encode_unanswered`] once that has passed.
    Call {
        /// What the profile needs to answer it (its wire id, say): opaque to the machine.
        key: Utf8Bytes,
        /// How long the peer waits for the answer.
        answer_within: Duration,
        /// The call, for the application.
        message: M,
    },
    /// A frame the profile consumed with no effect on the session.
    Ignored,
    /// A frame that broke the protocol: counted and reported; fatal ones end the connection.
    Error(ProtocolError),
}

/// A handshake the peer refused: what the session does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A passing condition (the peer is starting up): a new socket after the backoff, and
    /// not before `after` when the peer said.
    Retry {
        /// The peer's error.
        error: RemoteError,
        /// The peer's wait, a floor on the next delay.
        after: Option<Duration>,
    },
    /// Waiting on a person (a pairing to approve): a new socket within `wait`, a slow
    /// pace, so a pending approval never becomes a hot loop.
    Await {
        /// The peer's error.
        error: RemoteError,
        /// The range the next delay is drawn from (the backoff, if longer).
        wait: (Duration, Duration),
    },
    /// Retrying cannot help (bad credentials, a protocol the peer does not speak): stop.
    Stop(RemoteError),
}

/// What a close of the current socket means for the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseClass {
    /// Retrying cannot help: stop.
    Fatal,
    /// Reconnect with a new session.
    Fresh,
    /// Reconnect and resume.
    Resume,
}

/// Why the machine is closing a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseIntent {
    /// The client is shutting down.
    Shutdown,
    /// The socket is being replaced; the session is kept (`Resume`) or not (`Fresh`).
    Reconnect(ReconnectMode),
}

/// At most `max` frames per `per` on one connection, of which `reserved` are kept for the
/// machine's own frames (heartbeats, handshake), so application sends never starve them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    /// Frames allowed in any window of `per`.
    pub max: u32,
    /// The window.
    pub per: Duration,
    /// Of `max`, the slots application sends may not use.
    pub reserved: u32,
}

/// Resume, unless the server closed with one of `fatal` codes: the rule of profiles with no
/// session of their own.
pub(crate) fn fatal_or_resume(fatal: &[u16], cause: &CloseCause) -> CloseClass {
    match cause.code() {
        Some(code) if fatal.contains(&code) => CloseClass::Fatal,
        _ => CloseClass::Resume,
    }
}

/// A sequence number that only moves forward.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sequence {
    last: Option<u64>,
}

/// What a sequence number means for the frame that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InSequence {
    /// The next one: accept.
    Next,
    /// Later than the next: accept, and report the frames missed.
    Gap(ProtocolError),
    /// A repeat or a step back: drop the frame and report it.
    Stale(ProtocolError),
}

impl Sequence {
    pub(crate) fn new(last: Option<u64>) -> Self {
        Self { last }
    }

    pub(crate) fn last(&self) -> Option<u64> {
        self.last
    }

    /// Checks `seq` and, unless it is stale, moves forward to it. `what` names the stream
    /// in reports.
    pub(crate) fn advance(&mut self, seq: u64, what: &str) -> InSequence {
        let Some(last) = self.last else {
            self.last = Some(seq);
            return InSequence::Next;
        };
        if seq <= last {
            return InSequence::Stale(ProtocolError::new(Cow::Owned(format!(
                "{what} sequence {seq} after {last}: repeated or backwards, dropped"
            ))));
        }
        self.last = Some(seq);
        match seq - last {
            1 => InSequence::Next,
            step => InSequence::Gap(ProtocolError::new(Cow::Owned(format!(
                "{what} sequence gap: {} missing before {seq}",
                step - 1
            )))),
        }
    }
}
