//! What happened on a socket: the inputs an adapter feeds to the machine.

use std::fmt;
use std::time::Duration;

use crate::conn::ConnId;
use crate::frame::{CloseFrame, Frame};

/// Something that happened to the socket of one generation.
///
/// Every input names the [`ConnId`] of the socket it came from. The adapter forwards inputs
/// of every socket as they are, stale or not: the machine decides what is stale, drops it
/// and counts it in [`Stats::stale_inputs`](crate::Stats::stale_inputs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The socket asked for by `Open(conn)` is open and upgraded.
    Opened {
        /// The generation that opened.
        conn: ConnId,
    },
    /// The socket asked for by `Open(conn)` could not be opened.
    OpenFailed {
        /// The generation that failed.
        conn: ConnId,
        /// Why, and any retry hint from the server.
        error: OpenError,
    },
    /// A frame arrived on the socket.
    Frame {
        /// The generation it arrived on.
        conn: ConnId,
        /// The frame.
        frame: Frame,
    },
    /// The session start gate grants the start asked for by `RequestStart(conn)`.
    StartGranted {
        /// The generation the grant is for; a grant for an older one is stale.
        conn: ConnId,
    },
    /// The socket is gone, after a close handshake, an error or an abort.
    Closed {
        /// The generation that closed.
        conn: ConnId,
        /// How it ended.
        cause: CloseCause,
    },
}

impl Input {
    /// The generation this input belongs to.
    pub fn conn(&self) -> ConnId {
        match self {
            Self::Opened { conn }
            | Self::OpenFailed { conn, .. }
            | Self::Frame { conn, .. }
            | Self::StartGranted { conn }
            | Self::Closed { conn, .. } => *conn,
        }
    }
}

/// Why a socket could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenError {
    /// The kind of failure.
    pub kind: OpenErrorKind,
    /// A delay the server asked for (an HTTP `Retry-After` on the upgrade response). The
    /// machine waits at least this long, up to `Config::retry_after_max`, before retrying.
    pub retry_after: Option<Duration>,
    /// A human-readable detail from the adapter; never parsed.
    pub detail: String,
}

impl OpenError {
    /// An error of `kind` with a detail and no retry hint.
    pub fn new(kind: OpenErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            retry_after: None,
            detail: detail.into(),
        }
    }

    /// The same error with the server's retry hint.
    pub fn with_retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        if let Some(d) = self.retry_after {
            write!(f, " (retry after {d:?})")?;
        }
        Ok(())
    }
}

/// The kinds of open failure the machine tells apart. Those that will not heal by
/// retrying ([`is_permanent`](Self::is_permanent)) stop the client by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpenErrorKind {
    /// The host name did not resolve.
    Dns,
    /// Nothing listens there: the connection was refused.
    Refused,
    /// Another TCP or socket failure (unreachable, reset, timed out...).
    Io,
    /// The TLS handshake failed (a server that does not speak TLS, say).
    Tls,
    /// The server's certificate was not accepted (unknown issuer, expired, wrong name).
    Certificate,
    /// The URL cannot be connected to (no scheme, no host, an unsupported scheme).
    InvalidUrl,
    /// The server answered the upgrade with an HTTP status instead of 101.
    Http {
        /// The status code.
        status: u16,
    },
    /// The upgrade response was not a valid WebSocket handshake.
    Protocol,
    /// The adapter gave up the attempt because the machine sent `Abort`.
    Aborted,
}

impl OpenErrorKind {
    /// Whether retrying cannot help: a certificate that was not accepted, a URL that cannot
    /// be connected to. (HTTP statuses are judged by `stop_on_status`.)
    pub fn is_permanent(self) -> bool {
        matches!(self, Self::Certificate | Self::InvalidUrl)
    }
}

impl fmt::Display for OpenErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dns => f.write_str("host name did not resolve"),
            Self::Refused => f.write_str("connection refused"),
            Self::Io => f.write_str("connect failed"),
            Self::Tls => f.write_str("tls handshake failed"),
            Self::Certificate => f.write_str("server certificate not accepted"),
            Self::InvalidUrl => f.write_str("invalid url"),
            Self::Http { status } => write!(f, "upgrade refused with http {status}"),
            Self::Protocol => f.write_str("invalid websocket upgrade"),
            Self::Aborted => f.write_str("aborted"),
        }
    }
}

/// How a socket ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseCause {
    /// A close frame arrived (the peer's, or its echo of ours).
    Frame(CloseFrame),
    /// The stream ended without a close frame: a TCP drop or reset.
    Dropped,
    /// The adapter dropped the transport after `Abort`.
    Aborted,
    /// A transport error ended the socket.
    Error {
        /// The kind of error.
        kind: TransportErrorKind,
        /// A human-readable detail from the adapter; never parsed.
        detail: String,
    },
}

impl CloseCause {
    /// The close code, if a close frame arrived.
    pub fn code(&self) -> Option<u16> {
        match self {
            Self::Frame(f) => Some(f.code),
            _ => None,
        }
    }
}

impl fmt::Display for CloseCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Frame(frame) => write!(f, "{frame}"),
            Self::Dropped => f.write_str("connection dropped without close frame"),
            Self::Aborted => f.write_str("aborted"),
            Self::Error { kind, detail } => write!(f, "{kind}: {detail}"),
        }
    }
}

/// The kinds of transport error that end a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportErrorKind {
    /// An I/O error on the stream.
    Io,
    /// The peer broke the WebSocket protocol.
    Protocol,
    /// A message or frame exceeded the configured size limit (close code 1009).
    MessageTooBig,
}

impl fmt::Display for TransportErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io => f.write_str("io error"),
            Self::Protocol => f.write_str("websocket protocol error"),
            Self::MessageTooBig => f.write_str("message too big"),
        }
    }
}
