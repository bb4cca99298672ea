//! Liveness of the current connection: when to beat, when to judge the peer.

use std::time::{Duration, Instant};

use crate::protocol::Liveness;
use crate::timer::{DeadlineTable, Timer, after};

/// The shortest heartbeat interval the machine accepts from a peer, so a bad hello cannot
/// turn heartbeats into a busy loop.
const MIN_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(1);

/// Tracks the liveness of one connection. The frames come from the profile; this only
/// keeps time. Its deadlines live in the machine's table, so leaving a connection clears
/// them with the rest.
#[derive(Debug, Clone)]
pub(crate) struct Heartbeat {
    ack_timeout: Option<Duration>,
    liveness: Liveness,
    last_beat_at: Option<Instant>,
    awaiting_ack: bool,
    probing: bool,
}

/// What an acknowledgement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ack {
    /// It answered the outstanding beat, after this round trip.
    Answered(Duration),
    /// No beat was outstanding.
    Unexpected,
}

impl Heartbeat {
    pub(crate) fn new(ack_timeout: Option<Duration>) -> Self {
        Self {
            ack_timeout,
            liveness: Liveness::default(),
            last_beat_at: None,
            awaiting_ack: false,
            probing: false,
        }
    }

    /// Takes the profile's current view of liveness. A new heartbeat interval (re)starts the
    /// beats, the first at a random point of the first interval so that clients that
    /// connect together do not beat together; a silence bound starts counting now.
    pub(crate) fn update(
        &mut self,
        liveness: Liveness,
        now: Instant,
        rng: &mut fastrand::Rng,
        timers: &mut DeadlineTable,
    ) {
        let interval = liveness
            .heartbeat_interval
            .map(|d| d.max(MIN_HEARTBEAT_INTERVAL));
        if interval.is_some() && interval != self.liveness.heartbeat_interval {
            self.awaiting_ack = false;
            self.probing = false;
            timers.stop(Timer::HeartbeatAck);
            if let Some(interval) = interval {
                timers.set(Timer::Heartbeat, after(now, interval.mul_f64(rng.f64())));
            }
        }
        self.liveness = Liveness {
            heartbeat_interval: interval.or(self.liveness.heartbeat_interval),
            ..liveness
        };
        if let Some(silence) = self.liveness.silence_timeout {
            timers.set(Timer::Silence, after(now, silence));
        }
    }

    /// Forgets the connection's liveness (its deadlines are cleared with the connection's).
    pub(crate) fn reset(&mut self) {
        *self = Self::new(self.ack_timeout);
    }

    /// Whether beats are running on this connection.
    pub(crate) fn is_running(&self) -> bool {
        self.liveness.heartbeat_interval.is_some()
    }

    /// Whether a beat is out and not yet acknowledged.
    pub(crate) fn is_awaiting_ack(&self) -> bool {
        self.awaiting_ack
    }

    /// Whether the outstanding beat was a probe the application asked for.
    pub(crate) fn is_probing(&self) -> bool {
        self.probing
    }

    /// How long a beat may go unacknowledged: the configured timeout, never more than one
    /// interval, so a beat is always judged before the next one is due.
    fn ack_timeout(&self, interval: Duration) -> Duration {
        self.ack_timeout.unwrap_or(interval).min(interval)
    }

    /// A beat went out at `now`. An earlier ack deadline is kept: beating again never
    /// postpones the judgement of an outstanding beat.
    pub(crate) fn sent(&mut self, now: Instant, probe: bool, timers: &mut DeadlineTable) {
        let Some(interval) = self.liveness.heartbeat_interval else {
            return;
        };
        self.last_beat_at = Some(now);
        self.awaiting_ack = true;
        self.probing |= probe;
        let judge_at = after(now, self.ack_timeout(interval));
        let judge_at = timers
            .get(Timer::HeartbeatAck)
            .map_or(judge_at, |at| at.min(judge_at));
        timers.set(Timer::HeartbeatAck, judge_at);
        timers.set(Timer::Heartbeat, after(now, interval));
    }

    /// A frame arrived: the peer is not silent, and for lenient profiles that is an ack.
    pub(crate) fn frame_arrived(
        &mut self,
        now: Instant,
        timers: &mut DeadlineTable,
    ) -> Option<Ack> {
        if let Some(silence) = self.liveness.silence_timeout {
            timers.set(Timer::Silence, after(now, silence));
        }
        (self.liveness.any_frame_is_ack && self.awaiting_ack).then(|| self.acked(now, timers))
    }

    /// The peer acknowledged.
    pub(crate) fn acked(&mut self, now: Instant, timers: &mut DeadlineTable) -> Ack {
        if !self.awaiting_ack {
            return Ack::Unexpected;
        }
        self.awaiting_ack = false;
        self.probing = false;
        timers.stop(Timer::HeartbeatAck);
        let rtt = self
            .last_beat_at
            .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        Ack::Answered(rtt)
    }

    /// The ack deadline passed; the machine judges (or, on a late tick, beats anew).
    pub(crate) fn ack_overdue(&mut self) {
        self.awaiting_ack = false;
    }
}
