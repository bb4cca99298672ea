//! Errors of the caller's making: bad configuration and calls the machine must refuse.
//!
//! Peer and network failures are never errors here: they are [`Event`](crate::Event)s.

use std::fmt;
use std::time::Duration;

use crate::frame::Frame;

/// A configuration value that cannot work, named by its field. Returned by `build()`, so
/// nothing fails later because of configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A duration or bound that must be positive is zero.
    #[error("{field} must be greater than zero")]
    Zero {
        /// The field.
        field: &'static str,
    },
    /// The backoff cap is below the first delay.
    #[error("backoff_max ({max:?}) must not be below backoff_initial ({initial:?})")]
    MaxBelowInitial {
        /// The configured first delay.
        initial: Duration,
        /// The configured cap.
        max: Duration,
    },
    /// A fraction is outside `0..=1` (or not a number).
    #[error("{field} must be within 0..=1, got {value}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The value given.
        value: f64,
    },
    /// The backoff multiplier is below 1 or not finite.
    #[error("backoff_multiplier must be finite and at least 1, got {value}")]
    Multiplier {
        /// The value given.
        value: f64,
    },
    /// A size or count is larger than the library allows, or than a setting it must fit
    /// within.
    #[error("{field} is {value}, more than the {max} allowed")]
    TooLarge {
        /// The field.
        field: &'static str,
        /// The value given.
        value: u64,
        /// The largest accepted.
        max: u64,
    },
    /// A duration longer than the library allows.
    #[error("{field} is {value:?}, longer than the {max:?} allowed")]
    TooLong {
        /// The field.
        field: &'static str,
        /// The value given.
        value: Duration,
        /// The longest accepted.
        max: Duration,
    },
    /// Two settings that cannot hold together.
    #[error("{field}: {problem}")]
    Conflict {
        /// The field.
        field: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
    /// A close code that cannot be sent on the wire (RFC 6455 section 7.4).
    #[error(
        "{field}: close code {code} cannot be sent (use 1000..=1003, 1007..=1014 or 3000..=4999)"
    )]
    CloseCode {
        /// The field.
        field: &'static str,
        /// The code given.
        code: u16,
    },
}

impl ConfigError {
    /// The first of `counts` (field, value, largest allowed) over its bound, as an error.
    pub fn check_at_most(counts: &[(&'static str, usize, usize)]) -> Result<(), Self> {
        match counts.iter().find(|(_, value, max)| value > max) {
            Some(&(field, value, max)) => Err(Self::TooLarge {
                field,
                value: value as u64,
                max: max as u64,
            }),
            None => Ok(()),
        }
    }
}

/// A user call the machine refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The client was shut down or stopped: it takes no more work.
    #[error("the client is stopped or shutting down")]
    Stopped,
    /// There is no open connection to act on.
    #[error("no open connection")]
    NotConnected,
    /// The profile has no heartbeat it can send on this connection.
    #[error("the profile has no heartbeat on this connection")]
    NoHeartbeat,
}

/// Why a send was refused. The frame is handed back inside, never dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("send refused: {kind}")]
pub struct SendError {
    /// Why.
    pub kind: SendErrorKind,
    /// The frame, untouched.
    pub frame: Frame,
}

impl SendError {
    /// Takes the refused frame back.
    pub fn into_frame(self) -> Frame {
        self.frame
    }
}

/// The reasons a send is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendErrorKind {
    /// The client was shut down or stopped.
    Stopped,
    /// The outbound queue is at its frame or byte bound and the policy refuses new sends.
    QueueFull,
    /// The frame alone is larger than the queue's byte bound: it could never wait in it.
    TooLarge,
    /// Only data frames (text, binary) are application sends; control frames belong to
    /// the machine.
    NotData,
    /// The time to live is longer than [`MAX_DELAY`](crate::MAX_DELAY).
    TtlTooLong,
    /// The frame is larger than the peer said it accepts (OpenClaw's `maxPayload`): written,
    /// it would only get the connection closed.
    OverPeerLimit,
}

impl fmt::Display for SendErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Stopped => "the client is stopped or shutting down",
            Self::QueueFull => "the outbound queue is full",
            Self::TooLarge => "the frame exceeds the outbound queue's byte bound",
            Self::NotData => "only text and binary frames can be sent",
            Self::TtlTooLong => "the time to live is longer than a week",
            Self::OverPeerLimit => "the frame is larger than the peer accepts",
        })
    }
}

/// Why a request was refused. Nothing was registered: no outcome event will follow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("request refused: {kind}")]
pub struct RequestError {
    /// Why.
    pub kind: RequestErrorKind,
    /// The encoded request, when it was refused after encoding (queue full or too large).
    pub frame: Option<Frame>,
}

/// The reasons a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestErrorKind {
    /// The client was shut down or stopped.
    Stopped,
    /// Not ready, and requests are configured to fail rather than wait.
    NotReady,
    /// `max_pending_requests` requests already wait for an outcome.
    TooMany,
    /// The outbound queue is full.
    QueueFull,
    /// The request alone is larger than the queue's byte bound.
    TooLarge,
    /// The timeout is longer than [`MAX_DELAY`](crate::MAX_DELAY).
    TimeoutTooLong,
    /// The request is larger than the peer said it accepts (OpenClaw's `maxPayload`).
    OverPeerLimit,
}

impl fmt::Display for RequestErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Stopped => "the client is stopped or shutting down",
            Self::NotReady => "no ready connection",
            Self::TooMany => "too many requests pending",
            Self::QueueFull => "the outbound queue is full",
            Self::TooLarge => "the request exceeds the outbound queue's byte bound",
            Self::TimeoutTooLong => "the timeout is longer than a week",
            Self::OverPeerLimit => "the request is larger than the peer accepts",
        })
    }
}

/// Why an answer to a peer's call was not written. The answer is not sent anywhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum AnswerError {
    /// The client was shut down or stopped.
    #[error("the client is stopped or shutting down")]
    Stopped,
    /// The call came on a connection that has ended: its peer no longer waits for the
    /// answer, and the current connection never asked.
    #[error("the call came on a connection that has ended")]
    Stale,
    /// The call was answered already, or went unanswered past its deadline and the machine
    /// answered it.
    #[error("the call was answered already or expired")]
    NotPending,
    /// The answer is larger than the peer accepts.
    #[error("the answer is larger than the peer accepts")]
    OverPeerLimit,
    /// The profile has no calls to answer.
    #[error("the profile has no calls to answer")]
    Unsupported,
}
