//! What each way an OpenClaw gateway refuses a connect, or ends a connection, means for
//! the session: one table, read from the gateway's own client
//! (`packages/gateway-client/src/reconnect-policy.ts`) and its error details.

use std::time::Duration;

use crate::input::CloseCause;
use crate::protocol::CloseClass;

use super::wire::WireError;

/// How the profile answers a refused `connect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectVerdict {
    /// `UNAVAILABLE` (the gateway is starting, or its queue is full): a new socket after
    /// the gateway's `retryAfterMs`, or the backoff if longer.
    RetryAfterHint,
    /// `PAIRING_REQUIRED` / `NOT_PAIRED`: someone must approve this device. Reported once
    /// per pairing request, retried at the slow pairing pace.
    AwaitApproval,
    /// The device token was refused (rotated or revoked): it is forgotten, and the next
    /// connect uses the shared credential, if there is one; else the client stops.
    ForgetDeviceToken,
    /// The signed challenge went stale (a nonce mismatch, a clock step): a new socket
    /// brings a new challenge.
    RetryFreshChallenge,
    /// Credentials, identity or protocol the gateway will not accept: retrying cannot help.
    Stop,
    /// Anything else: a new socket after the backoff.
    Retry,
}

/// Reads a refused `connect`.
pub(crate) fn connect_verdict(error: &WireError) -> ConnectVerdict {
    use ConnectVerdict as V;
    if let Some(detail) = error.detail_code() {
        return match detail {
            "PAIRING_REQUIRED" => V::AwaitApproval,
            "AUTH_DEVICE_TOKEN_MISMATCH" => V::ForgetDeviceToken,
            "DEVICE_AUTH_NONCE_MISMATCH" | "DEVICE_AUTH_SIGNATURE_EXPIRED" => {
                V::RetryFreshChallenge
            }
            "AUTH_RATE_LIMITED" => V::RetryAfterHint,
            d if d.starts_with("AUTH_")
                || d.starts_with("DEVICE_AUTH_")
                || d.starts_with("CONTROL_UI_")
                || d == "DEVICE_IDENTITY_REQUIRED"
                || d == "PROTOCOL_MISMATCH"
                || d == "CLIENT_VERSION_MISMATCH"
                || d == "AUTHENTICATED_PROFILE_UNAVAILABLE" =>
            {
                V::Stop
            }
            _ => by_code(error),
        };
    }
    by_code(error)
}

fn by_code(error: &WireError) -> ConnectVerdict {
    use ConnectVerdict as V;
    match error.code().as_ref() {
        "UNAVAILABLE" => V::RetryAfterHint,
        "NOT_PAIRED" => V::AwaitApproval,
        // The connect itself is malformed (a missing field, an unknown one): the same
        // connect would be refused again.
        "INVALID_REQUEST" | "FORBIDDEN" | "UNAUTHORIZED" => V::Stop,
        _ if error.retryable == Some(true) => V::RetryAfterHint,
        _ => V::Retry,
    }
}

/// How the profile reads a close of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseVerdict {
    /// 1002: the gateway does not speak this protocol version. Stop.
    ProtocolMismatch,
    /// 1012: the gateway restarts. Reconnect, not before the `restartExpectedMs` its
    /// `shutdown` event announced.
    Restarting,
    /// 1013: try again later (the gateway is starting or overloaded). Reconnect after the
    /// backoff.
    TryLater,
    /// 1008: the gateway's policy closed the connection (a handshake it timed out, a frame
    /// it refused, a slow consumer). Reconnect after the backoff: a refusal that retrying
    /// cannot mend arrives as an error answer to `connect`, read first.
    Policy,
    /// 4001: the connection's authority changed (the gateway's auth, a rotated or revoked
    /// device token, a client invalidated). Reconnect: the next connect authenticates
    /// afresh, and a device token the gateway no longer takes is refused there
    /// (`AUTH_DEVICE_TOKEN_MISMATCH`) and forgotten.
    AuthChanged,
    /// Any other close, or the socket lost: reconnect.
    Lost,
}

/// Reads the close of a connection.
pub(crate) fn close_verdict(cause: &CloseCause) -> CloseVerdict {
    match cause.code() {
        Some(1002) => CloseVerdict::ProtocolMismatch,
        Some(1012) => CloseVerdict::Restarting,
        Some(1013) => CloseVerdict::TryLater,
        Some(1008) => CloseVerdict::Policy,
        Some(4001) => CloseVerdict::AuthChanged,
        _ => CloseVerdict::Lost,
    }
}

impl CloseVerdict {
    /// What the machine does: OpenClaw has no session to resume, so every reconnect is a
    /// new connect; only a protocol mismatch stops.
    pub(crate) fn class(self) -> CloseClass {
        match self {
            Self::ProtocolMismatch => CloseClass::Fatal,
            _ => CloseClass::Resume,
        }
    }
}

/// The pace at which a device waiting for approval asks again: slow enough never to be a
/// loop (seed 000's re-approval loop), fast enough that an approval takes effect soon.
pub const PAIRING_RETRY: (Duration, Duration) = (Duration::from_secs(10), Duration::from_secs(20));
