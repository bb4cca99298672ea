//! The deadline table: one optional deadline per kind of timer, owned by the machine.

use std::time::{Duration, Instant};

/// Every deadline the client machine can hold. When several expire at the same instant
/// they are handled in this order, so an unanswered heartbeat is judged before the next
/// beat is sent.
///
/// Public so an application can ask which deadline the machine is waiting on
/// ([`Client::next_timeout`](crate::Client::next_timeout)), when debugging a stuck session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// The pending open must complete by then.
    Connect,
    /// The server's hello must arrive by then.
    Hello,
    /// The session start gate must grant the start by then.
    StartGate,
    /// The handshake must complete by then.
    Ready,
    /// After a refused resume, the fresh handshake goes out on the same socket then.
    Reidentify,
    /// Some frame must arrive by then, for profiles whose peers tick.
    Silence,
    /// The outstanding heartbeat must be acknowledged by then.
    HeartbeatAck,
    /// The next heartbeat is due.
    Heartbeat,
    /// The rate limit frees a slot for the next queued frame.
    RateLimit,
    /// The socket being left must close by then, or it is aborted.
    Drain,
    /// The aborted socket must report closed by then, or it is abandoned.
    AbortGrace,
    /// The next attempt starts.
    Backoff,
    /// The earliest time to live in the outbound queue runs out.
    SendExpiry,
    /// The earliest request timeout runs out.
    Request,
    /// The earliest call of the peer's left unanswered is due to be answered by the machine.
    PeerCall,
}

impl Timer {
    /// Every timer, in the order expiries are handled.
    pub(crate) const VALUES: [Self; 15] = [
        Self::Connect,
        Self::Hello,
        Self::StartGate,
        Self::Ready,
        Self::Reidentify,
        Self::Silence,
        Self::HeartbeatAck,
        Self::Heartbeat,
        Self::RateLimit,
        Self::Drain,
        Self::AbortGrace,
        Self::Backoff,
        Self::SendExpiry,
        Self::Request,
        Self::PeerCall,
    ];

    /// The table is sized from the enum, never by hand.
    const COUNT: usize = Self::VALUES.len();

    /// The timers that belong to one socket: all of them end with it.
    pub(crate) const CONNECTION: [Self; 11] = [
        Self::Connect,
        Self::Hello,
        Self::StartGate,
        Self::Ready,
        Self::Reidentify,
        Self::Silence,
        Self::HeartbeatAck,
        Self::Heartbeat,
        Self::RateLimit,
        Self::Drain,
        Self::AbortGrace,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// One optional deadline per [`Timer`].
#[derive(Debug, Clone, Default)]
pub(crate) struct DeadlineTable {
    deadlines: [Option<Instant>; Timer::COUNT],
}

impl DeadlineTable {
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        if let Some(slot) = self.deadlines.get_mut(timer.index()) {
            *slot = Some(at);
        }
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        if let Some(slot) = self.deadlines.get_mut(timer.index()) {
            *slot = None;
        }
    }

    pub(crate) fn get(&self, timer: Timer) -> Option<Instant> {
        self.deadlines.get(timer.index()).copied().flatten()
    }

    /// Stops every timer of the current socket, so none of them can fire for a socket the
    /// machine has left.
    pub(crate) fn stop_connection(&mut self) {
        for timer in Timer::CONNECTION {
            self.stop(timer);
        }
    }

    /// The earliest deadline and the timer that set it.
    pub(crate) fn next(&self) -> Option<(Timer, Instant)> {
        Timer::VALUES
            .iter()
            .filter_map(|&t| self.get(t).map(|at| (t, at)))
            .min_by_key(|&(_, at)| at)
    }
}

/// The longest any setting, hint or argument may defer a deadline: a week. Settings
/// longer than this are refused when built ([`ConfigError::TooLong`](crate::ConfigError));
/// a longer delay that reaches [`after`] some other way (a peer's hint, a call's argument)
/// is cut to it, never added to an `Instant` as it is.
pub const MAX_DELAY: Duration = Duration::from_secs(7 * 24 * 3600);

/// A deadline strictly after `now`, so handling a timeout always makes progress (I7), and
/// at most [`MAX_DELAY`] after it. The one place a delay meets an `Instant`: it cannot
/// overflow, whatever the delay.
pub fn after(now: Instant, delay: Duration) -> Instant {
    let delay = delay.clamp(Duration::from_nanos(1), MAX_DELAY);
    now.checked_add(delay)
        .or_else(|| now.checked_add(Duration::from_nanos(1)))
        .unwrap_or(now)
}

/// Checks that each duration is at most [`MAX_DELAY`].
pub fn check_delays(delays: &[(&'static str, Duration)]) -> Result<(), crate::ConfigError> {
    match delays.iter().find(|(_, d)| *d > MAX_DELAY) {
        Some(&(field, value)) => Err(crate::ConfigError::TooLong {
            field,
            value,
            max: MAX_DELAY,
        }),
        None => Ok(()),
    }
}
