//! What the machine tells the application.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use crate::conn::ConnId;
use crate::frame::Frame;
use crate::input::{CloseCause, OpenError};

/// Whether a reconnect keeps the session (resume) or starts a new one (fresh).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReconnectMode {
    /// Keep the resume state: the next handshake resumes where the profile can.
    Resume,
    /// Clear the resume state before the next handshake: identify afresh.
    Fresh,
}

impl ReconnectMode {
    /// Two requests merged: fresh wins over resume.
    pub fn merge(self, other: Self) -> Self {
        if self == Self::Fresh || other == Self::Fresh {
            Self::Fresh
        } else {
            Self::Resume
        }
    }
}

/// The phase of the client machine, without its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Not started.
    Idle,
    /// A socket was asked for and has not opened yet.
    Connecting,
    /// The socket is open; the profile's handshake is in progress.
    Handshaking,
    /// The session is up: application traffic flows.
    Ready,
    /// A socket the machine is leaving is closing; nothing new opens until it is gone.
    Draining,
    /// Waiting before the next attempt.
    Backoff,
    /// Terminal: nothing is ever emitted again.
    Stopped,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Why the machine changed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The machine was created.
    Created,
    /// The application asked to connect.
    UserConnect,
    /// The application asked to reconnect.
    UserReconnect(ReconnectMode),
    /// The application asked to shut down.
    UserShutdown,
    /// The application asked to probe the peer and it did not answer in time.
    ProbeFailed,
    /// The socket opened.
    Opened,
    /// The handshake was written (on open, or after the server's hello).
    HandshakeSent,
    /// A fresh session waits for the start gate's grant.
    StartRequested,
    /// The socket could not be opened.
    OpenFailed(OpenError),
    /// The socket did not open within the connect timeout.
    ConnectTimeout,
    /// The server's hello did not arrive within the hello timeout.
    HelloTimeout,
    /// The handshake did not complete within the ready timeout.
    ReadyTimeout,
    /// The handshake completed.
    Ready {
        /// Whether the session was resumed rather than started afresh.
        resumed: bool,
    },
    /// The socket closed.
    Closed(CloseCause),
    /// The server asked the client to reconnect.
    ServerReconnect,
    /// The server said the session is invalid.
    InvalidSession {
        /// Whether the server allows resuming it.
        resumable: bool,
    },
    /// A heartbeat fell due while the previous one was unacknowledged.
    Zombie,
    /// Nothing arrived within the profile's silence bound (missed server ticks).
    Silent,
    /// The peer broke the protocol in a way the connection cannot survive.
    ProtocolError(ProtocolError),
    /// The session start gate did not grant the start in time.
    StartTimeout,
    /// The socket being left finished closing.
    Drained,
    /// The socket being left did not close in time and was aborted.
    DrainTimeout,
    /// An aborted socket was not reported closed within the grace and was abandoned.
    Abandoned,
    /// The backoff delay elapsed.
    BackoffElapsed,
    /// Every attempt allowed by `max_attempts` failed.
    GaveUp,
    /// The peer refused the handshake with this error.
    Refused(RemoteError),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Created => f.write_str("created"),
            Self::UserConnect => f.write_str("connect requested"),
            Self::UserReconnect(ReconnectMode::Resume) => f.write_str("reconnect requested"),
            Self::UserReconnect(ReconnectMode::Fresh) => f.write_str("fresh reconnect requested"),
            Self::UserShutdown => f.write_str("shutdown requested"),
            Self::ProbeFailed => f.write_str("probe unanswered"),
            Self::Opened => f.write_str("socket opened"),
            Self::HandshakeSent => f.write_str("handshake sent"),
            Self::StartRequested => f.write_str("waiting for the session start gate"),
            Self::OpenFailed(e) => write!(f, "open failed: {e}"),
            Self::ConnectTimeout => f.write_str("connect timeout"),
            Self::HelloTimeout => f.write_str("hello timeout"),
            Self::ReadyTimeout => f.write_str("ready timeout"),
            Self::Ready { resumed: true } => f.write_str("resumed"),
            Self::Ready { resumed: false } => f.write_str("ready"),
            Self::Closed(c) => write!(f, "closed: {c}"),
            Self::ServerReconnect => f.write_str("server requested reconnect"),
            Self::InvalidSession { resumable } => {
                write!(f, "invalid session (resumable: {resumable})")
            }
            Self::Zombie => f.write_str("zombie connection: heartbeat unacknowledged"),
            Self::Silent => f.write_str("zombie connection: peer silent"),
            Self::ProtocolError(e) => write!(f, "protocol error: {e}"),
            Self::StartTimeout => f.write_str("session start not granted in time"),
            Self::Drained => f.write_str("old socket closed"),
            Self::DrainTimeout => f.write_str("drain timeout: aborted"),
            Self::Abandoned => f.write_str("aborted socket abandoned"),
            Self::BackoffElapsed => f.write_str("backoff elapsed"),
            Self::GaveUp => f.write_str("gave up: max attempts reached"),
            Self::Refused(e) => write!(f, "handshake refused: {e}"),
        }
    }
}

/// One state change, as a structured record for metrics and for replaying a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The phase left.
    pub from: Phase,
    /// The phase entered (may equal `from` when only the data changed, as when a drain
    /// turns into an abort).
    pub to: Phase,
    /// Why.
    pub reason: Reason,
    /// The generation the new state is about, if any.
    pub conn: Option<ConnId>,
    /// The attempt number of the current connection streak (1 for the first attempt).
    pub attempt: u32,
    /// The delay before the next attempt, when entering backoff.
    pub next_delay: Option<Duration>,
}

/// Why the machine stopped for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The application shut the client down.
    Shutdown,
    /// The server closed with a code the profile classifies as fatal: retrying cannot help.
    Fatal(CloseCause),
    /// The upgrade was refused with a status configured as final (401, 403 and redirects by
    /// default; a redirect names its location in the error).
    Rejected(OpenError),
    /// The peer refused the handshake in a way retrying cannot mend (credentials it does
    /// not accept, a protocol it does not speak).
    Refused(RemoteError),
    /// `max_attempts` consecutive attempts failed.
    GaveUp {
        /// How many attempts were made.
        attempts: u32,
    },
    /// The task driving the machine ended without a stop: code it ran panicked (a start
    /// gate, say) or its runtime shut down. Never emitted by the machine itself: an adapter
    /// ends the event stream with it, so the application always sees a stop and why.
    DriverGone,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Shutdown => f.write_str("shutdown"),
            Self::Fatal(c) => write!(f, "fatal close: {c}"),
            Self::Rejected(e) => write!(f, "rejected: {e}"),
            Self::Refused(e) => write!(f, "handshake refused: {e}"),
            Self::GaveUp { attempts } => write!(f, "gave up after {attempts} attempts"),
            Self::DriverGone => f.write_str("the driver ended without stopping"),
        }
    }
}

/// Identifies one application send, so a frame handed back can be matched to its send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SendId(pub(crate) u64);

impl SendId {
    /// The id of a frame the machine never took (an adapter hands such a frame back, as
    /// when it was fed after the client stopped). No send the machine accepts has it.
    pub const UNASSIGNED: Self = Self(0);

    /// The number of this send; strictly increasing per machine, from 1.
    pub const fn get(self) -> u64 {
        self.0
    }
}

/// Why an application frame was handed back unsent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReturnReason {
    /// The machine stopped (shutdown, fatal close, gave up) before it could be sent.
    Stopped,
    /// Its time to live passed while it waited.
    Expired,
    /// The queue was full and the policy drops the oldest frame to make room.
    Overflow,
    /// A newer send with the same coalescing key took its place.
    Replaced,
    /// It was refused when sent through [`Client::send_or_return`](crate::Client::send_or_return),
    /// for this reason.
    Refused(crate::error::SendErrorKind),
}

/// A frame the profile could not accept: malformed JSON, an unknown opcode, a missing
/// field, a sequence going backwards. Counted in
/// [`Stats::protocol_errors`](crate::Stats::protocol_errors) and reported; never a panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    /// What was wrong.
    pub reason: Cow<'static, str>,
    /// Whether the connection cannot carry on: the machine then recycles it (resuming).
    pub fatal: bool,
}

impl ProtocolError {
    /// An error the connection survives.
    pub fn new(reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            reason: reason.into(),
            fatal: false,
        }
    }

    /// An error that ends the connection.
    pub fn fatal(reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            reason: reason.into(),
            fatal: true,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Identifies one request, from [`Client::request`](crate::Client::request) to its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub(crate) u64);

impl RequestId {
    /// Builds an id from its number, for profiles decoding a response.
    pub const fn new(n: u64) -> Self {
        Self(n)
    }

    /// The number of this request; strictly increasing per machine, from 1.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "req#{}", self.0)
    }
}

/// An error the peer answered a request with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteError {
    /// The peer's error code, as text.
    pub code: String,
    /// The peer's message.
    pub message: String,
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for RemoteError {}

/// How a request ended. Every request has exactly one outcome (I6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<R> {
    /// The peer answered on the connection that carried the request.
    Response(R),
    /// The peer answered with an error.
    Remote(RemoteError),
    /// It never left the queue before its connection ended: safe to retry.
    NotSent,
    /// It was written, then its connection ended before an answer: it may or may not have
    /// taken effect; the application decides.
    Unknown,
    /// No answer within its timeout.
    TimedOut,
    /// The client stopped first.
    Stopped,
}

/// Something the application should know, in the order it happened.
///
/// `M` is the profile's message type ([`Protocol::Message`](crate::Protocol::Message)), `R`
/// its response type ([`Protocol::Response`](crate::Protocol::Response)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<M, R = std::convert::Infallible> {
    /// The machine changed state.
    Transition(Transition),
    /// A socket is being opened.
    Connecting {
        /// Its generation.
        conn: ConnId,
        /// The attempt number in the current streak, from 1.
        attempt: u32,
    },
    /// The session is up; queued sends are flushed right after this event.
    Ready {
        /// The generation carrying the session.
        conn: ConnId,
        /// Whether the session was resumed.
        resumed: bool,
    },
    /// A message for the application, from the current connection.
    Message {
        /// The generation it arrived on (always the current one).
        conn: ConnId,
        /// The message.
        message: M,
    },
    /// A connection that had opened stopped carrying traffic.
    Disconnected {
        /// Its generation.
        conn: ConnId,
        /// Why.
        reason: Reason,
    },
    /// The machine will open a new socket after `delay`.
    Reconnecting {
        /// How long it waits first (zero: at once).
        delay: Duration,
        /// The number of the attempt to come.
        attempt: u32,
        /// Whether the next handshake will try to resume.
        resume: bool,
        /// What ended the previous connection or attempt.
        reason: Reason,
    },
    /// An application frame left the queue without being sent. Nothing leaves the queue
    /// without this event or a `Send` command.
    Returned {
        /// The id `send` returned for it.
        id: SendId,
        /// The frame, handed back whole.
        frame: Frame,
        /// Why it was not sent.
        reason: ReturnReason,
    },
    /// A frame on the current connection broke the protocol.
    ProtocolError {
        /// The generation it arrived on.
        conn: ConnId,
        /// What was wrong.
        error: ProtocolError,
    },
    /// The peer asks the application something (an invoke of a node): answer it with
    /// [`Client::answer`](crate::Client::answer) on the connection it came on, before the
    /// peer's timeout, or the machine answers that it went unanswered.
    Call {
        /// The id to answer with; it names the connection the call came on.
        id: crate::peer_calls::CallId,
        /// The call.
        message: M,
    },
    /// A request ended.
    Response {
        /// The id `request` returned.
        id: RequestId,
        /// How it ended.
        outcome: Outcome<R>,
    },
    /// The machine stopped for good. Nothing follows this event.
    Stopped {
        /// Why.
        reason: StopReason,
    },
}
