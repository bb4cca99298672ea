//! Protocol profiles: what a session's handshake, readiness, heartbeat and close codes are.
//!
//! The lifecycle machine knows none of a protocol's frames. A profile implements
//! [`Protocol`]; the machine asks it what to write and how to read what arrived, and
//! keeps every timing, generation and reconnect rule to itself.

use std::time::Duration;

use crate::command::Endpoint;
use crate::event::{Malformed, ReconnectMode};
use crate::frame::{CloseFrame, Frame};
use crate::input::CloseCause;

pub mod plain;

/// A session protocol spoken over the WebSocket.
///
/// Methods are called only for the current connection, in the order events happen on it:
/// [`on_open`](Self::on_open) once per socket, then [`on_frame`](Self::on_frame) per frame,
/// with [`handshake`](Self::handshake) and [`heartbeat`](Self::heartbeat) when the machine
/// needs those frames. A profile never sees a frame of a stale socket.
pub trait Protocol {
    /// What the application receives for each message.
    type Message;

    /// Where the next socket should connect (a resume URL, for example).
    fn endpoint(&self) -> Endpoint {
        Endpoint::Primary
    }

    /// A new socket opened: reset per-connection state and say how the handshake starts.
    fn on_open(&mut self) -> OnOpen;

    /// The handshake frame (identify, resume, connect...), written by the machine when the
    /// socket opens ([`OnOpen::Handshake`]) or when the hello arrives. `None`: nothing to
    /// write.
    fn handshake(&mut self) -> Option<Frame>;

    /// Reads one frame of the current connection.
    fn on_frame(&mut self, frame: Frame) -> Inbound<Self::Message>;

    /// The heartbeat interval if it is fixed by configuration, known as the socket opens.
    /// `None` when it comes with the hello, or when there is no heartbeat.
    fn heartbeat_interval(&self) -> Option<Duration>;

    /// The next heartbeat frame. `None` when the peer does not support one on this
    /// connection: then the machine sends none and never judges the peer by acks.
    fn heartbeat(&mut self) -> Option<Frame>;

    /// How a close of the current socket is to be treated.
    fn classify_close(&self, cause: &CloseCause) -> CloseClass;

    /// The close frame the machine sends when it leaves a socket for `intent`.
    fn close_frame(&self, intent: CloseIntent) -> CloseFrame;

    /// Whether the next handshake would resume a session.
    fn can_resume(&self) -> bool;

    /// Forgets the resume state, so the next handshake starts a fresh session.
    fn clear_resume(&mut self);
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

/// What one inbound frame means, as the profile reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound<M> {
    /// A message for the application.
    Message(M),
    /// The server's hello; carries the heartbeat interval when the protocol sends it.
    Hello {
        /// The interval announced by the server.
        heartbeat_interval: Option<Duration>,
    },
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
    /// The server asks the client to reconnect (resuming).
    Reconnect,
    /// The server says the session is invalid.
    InvalidSession {
        /// Whether it may be resumed; if not, the machine clears the resume state.
        resumable: bool,
        /// How long to wait before the next attempt, drawn uniformly from this range.
        wait: (Duration, Duration),
    },
    /// A frame the profile consumed with no effect on the session.
    Ignored,
    /// A frame the profile could not read: counted and reported.
    Malformed(Malformed),
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
