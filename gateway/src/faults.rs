//! Misbehaviour on demand, for testing clients: a test and command-line feature
//! (`faults`), not part of the gateway an application serves with.

use std::time::Duration;

/// Misbehaviour on demand, for testing clients against a gateway that fails the ways real
/// ones do. The default is none.
// Without the feature the gateway still keeps one (always the default): public, unexported.
#[cfg_attr(not(feature = "faults"), allow(unreachable_pub))]
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    /// Accept sockets but never greet them: no hello (discord), no challenge (OpenClaw).
    pub stall_hello: bool,
    /// Acknowledge only this many heartbeats (discord) or pings (OpenClaw) per connection.
    pub ack_heartbeats: Option<u64>,
    /// Refuse this fraction (0 to 1) of otherwise valid resumes with an invalid session.
    pub invalid_session_rate: f64,
    /// Cut every connection, with no close frame, this long after it became ready.
    pub drop_after: Option<Duration>,
    /// Discord: send op 7 (reconnect) on every connection this long after it became ready.
    pub reconnect_after: Option<Duration>,
    /// Discord: send op 1 (beat now) on every connection this long after it became ready.
    pub heartbeat_request_after: Option<Duration>,
}
