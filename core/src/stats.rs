//! Counters of what the machine did and dropped.

use std::time::Duration;

/// Counters of a client machine. Every counter only grows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// `Open` commands emitted.
    pub opens: u64,
    /// Sockets that opened.
    pub opened: u64,
    /// Opens that failed or timed out.
    pub open_failures: u64,
    /// Handshakes that completed (fresh or resumed).
    pub ready: u64,
    /// Of those, sessions resumed.
    pub resumed: u64,
    /// Reconnects planned after a connection or attempt ended.
    pub reconnects: u64,
    /// Inputs of sockets that were not current, dropped by the machine.
    pub stale_inputs: u64,
    /// Connections recycled because a heartbeat went unacknowledged.
    pub zombies: u64,
    /// Heartbeat deadlines handled late (starved scheduler, suspended machine).
    pub late_ticks: u64,
    /// Heartbeat requests of the peer answered by the beat already out, or held back by
    /// the rate limit.
    pub heartbeat_requests_coalesced: u64,
    /// Aborted sockets the adapter never reported closed, given up on.
    pub abandoned: u64,
    /// Heartbeats sent.
    pub heartbeats: u64,
    /// Frames received on the current connection.
    pub frames_received: u64,
    /// Application frames written.
    pub frames_sent: u64,
    /// Application frames handed back unsent (expired, overflow, stopped).
    pub frames_returned: u64,
    /// Frames that broke the protocol (malformed, unknown, out of sequence).
    pub protocol_errors: u64,
    /// Requests made.
    pub requests: u64,
    /// Calls of the peer's the application answered.
    pub calls_answered: u64,
    /// Calls of the peer's the application left unanswered until just before the peer's
    /// timeout (the machine answered them) or until their connection ended.
    pub calls_unanswered: u64,
    /// Responses dropped: unknown or finished requests, or from another connection.
    pub stray_responses: u64,
    /// Frames that waited for a rate-limit slot.
    pub rate_limited: u64,
    /// Acknowledgements that matched no outstanding heartbeat.
    pub unexpected_acks: u64,
    /// The round trip of the last acknowledged heartbeat.
    pub last_heartbeat_rtt: Option<Duration>,
}
