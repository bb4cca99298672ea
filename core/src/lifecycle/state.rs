//! The states of the client machine and what a drain leads to.

use std::time::{Duration, Instant};

use crate::conn::ConnId;
use crate::event::{Phase, Reason, StopReason};

/// Where the client machine is. Every way out of each state is in `transitions.rs`.
#[derive(Debug, Clone)]
pub(crate) enum State {
    Idle,
    /// `Open(conn)` was emitted; no answer yet.
    Connecting {
        conn: ConnId,
    },
    /// The socket is open; the handshake is under way.
    Handshaking {
        conn: ConnId,
        stage: Stage,
    },
    /// The session is up since `since`.
    Ready {
        conn: ConnId,
        since: Instant,
    },
    /// The machine is leaving `old` (closing it, or, once `aborted`, waiting for the adapter
    /// to confirm the abort); `then` happens once it is gone. `opened` says whether the
    /// adapter reported it open, and so whether its end is a `Closed` or an `OpenFailed`.
    Draining {
        old: ConnId,
        then: Then,
        aborted: bool,
        opened: bool,
    },
    /// Waiting for the backoff deadline before the next attempt.
    Backoff,
    Stopped(StopReason),
}

/// How far a handshake has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Waiting for the server's hello; nothing written yet.
    Hello,
    /// Waiting for the session start gate before a fresh handshake; nothing written yet.
    StartGate,
    /// The handshake is written; `resuming` says whether it asked to resume.
    Ready { resuming: bool },
    /// The server refused to resume and keeps the socket: a fresh handshake goes out on it
    /// once the wait it asked for is over; nothing of it is written yet.
    Reidentify,
}

/// What happens once a drained socket is gone.
#[derive(Debug, Clone)]
pub(crate) enum Then {
    Reconnect(Plan),
    Stop(StopReason),
}

/// A reconnect to make: how soon, and what ended the previous connection.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) pace: Pace,
    pub(crate) reason: Reason,
    pub(crate) retry_after: Option<Duration>,
}

impl Plan {
    pub(crate) fn new(pace: Pace, reason: Reason) -> Self {
        Self {
            pace,
            reason,
            retry_after: None,
        }
    }
}

/// How soon the next attempt starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pace {
    /// At once, as a new streak (the application or the server asked).
    Now,
    /// After the backoff delay for one more failure.
    Backoff,
    /// A ready connection ended. If it was stable the streak starts over with a jittered
    /// first retry; if not, it counts as one more failure.
    AfterReady { stable: bool },
    /// After a random wait in this range (or the backoff delay, if longer), as one more
    /// attempt.
    Within(Duration, Duration),
}

impl State {
    pub(crate) fn phase(&self) -> Phase {
        match self {
            Self::Idle => Phase::Idle,
            Self::Connecting { .. } => Phase::Connecting,
            Self::Handshaking { .. } => Phase::Handshaking,
            Self::Ready { .. } => Phase::Ready,
            Self::Draining { .. } => Phase::Draining,
            Self::Backoff => Phase::Backoff,
            Self::Stopped(_) => Phase::Stopped,
        }
    }

    /// The generation the state is about: pending, open, or being left.
    pub(crate) fn conn(&self) -> Option<ConnId> {
        match self {
            Self::Connecting { conn }
            | Self::Handshaking { conn, .. }
            | Self::Ready { conn, .. } => Some(*conn),
            Self::Draining { old, .. } => Some(*old),
            Self::Idle | Self::Backoff | Self::Stopped(_) => None,
        }
    }

    /// The open socket that carries the session, if any.
    pub(crate) fn live_conn(&self) -> Option<ConnId> {
        match self {
            Self::Handshaking { conn, .. } | Self::Ready { conn, .. } => Some(*conn),
            _ => None,
        }
    }
}
