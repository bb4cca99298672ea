//! The client lifecycle machine.

mod calls;
mod state;
mod traffic;
mod transitions;

use std::collections::VecDeque;
use std::time::Instant;

use crate::backoff::Backoff;
use crate::command::Command;
use crate::config::Config;
use crate::conn::{ConnId, ConnIds};
use crate::event::{Event, Phase, Reason, StopReason};
use crate::heartbeat::Heartbeat;
use crate::input::Input;
use crate::outbound::OutboundQueue;
use crate::peer_calls::PeerCalls;
use crate::protocol::Protocol;
use crate::ratelimit::RateLimiter;
use crate::requests::Requests;
use crate::stats::Stats;
use crate::timer::{DeadlineTable, Timer};

pub use calls::SendOptions;
use state::State;
use transitions::Trigger;

/// The machine's hold on one generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Socket {
    /// Asked for; not open yet.
    Pending,
    /// Open and current.
    Open,
    /// Being left before it opened: its end is an `OpenFailed`.
    LeavingPending,
    /// Being left after it opened: its end is a `Closed`.
    LeavingOpen,
}

/// A snapshot of where the machine is and why. It never latches: every transition
/// updates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The phase.
    pub phase: Phase,
    /// The generation the phase is about (pending, open or being left), if any.
    pub conn: Option<ConnId>,
    /// Why the machine entered this state.
    pub reason: Reason,
    /// The attempt number of the current connection streak (0 before the first).
    pub attempt: u32,
}

/// The sans-IO client lifecycle machine: one long-lived WebSocket session, kept correct
/// through reconnects, races and faults.
///
/// It reads no clock, touches no socket and spawns nothing. Its methods come in four
/// families:
///
/// - **handlers** of what happened: [`handle_input`](Self::handle_input) for socket events,
///   [`handle_timeout`](Self::handle_timeout) once [`poll_timeout`](Self::poll_timeout) has
///   passed;
/// - **calls** of the application: [`connect`](Self::connect), [`send`](Self::send),
///   [`request`](Self::request), [`reconnect`](Self::reconnect), [`probe`](Self::probe),
///   [`shutdown`](Self::shutdown);
/// - **pollers** of what to do next: [`poll_command`](Self::poll_command) (socket work for
///   the adapter), [`poll_event`](Self::poll_event) (news for the application),
///   [`poll_timeout`](Self::poll_timeout) (when to call `handle_timeout`);
/// - **getters**: [`state`](Self::state), [`stats`](Self::stats).
///
/// After every handler or call, drain `poll_command` until `None`, then `poll_event` until
/// `None`, then sleep until `poll_timeout` or the next input. Every input and command
/// names its [`ConnId`]; input of any socket but the current one is dropped and counted,
/// so stale work can never act on the session.
#[derive(Debug)]
pub struct Client<P: Protocol> {
    config: Config,
    profile: P,
    state: State,
    reason: Reason,
    attempt: u32,
    ids: ConnIds,
    timers: DeadlineTable,
    heartbeat: Heartbeat,
    backoff: Backoff,
    outbound: OutboundQueue,
    limiter: RateLimiter,
    requests: Requests,
    peer_calls: PeerCalls,
    commands: VecDeque<Command>,
    events: VecDeque<Event<P::Message, P::Response>>,
    stats: Stats,
    rng: fastrand::Rng,
    now: Option<Instant>,
    shutdown_requested: bool,
    next_send: u64,
}

impl<P: Protocol> Client<P> {
    /// A machine in [`Phase::Idle`]; nothing happens until [`connect`](Self::connect).
    pub fn new(config: Config, profile: P) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(config.seed),
            heartbeat: Heartbeat::new(config.heartbeat_ack_timeout),
            backoff: Backoff::new(&config),
            outbound: OutboundQueue::new(&config),
            config,
            profile,
            state: State::Idle,
            reason: Reason::Created,
            attempt: 0,
            ids: ConnIds::new(),
            timers: DeadlineTable::default(),
            limiter: RateLimiter::default(),
            requests: Requests::default(),
            peer_calls: PeerCalls::default(),
            commands: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            now: None,
            shutdown_requested: false,
            next_send: 0,
        }
    }

    // ---- getters

    /// Where the machine is, for which generation, and why.
    pub fn state(&self) -> Status {
        Status {
            phase: self.state.phase(),
            conn: self.state.conn(),
            reason: self.reason.clone(),
            attempt: self.attempt,
        }
    }

    /// Why the machine stopped, once it has.
    pub fn stop_reason(&self) -> Option<&StopReason> {
        match &self.state {
            State::Stopped(reason) => Some(reason),
            _ => None,
        }
    }

    /// The counters. They only grow.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The settings the machine was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The profile, for reading its session state.
    pub fn profile(&self) -> &P {
        &self.profile
    }

    /// Frames and payload bytes waiting in the outbound queue (always within the bounds).
    pub fn queued(&self) -> (usize, usize) {
        (self.outbound.len(), self.outbound.bytes())
    }

    /// Requests waiting for their outcome (never more than `max_pending_requests`).
    pub fn pending_requests(&self) -> usize {
        self.requests.len()
    }

    /// Calls of the peer's waiting for the application's answer (all of the current
    /// connection: the others ended with theirs).
    pub fn pending_calls(&self) -> usize {
        self.peer_calls.len()
    }

    // ---- handlers

    /// Feeds what happened on the socket of `input.conn()` at `now`.
    pub fn handle_input(&mut self, input: Input, now: Instant) {
        let now = self.advance(now);
        if matches!(self.state, State::Stopped(_)) {
            return;
        }
        let socket = self.socket(input.conn());
        match (socket, input) {
            (Some(Socket::Pending | Socket::LeavingPending), Input::Opened { .. }) => {
                self.step(Trigger::Opened, now);
            }
            (Some(Socket::Pending | Socket::LeavingPending), Input::OpenFailed { error, .. }) => {
                self.step(Trigger::OpenFailed(error), now);
            }
            (Some(Socket::Open), Input::Frame { conn, frame }) => self.on_frame(conn, frame, now),
            (Some(Socket::Open), Input::StartGranted { .. }) => {
                self.step(Trigger::StartGranted, now);
            }
            (Some(Socket::Open | Socket::LeavingOpen), Input::Closed { cause, .. }) => {
                self.step(Trigger::Closed(cause), now);
            }
            (None, Input::Opened { conn }) if self.ids.issued(conn) => {
                // A superseded attempt opened after all: it never carries traffic (F1).
                self.stale();
                self.commands.push_back(Command::Abort { conn });
            }
            // Stale (an older or unknown generation, or a socket being left) or out of the
            // adapter contract (a duplicate open, a close before open): dropped and counted.
            _ => self.stale(),
        }
    }

    /// Handles every deadline that has passed by `now`. Calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.advance(now);
        for timer in Timer::VALUES {
            let Some(deadline) = self.timers.get(timer).filter(|&at| at <= now) else {
                continue;
            };
            self.timers.stop(timer);
            match timer {
                Timer::Heartbeat => {
                    self.beat(now, false);
                }
                Timer::HeartbeatAck => self.ack_overdue(deadline, now),
                Timer::Silence => {
                    self.stats.zombies += 1;
                    self.step(Trigger::Unresponsive(Reason::Silent), now);
                }
                Timer::RateLimit => self.pump_queue(now),
                Timer::SendExpiry => self.expire_sends(now),
                Timer::Request => self.expire_requests(now),
                Timer::PeerCall => self.expire_calls(now),
                phase => self.step(Trigger::Expired(phase), now),
            }
        }
    }

    // ---- pollers

    /// The next socket command for the adapter.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event<P::Message, P::Response>> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called; `None` while
    /// nothing is pending. Always later than the `now` of the last `handle_timeout`.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next().map(|(_, at)| at)
    }

    /// The next deadline and which timer set it: what the machine is waiting for.
    pub fn next_timeout(&self) -> Option<(Timer, Instant)> {
        self.timers.next()
    }

    // ---- internals shared by the handlers

    /// Time only moves forward: an earlier `now` than one already seen is taken as that one.
    fn advance(&mut self, now: Instant) -> Instant {
        let now = self.now.map_or(now, |seen| seen.max(now));
        self.now = Some(now);
        now
    }

    fn stale(&mut self) {
        self.stats.stale_inputs += 1;
    }

    /// What the machine holds for `conn`: the inputs it accepts depend on it.
    fn socket(&self, conn: ConnId) -> Option<Socket> {
        match self.state {
            State::Connecting { conn: c } if c == conn => Some(Socket::Pending),
            State::Handshaking { conn: c, .. } | State::Ready { conn: c, .. } if c == conn => {
                Some(Socket::Open)
            }
            State::Draining { old, opened, .. } if old == conn => Some(if opened {
                Socket::LeavingOpen
            } else {
                Socket::LeavingPending
            }),
            _ => None,
        }
    }
}
