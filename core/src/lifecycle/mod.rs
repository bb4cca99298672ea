//! The client lifecycle machine.

mod state;
mod transitions;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::command::Command;
use crate::config::Config;
use crate::conn::{ConnId, ConnIds};
use crate::error::{CallError, SendError, SendErrorKind};
use crate::event::{Event, Phase, Reason, ReconnectMode, ReturnReason, SendId, StopReason};
use crate::frame::Frame;
use crate::heartbeat::Heartbeat;
use crate::input::Input;
use crate::outbound::{OutboundQueue, Queued};
use crate::protocol::{Inbound, Protocol};
use crate::stats::Stats;
use crate::timer::{DeadlineTable, Timer};

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
///   [`reconnect`](Self::reconnect), [`probe`](Self::probe), [`shutdown`](Self::shutdown);
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
    commands: VecDeque<Command>,
    events: VecDeque<Event<P::Message>>,
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

    /// The profile, for reading its session state.
    pub fn profile(&self) -> &P {
        &self.profile
    }

    /// Frames and payload bytes waiting in the outbound queue (always within the bounds).
    pub fn queued(&self) -> (usize, usize) {
        (self.outbound.len(), self.outbound.bytes())
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
                Timer::SendExpiry => self.expire_sends(now),
                phase => self.step(Trigger::Expired(phase), now),
            }
        }
    }

    // ---- calls

    /// Starts connecting. In backoff, the next attempt starts now. While an open is still
    /// pending, a new one replaces it and the old socket is aborted (F1). Once connected, it
    /// changes nothing.
    pub fn connect(&mut self, now: Instant) -> Result<(), CallError> {
        let now = self.advance(now);
        self.refuse_if_stopped()?;
        self.step(Trigger::Connect, now);
        Ok(())
    }

    /// Replaces the connection: `Fresh` forgets the resume state first. A request while a
    /// reconnect is already under way merges into it (fresh wins); there are never two
    /// drains or two opens (F10). From idle, it connects.
    pub fn reconnect(&mut self, mode: ReconnectMode, now: Instant) -> Result<(), CallError> {
        let now = self.advance(now);
        self.refuse_if_stopped()?;
        if mode == ReconnectMode::Fresh {
            self.profile.clear_resume();
        }
        self.step(Trigger::Reconnect(mode), now);
        Ok(())
    }

    /// Closes the session for good: the socket gets `Close`, then `Abort` if it does not
    /// close in time; frames never sent are handed back as [`Event::Returned`]; no `Open`
    /// follows. The [`Event::Stopped`] comes once the socket is gone. Calling it again
    /// changes nothing.
    pub fn shutdown(&mut self, now: Instant) {
        let now = self.advance(now);
        if self.shutdown_requested {
            return;
        }
        self.shutdown_requested = true;
        self.return_all_queued(ReturnReason::Stopped);
        self.step(Trigger::Shutdown, now);
    }

    /// Sends an application frame (text or binary). When the session is ready and nothing
    /// waits, it is written at once; otherwise it waits in the outbound queue and goes out
    /// in order once ready. A refused frame comes back inside the error.
    pub fn send(&mut self, frame: Frame, now: Instant) -> Result<SendId, SendError> {
        self.send_inner(frame, None, now)
    }

    /// Like [`send`](Self::send), but a frame still waiting after `ttl` is handed back as
    /// [`Event::Returned`] with [`ReturnReason::Expired`] instead of being sent late.
    pub fn send_with_ttl(
        &mut self,
        frame: Frame,
        ttl: Duration,
        now: Instant,
    ) -> Result<SendId, SendError> {
        self.send_inner(frame, Some(ttl), now)
    }

    /// Beats now and judges the peer within one ack timeout: for an application that
    /// learns the network changed.
    pub fn probe(&mut self, now: Instant) -> Result<(), CallError> {
        let now = self.advance(now);
        self.refuse_if_stopped()?;
        if self.state.live_conn().is_none() {
            return Err(CallError::NotConnected);
        }
        if !self.heartbeat.is_running() || !self.beat(now, true) {
            return Err(CallError::NoHeartbeat);
        }
        Ok(())
    }

    // ---- pollers

    /// The next socket command for the adapter.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event<P::Message>> {
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

    fn refuse_if_stopped(&self) -> Result<(), CallError> {
        if self.shutdown_requested || matches!(self.state, State::Stopped(_)) {
            Err(CallError::Stopped)
        } else {
            Ok(())
        }
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

    fn on_frame(&mut self, conn: ConnId, frame: Frame, now: Instant) {
        self.stats.frames_received += 1;
        match self.profile.on_frame(frame) {
            Inbound::Message(message) => self.events.push_back(Event::Message { conn, message }),
            Inbound::Hello { heartbeat_interval } => self.step(
                Trigger::Hello {
                    interval: heartbeat_interval,
                },
                now,
            ),
            Inbound::Ready { resumed, message } => {
                self.step(Trigger::HandshakeDone { resumed }, now);
                if let Some(message) = message {
                    self.events.push_back(Event::Message { conn, message });
                }
            }
            Inbound::HeartbeatAck => self.acked(now),
            Inbound::HeartbeatRequest => {
                self.beat(now, false);
            }
            Inbound::Reconnect => self.step(Trigger::ServerReconnect, now),
            Inbound::InvalidSession { resumable, wait } => {
                if !resumable {
                    self.profile.clear_resume();
                }
                self.step(Trigger::InvalidSession { resumable, wait }, now);
            }
            Inbound::Ignored => {}
            Inbound::Malformed(error) => {
                self.stats.malformed_frames += 1;
                self.events.push_back(Event::Malformed { conn, error });
            }
        }
    }

    /// Sends a heartbeat on the live connection; false if there is none to send.
    fn beat(&mut self, now: Instant, probe: bool) -> bool {
        let Some(conn) = self.state.live_conn() else {
            return false;
        };
        if !self.heartbeat.is_running() {
            return false;
        }
        let Some(frame) = self.profile.heartbeat() else {
            return false;
        };
        self.stats.heartbeats += 1;
        self.commands.push_back(Command::Send { conn, frame });
        self.heartbeat.sent(now, probe, &mut self.timers);
        true
    }

    fn acked(&mut self, now: Instant) {
        match self.heartbeat.acked(now, &mut self.timers) {
            crate::heartbeat::Ack::Answered(rtt) => self.stats.last_heartbeat_rtt = Some(rtt),
            crate::heartbeat::Ack::Unexpected => self.stats.unexpected_acks += 1,
        }
    }

    /// The ack deadline passed with no ack. Handled on time, the peer is a zombie (F12).
    /// Handled late, the silence may be ours (a starved or suspended process), so the
    /// machine beats now and waits one more ack timeout before judging.
    fn ack_overdue(&mut self, deadline: Instant, now: Instant) {
        let probing = self.heartbeat.is_probing();
        self.heartbeat.ack_overdue();
        if now.saturating_duration_since(deadline) > self.config.late_tick {
            self.stats.late_ticks += 1;
            self.beat(now, probing);
            return;
        }
        self.stats.zombies += 1;
        let reason = if probing {
            Reason::ProbeFailed
        } else {
            Reason::Zombie
        };
        self.step(Trigger::Unresponsive(reason), now);
    }

    fn send_inner(
        &mut self,
        frame: Frame,
        ttl: Option<Duration>,
        now: Instant,
    ) -> Result<SendId, SendError> {
        let now = self.advance(now);
        if self.refuse_if_stopped().is_err() {
            return Err(SendError {
                kind: SendErrorKind::Stopped,
                frame,
            });
        }
        if !frame.is_data() {
            return Err(SendError {
                kind: SendErrorKind::NotData,
                frame,
            });
        }
        self.next_send += 1;
        let id = SendId(self.next_send);
        if let State::Ready { conn, .. } = self.state {
            if self.outbound.is_empty() {
                self.write(conn, frame);
                return Ok(id);
            }
        }
        let item = Queued {
            id,
            frame,
            // A time to live too long to represent never runs out.
            expires_at: ttl.and_then(|ttl| now.checked_add(ttl)),
        };
        let events = &mut self.events;
        let stats = &mut self.stats;
        let pushed = self.outbound.push(item, |old| {
            stats.frames_returned += 1;
            events.push_back(returned(old, ReturnReason::Overflow));
        });
        self.arm_send_expiry();
        match pushed {
            Ok(()) => Ok(id),
            Err((kind, item)) => Err(SendError {
                kind,
                frame: item.frame,
            }),
        }
    }

    fn write(&mut self, conn: ConnId, frame: Frame) {
        self.stats.frames_sent += 1;
        self.commands.push_back(Command::Send { conn, frame });
    }

    /// Writes every queued frame on `conn`, handing back those whose time ran out.
    fn flush_queue(&mut self, conn: ConnId, now: Instant) {
        loop {
            let events = &mut self.events;
            let stats = &mut self.stats;
            let next = self.outbound.pop_sendable(now, |old| {
                stats.frames_returned += 1;
                events.push_back(returned(old, ReturnReason::Expired));
            });
            match next {
                Some(item) => self.write(conn, item.frame),
                None => break,
            }
        }
        self.arm_send_expiry();
    }

    fn expire_sends(&mut self, now: Instant) {
        let events = &mut self.events;
        let stats = &mut self.stats;
        self.outbound.expire(now, |old| {
            stats.frames_returned += 1;
            events.push_back(returned(old, ReturnReason::Expired));
        });
        self.arm_send_expiry();
    }

    fn return_all_queued(&mut self, reason: ReturnReason) {
        let events = &mut self.events;
        let stats = &mut self.stats;
        self.outbound.drain(|old| {
            stats.frames_returned += 1;
            events.push_back(returned(old, reason));
        });
        self.arm_send_expiry();
    }

    fn arm_send_expiry(&mut self) {
        match self.outbound.next_expiry() {
            Some(at) => self.timers.set(Timer::SendExpiry, at),
            None => self.timers.stop(Timer::SendExpiry),
        }
    }
}

fn returned<M>(item: Queued, reason: ReturnReason) -> Event<M> {
    Event::Returned {
        id: item.id,
        frame: item.frame,
        reason,
    }
}
