//! What the gateway tells the server (commands) and the application (events), why it
//! closes a connection, its faults on demand, its refusals and its counters.

use super::auth::{Answer, PeerId};
use super::config::ServerProfile;
use crate::registry::{InvokeId, InvokeOutcome, Presence, RegistryStats};
use tether_core::ConnId;
use tether_core::{CloseFrame, Frame, Utf8Bytes};

/// What the server must do on a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayCommand {
    /// Write `frame` on `conn`'s socket, after everything written before on it.
    Send {
        /// The socket.
        conn: ConnId,
        /// The frame.
        frame: Frame,
    },
    /// Cut `conn`'s socket with no close frame (a fault on demand); then report
    /// [`handle_close`](super::Gateway::handle_close).
    Abort {
        /// The socket.
        conn: ConnId,
    },
    /// From now on, read messages of at most `max_message` bytes on `conn`: larger ones are
    /// a [`Violation::TooBig`], found before they are held. A new connection starts at
    /// [`max_message_before_ready`](super::GatewayConfig::max_message_before_ready), a
    /// ready one moves to [`max_message`](super::GatewayConfig::max_message).
    ReadLimit {
        /// The socket.
        conn: ConnId,
        /// The largest message, in bytes.
        max_message: usize,
    },
    /// Send `frame` and close `conn`'s socket; then report
    /// [`handle_close`](super::Gateway::handle_close). Nothing more is written on it.
    Close {
        /// The socket.
        conn: ConnId,
        /// The close frame.
        frame: CloseFrame,
    },
}

/// Why the gateway closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseWhy {
    /// A frame that could not be read.
    Malformed,
    /// An opcode the protocol does not have.
    UnknownOpcode,
    /// Traffic before the handshake completed.
    NotAuthenticated,
    /// The [`Authenticator`](super::Authenticator) refused the credentials.
    Rejected,
    /// A second identify on a ready connection.
    AlreadyAuthenticated,
    /// No ready within the handshake timeout.
    HandshakeTimeout,
    /// A newer connection of the same peer took the session over (S1).
    Replaced,
    /// No heartbeat (discord) or no frame (OpenClaw) within the liveness bound.
    Unresponsive,
    /// The socket's outbound queue filled up: the client does not keep up.
    TooSlow,
    /// The gateway is going away.
    Shutdown,
    /// A fault on demand (`Faults::drop_after`, feature `faults`): the socket is cut with
    /// no close frame.
    Dropped,
    /// The client broke the WebSocket protocol, or sent a message over the size allowed.
    Violation(Violation),
    /// What the connection is owed would take the server past its memory budget.
    OverBudget,
    /// An identify's `shard` is not `[id, count]` with `id` below `count` (discord 4010).
    InvalidShard,
    /// The bot started more sessions than its window allows (discord 4004, as Discord ends
    /// a bot past its session start limit).
    SessionStartLimit,
    /// The URL asks for a gateway version not served (discord: `v` other than 9 or 10,
    /// 4012).
    InvalidApiVersion,
    /// The URL asks for an encoding not spoken (discord: `encoding` other than `json`; ETF
    /// is not spoken here).
    UnsupportedEncoding,
    /// The URL asks for a transport compression not offered (discord: `compress` other
    /// than `zlib-stream` or `zstd-stream`).
    UnsupportedCompression,
}

/// A way a client breaks the WebSocket protocol itself (RFC 6455), each with its own close
/// code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Violation {
    /// A frame the protocol forbids: reserved bits or opcodes, an unmasked client frame, a
    /// bad fragment or control frame. Closed with 1002.
    #[error("protocol error")]
    Protocol,
    /// A text message that is not UTF-8. Closed with 1007.
    #[error("text that is not UTF-8")]
    InvalidUtf8,
    /// A message over the size allowed at this point of the session. Closed with 1009.
    #[error("message too big")]
    TooBig,
}

impl CloseWhy {
    /// The close frame sent for this reason under `profile`: discord's own codes where it
    /// has one, RFC 6455 codes for OpenClaw.
    pub fn frame(self, profile: ServerProfile) -> CloseFrame {
        let discord = profile == ServerProfile::Discord;
        match self {
            Self::Malformed if discord => CloseFrame::new(4002, "decode error"),
            Self::Malformed => CloseFrame::new(1007, "malformed frame"),
            Self::UnknownOpcode if discord => CloseFrame::new(4001, "unknown opcode"),
            Self::UnknownOpcode => CloseFrame::new(1003, "unsupported frame"),
            Self::NotAuthenticated if discord => CloseFrame::new(4003, "not authenticated"),
            Self::NotAuthenticated => CloseFrame::new(1008, "not connected"),
            Self::Rejected if discord => CloseFrame::new(4004, "authentication failed"),
            Self::Rejected => CloseFrame::new(1008, "authentication failed"),
            Self::AlreadyAuthenticated => CloseFrame::new(4005, "already authenticated"),
            Self::HandshakeTimeout if discord => CloseFrame::new(4009, "session timed out"),
            // As the real OpenClaw gateway closes a connect that never came.
            Self::HandshakeTimeout if profile == ServerProfile::OpenClaw => {
                CloseFrame::new(1000, "")
            }
            Self::HandshakeTimeout => CloseFrame::new(1008, "handshake timed out"),
            Self::Replaced => CloseFrame::new(4000, "session replaced by a newer connection"),
            Self::Unresponsive => CloseFrame::new(4000, "no heartbeat in time"),
            Self::TooSlow => CloseFrame::new(1008, "too slow: outbound queue full"),
            Self::Shutdown => CloseFrame::new(1001, "going away"),
            // Never written: a dropped socket gets no close frame.
            Self::Dropped => CloseFrame::new(1006, "dropped"),
            Self::Violation(Violation::Protocol) => CloseFrame::new(1002, "protocol error"),
            Self::Violation(Violation::InvalidUtf8) => CloseFrame::new(1007, "invalid utf-8"),
            Self::Violation(Violation::TooBig) => CloseFrame::new(1009, "message too big"),
            Self::OverBudget => CloseFrame::new(1013, "try again later: server memory budget"),
            Self::InvalidShard => CloseFrame::new(4010, "invalid shard"),
            Self::SessionStartLimit => {
                CloseFrame::new(4004, "authentication failed: session start limit reached")
            }
            Self::InvalidApiVersion => CloseFrame::new(4012, "invalid API version"),
            Self::UnsupportedEncoding => {
                CloseFrame::new(1003, "unsupported encoding: only json is spoken")
            }
            Self::UnsupportedCompression => {
                CloseFrame::new(1003, "unsupported compress: zlib-stream or zstd-stream")
            }
        }
    }
}

/// What the application learns, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayEvent {
    /// The owner of `peer`'s session changed; emitted only for owner transitions (S4).
    Presence {
        /// The peer.
        peer: PeerId,
        /// The connection that owns the session now (or, for `Disconnected`, owned it).
        conn: ConnId,
        /// What changed.
        presence: Presence,
    },
    /// A session was resumed on `conn` and the dispatches its client missed were replayed.
    Resumed {
        /// The peer.
        peer: PeerId,
        /// The new connection.
        conn: ConnId,
        /// How many dispatches were replayed.
        replayed: usize,
    },
    /// A frame from a ready peer that is not the protocol's own: a discord op 3, 4 or 8, an
    /// OpenClaw request or event, a plain text message. The whole frame, raw.
    Message {
        /// The peer.
        peer: PeerId,
        /// The connection it came on.
        conn: ConnId,
        /// The frame's text.
        text: Utf8Bytes,
    },
    /// A binary message from a ready peer (plain).
    Binary {
        /// The peer.
        peer: PeerId,
        /// The connection it came on.
        conn: ConnId,
        /// The message.
        data: bytes::Bytes,
    },
    /// An OpenClaw request of a method the application answers
    /// ([`GatewayConfigBuilder::methods`](crate::GatewayConfigBuilder::methods)): answer it
    /// with [`Gateway::respond`](crate::Gateway::respond) on `conn`.
    Request {
        /// The peer.
        peer: PeerId,
        /// The connection it came on: the answer goes there.
        conn: ConnId,
        /// The request's id, as the client wrote it (raw JSON).
        id: String,
        /// The method.
        method: String,
        /// The parameters, raw JSON (`null` when absent).
        params: Utf8Bytes,
    },
    /// A new OpenClaw device waits for approval
    /// ([`Gateway::approve_pairing`](crate::Gateway::approve_pairing) or
    /// [`reject_pairing`](crate::Gateway::reject_pairing)); it was told so and keeps trying.
    PairingRequested(crate::devices::PairingRequest),
    /// A device was paired (by the application, or at once under
    /// [`AutoApprove`](crate::AutoApprove)).
    Paired(crate::devices::PairingRequest),
    /// An invoke ended, exactly once (I6).
    Invoked {
        /// The id [`Gateway::invoke`](super::Gateway::invoke) returned.
        id: InvokeId,
        /// The peer it was sent to.
        peer: PeerId,
        /// How it ended.
        outcome: InvokeOutcome<Answer>,
    },
    /// A resume was refused with an invalid session (discord): the session is unknown (never
    /// was, expired, or ended by its client's 1000), belongs to other credentials, or the
    /// client is further behind than the replay reaches; or a fault refused it.
    ResumeRefused {
        /// The connection that asked.
        conn: ConnId,
        /// Why, in words.
        reason: &'static str,
    },
    /// A frame could not be read; the connection is closed for it.
    BadFrame {
        /// The connection.
        conn: ConnId,
        /// What was wrong.
        reason: String,
    },
    /// The gateway is closing `conn`.
    Closing {
        /// The connection.
        conn: ConnId,
        /// The peer it carried, if it was ready.
        peer: Option<PeerId>,
        /// Why.
        why: CloseWhy,
    },
}

/// Why an application call was refused; nothing was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// The peer has no session (or, for a dispatch, no resumable one).
    #[error("the peer is not connected")]
    NotConnected,
    /// Too many invokes are pending.
    #[error("too many invokes pending")]
    TooManyInvokes,
    /// The profile has no such thing (invokes under discord).
    #[error("the {0} profile does not support this")]
    Unsupported(&'static str),
    /// The timeout is longer than [`MAX_DELAY`](tether_core::MAX_DELAY).
    #[error("the timeout is longer than a week")]
    TimeoutTooLong,
    /// No pairing request of that id waits.
    #[error("no such pairing request")]
    UnknownPairing,
    /// The system's random source failed (a device token could not be made).
    #[error("the system random source failed")]
    Random,
}

/// Where a dispatch went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// Its sequence number: kept for replay under discord; per connection under OpenClaw.
    pub seq: u64,
    /// The connection it was written on; `None` when the session waits to be resumed and
    /// will get it by replay.
    pub conn: Option<ConnId>,
}

/// Counters of the gateway, which only grow, and the gauges named "now".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GatewayStats {
    /// Those of the session registry (accepted, replaced, stale closes, stray results...).
    pub registry: RegistryStats,
    /// Handshakes completed (identify, resume or connect).
    pub ready: u64,
    /// Sessions resumed.
    pub resumes: u64,
    /// Dispatches replayed on resume.
    pub replayed: u64,
    /// Resumes refused with an invalid session.
    pub invalid_sessions: u64,
    /// Clients refused by the authenticator.
    pub rejected: u64,
    /// Frames that could not be read.
    pub bad_frames: u64,
    /// Connections closed for not completing the handshake in time.
    pub handshake_timeouts: u64,
    /// Connections closed as unresponsive.
    pub unresponsive: u64,
    /// Connections closed as too slow.
    pub too_slow: u64,
    /// Frames of connections already closing, or never accepted: dropped.
    pub stale_frames: u64,
    /// Sessions forgotten when their resume window passed.
    pub expired_sessions: u64,
    /// Connections closed for a message over the size allowed (1009).
    pub too_big: u64,
    /// Connections closed for breaking the WebSocket protocol (1002, 1007).
    pub protocol_violations: u64,
    /// Tokens refused for their length before authentication.
    pub oversized_tokens: u64,
    /// Connections closed because the server's memory budget was spent (1013).
    pub over_budget: u64,
    /// Bytes of dispatches kept for replay now, over all sessions.
    pub replay_bytes: u64,
    /// The most bytes of dispatches ever kept for replay at once.
    pub replay_bytes_peak: u64,
    /// Invokes sent to nodes and not yet ended, now.
    pub pending_invokes: u64,
    /// Connections whose frames went compressed, as their URL asked (discord).
    pub compressed: u64,
    /// Identifies refused for coming too soon for their bucket, or past the window's
    /// budget (discord, under an identify limit).
    pub identifies_limited: u64,
}
