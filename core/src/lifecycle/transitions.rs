//! Every state transition of the client machine, in one `match`.

use std::time::{Duration, Instant};

use super::Client;
use super::state::{Pace, Plan, Stage, State, Then};
use crate::backoff::uniform;
use crate::command::Command;
use crate::conn::ConnId;
use crate::event::{Event, ProtocolError, Reason, ReconnectMode, StopReason, Transition};
use crate::input::{CloseCause, OpenError, OpenErrorKind};
use crate::protocol::{CloseClass, CloseIntent, OnOpen, Protocol, Refusal};
use crate::timer::{DeadlineTable, Timer, after};

/// Something that may move the machine: a user call, a socket event of the current (or
/// leaving) socket, a profile signal, or a phase deadline. Stale inputs never become
/// triggers.
#[derive(Debug)]
pub(super) enum Trigger {
    Connect,
    Reconnect(ReconnectMode),
    /// The application ends the session; its close says whether the peer may keep it for a
    /// resume by another process (`Reconnect(Resume)`) or not (`Shutdown`).
    Shutdown(CloseIntent),
    Opened,
    OpenFailed(OpenError),
    Closed(CloseCause),
    Hello,
    StartGranted,
    HandshakeDone {
        resumed: bool,
    },
    ServerReconnect,
    InvalidSession {
        resumable: bool,
        wait: (Duration, Duration),
    },
    /// The peer refused the handshake.
    Refused(Refusal),
    /// The peer did not acknowledge a heartbeat (or a probe) in time, or fell silent.
    Unresponsive(Reason),
    /// The peer broke the protocol beyond what the connection survives.
    Broken(Reason),
    Expired(Timer),
}

/// The state without its owned data, so the transition `match` can call `&mut self`.
#[derive(Debug, Clone, Copy)]
enum View {
    Idle,
    Connecting(ConnId),
    Handshaking(ConnId, Stage),
    Ready(ConnId),
    Draining {
        old: ConnId,
        reconnecting: bool,
        aborted: bool,
    },
    Backoff,
    Stopped,
}

/// How a socket is left.
#[derive(Debug, Clone)]
enum Exit {
    /// Close handshake first; abort at the drain timeout.
    Close(CloseIntent),
    /// The same, with a close frame the profile chose.
    CloseWith(crate::frame::CloseFrame),
    /// Drop it at once (it is dead, or not open yet).
    Abort,
}

impl<P: Protocol> Client<P> {
    /// The transition table. Each arm is one way out of one state; a trigger that does not
    /// apply to the state it meets changes nothing.
    pub(super) fn step(&mut self, trigger: Trigger, now: Instant) {
        use Trigger as T;
        use View as V;
        match (self.view(), trigger) {
            (V::Stopped, _) => {}

            (V::Idle, T::Connect) => self.start_streak(Reason::UserConnect, now),
            (V::Idle, T::Reconnect(mode)) => self.start_streak(Reason::UserReconnect(mode), now),
            (V::Idle, T::Shutdown(_)) => self.stop(StopReason::Shutdown, Reason::UserShutdown),

            // F1: the newer connect wins; the pending socket is aborted and, should it open
            // anyway, aborted again and never used.
            (V::Connecting(old), T::Connect) => {
                self.commands.push_back(Command::Abort { conn: old });
                self.start_streak(Reason::UserConnect, now);
            }
            // F10: nothing is written yet, so a pending open already serves any reconnect
            // (a fresh one cleared the resume state before reaching here).
            (V::Connecting(_), T::Reconnect(_)) => {}
            (V::Connecting(conn), T::Shutdown(_)) => self.leave(
                conn,
                Exit::Abort,
                Then::Stop(StopReason::Shutdown),
                Reason::UserShutdown,
                now,
            ),
            (V::Connecting(conn), T::Opened) => self.opened(conn, now),
            (V::Connecting(_), T::OpenFailed(error)) => self.open_failed(error, now),
            (V::Connecting(conn), T::Expired(Timer::Connect)) => {
                self.stats.open_failures += 1;
                self.profile.on_open_failed();
                self.leave(
                    conn,
                    Exit::Abort,
                    Then::Reconnect(Plan::new(Pace::Backoff, Reason::ConnectTimeout)),
                    Reason::ConnectTimeout,
                    now,
                );
            }

            (V::Handshaking(conn, Stage::Hello), T::Hello) => self.hello(conn, now),
            (V::Handshaking(conn, Stage::StartGate), T::StartGranted) => {
                self.write_handshake(conn, now);
            }
            (V::Handshaking(conn, Stage::StartGate), T::Expired(Timer::StartGate)) => {
                self.recycle(conn, Reason::StartTimeout, now);
            }
            // Ready only once the handshake was written: a server that says so earlier
            // (before identify, during the start gate or the wait before re-identifying)
            // breaks the protocol, and the connection is replaced.
            (V::Handshaking(conn, Stage::Ready { .. }), T::HandshakeDone { resumed }) => {
                self.ready(conn, resumed, now);
            }
            (V::Handshaking(conn, _), T::HandshakeDone { .. }) => {
                let error = ProtocolError::fatal("ready before the handshake was sent");
                self.recycle(conn, Reason::ProtocolError(error), now);
            }
            // A refused resume keeps the socket: wait as the server asks, then identify
            // afresh on it (Discord's rule for resuming), rather than open another. After a
            // gateway restart this halves the connections a fleet makes.
            (
                V::Handshaking(conn, Stage::Ready { resuming: true }),
                T::InvalidSession {
                    resumable: false,
                    wait,
                },
            ) => self.reidentify_later(conn, wait, now),
            (V::Handshaking(conn, Stage::Reidentify), T::Expired(Timer::Reidentify)) => {
                self.begin_handshake(conn, now);
            }
            // F11: a stalled handshake recycles the connection, resuming where possible.
            (V::Handshaking(conn, _), T::Expired(Timer::Hello)) => {
                self.recycle(conn, Reason::HelloTimeout, now);
            }
            (V::Handshaking(conn, _), T::Expired(Timer::Ready)) => {
                self.recycle(conn, Reason::ReadyTimeout, now);
            }
            // F10: a handshake under way serves the request unless it asked to resume and
            // the request is for a fresh session.
            (V::Handshaking(_, stage), T::Reconnect(mode)) if !needs_new_socket(stage, mode) => {}

            (V::Handshaking(conn, _) | V::Ready(conn), trigger) => {
                self.live(conn, trigger, now);
            }

            (V::Draining { old, .. }, T::Opened) => {
                // It was aborted before it opened; the adapter raced. Abort it again and
                // wait for its close.
                self.commands.push_back(Command::Abort { conn: old });
                if let State::Draining { opened, .. } = &mut self.state {
                    *opened = true;
                }
            }
            (V::Draining { .. }, T::Closed(_) | T::OpenFailed(_)) => {
                self.drained(Reason::Drained, now);
            }
            (
                V::Draining {
                    old,
                    aborted: false,
                    ..
                },
                T::Expired(Timer::Drain),
            ) => {
                self.abort_draining(old, now);
            }
            (V::Draining { .. }, T::Expired(Timer::AbortGrace)) => {
                self.stats.abandoned += 1;
                self.drained(Reason::Abandoned, now);
            }
            // F10: a reconnect already waits for this drain.
            (
                V::Draining {
                    reconnecting: true, ..
                },
                T::Reconnect(_),
            ) => {}
            // F9: shutting down during a drain: the drain ends the session instead.
            (
                V::Draining {
                    reconnecting: true, ..
                },
                T::Shutdown(_),
            ) => {
                if let State::Draining { then, .. } = &mut self.state {
                    *then = Then::Stop(StopReason::Shutdown);
                }
            }

            (V::Backoff, T::Expired(Timer::Backoff)) => self.open(Reason::BackoffElapsed, now),
            // F3: the application's call replaces the backoff; its deadline goes with it.
            (V::Backoff, T::Connect) => self.start_streak(Reason::UserConnect, now),
            (V::Backoff, T::Reconnect(mode)) => {
                self.start_streak(Reason::UserReconnect(mode), now);
            }
            (V::Backoff, T::Shutdown(_)) => self.stop(StopReason::Shutdown, Reason::UserShutdown),

            // A connect while connected or draining, a second hello or ready, a deadline of
            // another phase (cleared on every transition, so it cannot occur): no effect.
            _ => {}
        }
    }

    /// The ways out of a live state (handshaking or ready).
    fn live(&mut self, conn: ConnId, trigger: Trigger, now: Instant) {
        use Trigger as T;
        match trigger {
            T::Reconnect(mode) => self.leave(
                conn,
                Exit::Close(CloseIntent::Reconnect(mode)),
                Then::Reconnect(Plan::new(Pace::Now, Reason::UserReconnect(mode))),
                Reason::UserReconnect(mode),
                now,
            ),
            T::Shutdown(intent) => self.leave(
                conn,
                Exit::Close(intent),
                Then::Stop(StopReason::Shutdown),
                Reason::UserShutdown,
                now,
            ),
            T::Closed(cause) => self.live_closed(conn, cause, now),
            // Paced like a loss: a stable session comes back within the first-retry window
            // (a whole fleet told to reconnect does not return in one wave), and a server
            // that asks again and again is met with backoff, not a loop.
            T::ServerReconnect => {
                let pace = self.pace_after_loss(now);
                self.leave(
                    conn,
                    Exit::Close(CloseIntent::Reconnect(ReconnectMode::Resume)),
                    Then::Reconnect(Plan::new(pace, Reason::ServerReconnect)),
                    Reason::ServerReconnect,
                    now,
                );
            }
            T::InvalidSession { resumable, wait } => {
                let mode = if resumable {
                    ReconnectMode::Resume
                } else {
                    ReconnectMode::Fresh
                };
                let reason = Reason::InvalidSession { resumable };
                self.leave(
                    conn,
                    Exit::Close(CloseIntent::Reconnect(mode)),
                    Then::Reconnect(Plan::new(Pace::Within(wait.0, wait.1), reason.clone())),
                    reason,
                    now,
                );
            }
            T::Broken(reason) => {
                let pace = self.pace_after_loss(now);
                self.leave(
                    conn,
                    Exit::Close(CloseIntent::Reconnect(ReconnectMode::Resume)),
                    Then::Reconnect(Plan::new(pace, reason.clone())),
                    reason,
                    now,
                );
            }
            // F12: the peer is gone; a close handshake would only wait for it. Abort and
            // resume, exactly once: leaving clears the heartbeat deadlines. A profile whose
            // peers expect to be told gets its close frame out first, the drain bounded.
            T::Unresponsive(reason) => {
                let pace = self.pace_after_loss(now);
                let exit = match self.profile.unresponsive_close() {
                    Some(frame) => Exit::CloseWith(frame),
                    None => Exit::Abort,
                };
                self.leave(
                    conn,
                    exit,
                    Then::Reconnect(Plan::new(pace, reason.clone())),
                    reason,
                    now,
                );
            }
            // The peer refused the handshake and said what would help: waiting (its hint a
            // floor on the backoff), waiting on a person at a slow pace, or nothing.
            T::Refused(refusal) => {
                let (then, reason) = match refusal {
                    Refusal::Retry { error, after } => {
                        let reason = Reason::Refused(error);
                        let plan = Plan {
                            pace: Pace::Backoff,
                            reason: reason.clone(),
                            retry_after: after,
                        };
                        (Then::Reconnect(plan), reason)
                    }
                    Refusal::Await { error, wait } => {
                        let reason = Reason::Refused(error);
                        let plan = Plan::new(Pace::Within(wait.0, wait.1), reason.clone());
                        (Then::Reconnect(plan), reason)
                    }
                    Refusal::Stop(error) => (
                        Then::Stop(StopReason::Refused(error.clone())),
                        Reason::Refused(error),
                    ),
                };
                self.leave(
                    conn,
                    Exit::Close(CloseIntent::Reconnect(ReconnectMode::Fresh)),
                    then,
                    reason,
                    now,
                );
            }
            _ => {}
        }
    }

    fn view(&self) -> View {
        match &self.state {
            State::Idle => View::Idle,
            State::Connecting { conn } => View::Connecting(*conn),
            State::Handshaking { conn, stage } => View::Handshaking(*conn, *stage),
            State::Ready { conn, .. } => View::Ready(*conn),
            State::Draining {
                old, then, aborted, ..
            } => View::Draining {
                old: *old,
                reconnecting: matches!(then, Then::Reconnect(_)),
                aborted: *aborted,
            },
            State::Backoff => View::Backoff,
            State::Stopped(_) => View::Stopped,
        }
    }

    /// Records the new state and reports it as a [`Transition`].
    fn transition(&mut self, to: State, reason: Reason, next_delay: Option<Duration>) {
        let from = self.state.phase();
        self.state = to;
        self.reason = reason.clone();
        self.events.push_back(Event::Transition(Transition {
            from,
            to: self.state.phase(),
            reason,
            conn: self.state.conn(),
            attempt: self.attempt,
            next_delay,
        }));
    }

    /// A first attempt the application asked for.
    fn start_streak(&mut self, reason: Reason, now: Instant) {
        self.attempt = 1;
        self.open(reason, now);
    }

    fn open(&mut self, reason: Reason, now: Instant) {
        if self.shutdown_requested {
            // Unreachable by the table (shutdown leaves every path that opens); kept so that
            // no `Open` can follow a shutdown whatever changes above (I3).
            self.stop(StopReason::Shutdown, reason);
            return;
        }
        let conn = self.ids.issue();
        self.timers.stop_connection();
        self.timers.stop(Timer::Backoff);
        self.heartbeat.reset();
        self.stats.opens += 1;
        self.commands.push_back(Command::Open {
            conn,
            endpoint: self.profile.endpoint(),
        });
        self.timers
            .set(Timer::Connect, after(now, self.config.connect_timeout));
        self.transition(State::Connecting { conn }, reason, None);
        self.events.push_back(Event::Connecting {
            conn,
            attempt: self.attempt,
        });
    }

    fn opened(&mut self, conn: ConnId, now: Instant) {
        self.stats.opened += 1;
        self.timers.stop(Timer::Connect);
        self.limiter.reset(self.profile.rate_limit());
        let on_open = self.profile.on_open();
        self.refresh_liveness(now);
        let stage = Stage::Hello;
        self.transition(State::Handshaking { conn, stage }, Reason::Opened, None);
        match on_open {
            OnOpen::Ready => self.ready(conn, false, now),
            OnOpen::Handshake => self.begin_handshake(conn, now),
            OnOpen::AwaitHello => {
                self.timers
                    .set(Timer::Hello, after(now, self.config.hello_timeout));
            }
        }
    }

    fn hello(&mut self, conn: ConnId, now: Instant) {
        self.timers.stop(Timer::Hello);
        self.refresh_liveness(now);
        self.begin_handshake(conn, now);
    }

    /// A fresh session waits for the start gate, when one is configured; a resume does not.
    fn begin_handshake(&mut self, conn: ConnId, now: Instant) {
        if self.config.start_gate && !self.profile.can_resume() {
            self.commands.push_back(Command::RequestStart { conn });
            self.timers
                .set(Timer::StartGate, after(now, self.config.start_gate_timeout));
            let stage = Stage::StartGate;
            self.transition(
                State::Handshaking { conn, stage },
                Reason::StartRequested,
                None,
            );
        } else {
            self.write_handshake(conn, now);
        }
    }

    /// Waits within `wait` on the same socket before a fresh handshake.
    fn reidentify_later(&mut self, conn: ConnId, wait: (Duration, Duration), now: Instant) {
        self.timers.stop(Timer::Ready);
        let delay = uniform(wait.0, wait.1, &mut self.rng);
        self.timers.set(Timer::Reidentify, after(now, delay));
        let stage = Stage::Reidentify;
        self.transition(
            State::Handshaking { conn, stage },
            Reason::InvalidSession { resumable: false },
            Some(delay),
        );
    }

    /// F13: the machine writes the handshake itself, ahead of any application frame.
    fn write_handshake(&mut self, conn: ConnId, now: Instant) {
        self.timers.stop(Timer::StartGate);
        let stage = Stage::Ready {
            resuming: self.profile.can_resume(),
        };
        if let Some(frame) = self.profile.handshake() {
            self.write_control(conn, frame, now);
        }
        self.timers
            .set(Timer::Ready, after(now, self.config.ready_timeout));
        self.transition(
            State::Handshaking { conn, stage },
            Reason::HandshakeSent,
            None,
        );
    }

    /// Every handshake deadline goes with the handshake.
    fn ready(&mut self, conn: ConnId, resumed: bool, now: Instant) {
        for timer in [
            Timer::Hello,
            Timer::StartGate,
            Timer::Ready,
            Timer::Reidentify,
        ] {
            self.timers.stop(timer);
        }
        self.stats.ready += 1;
        if resumed {
            self.stats.resumed += 1;
        }
        self.transition(
            State::Ready { conn, since: now },
            Reason::Ready { resumed },
            None,
        );
        self.events.push_back(Event::Ready { conn, resumed });
        self.refresh_liveness(now);
        self.pump_queue(now);
    }

    /// Replaces a connection that stalled, resuming where the profile can.
    fn recycle(&mut self, conn: ConnId, reason: Reason, now: Instant) {
        self.leave(
            conn,
            Exit::Close(CloseIntent::Reconnect(ReconnectMode::Resume)),
            Then::Reconnect(Plan::new(Pace::Backoff, reason.clone())),
            reason,
            now,
        );
    }

    /// Starts leaving `conn`; `then` happens once it is gone (or abandoned). Nothing new
    /// opens meanwhile, and nothing the socket sends reaches the application.
    fn leave(&mut self, conn: ConnId, exit: Exit, then: Then, reason: Reason, now: Instant) {
        let was_open = self.state.live_conn() == Some(conn);
        let was_ready = matches!(self.state, State::Ready { .. });
        self.timers.stop_connection();
        self.heartbeat.reset();
        let close = match exit {
            Exit::Close(intent) => Some(self.profile.close_frame(intent)),
            Exit::CloseWith(frame) => Some(frame),
            Exit::Abort => None,
        };
        let aborted = match close {
            Some(frame) => {
                self.commands.push_back(Command::Close { conn, frame });
                self.timers
                    .set(Timer::Drain, after(now, self.config.drain_timeout));
                false
            }
            None => {
                self.commands.push_back(Command::Abort { conn });
                self.timers
                    .set(Timer::AbortGrace, after(now, self.config.abort_grace));
                true
            }
        };
        self.transition(
            State::Draining {
                old: conn,
                then,
                aborted,
                opened: was_open,
            },
            reason.clone(),
            None,
        );
        if was_open {
            self.events.push_back(Event::Disconnected { conn, reason });
            self.connection_ended(conn, was_ready);
        }
    }

    /// F14: what the connection carried ends with it; the profile learns how it went.
    fn connection_ended(&mut self, conn: ConnId, was_ready: bool) {
        self.end_requests_of(conn);
        self.end_calls_of(conn);
        self.profile.on_connection_end(was_ready);
    }

    /// F8: the drain timed out; abort, and give the adapter a short grace to confirm.
    fn abort_draining(&mut self, old: ConnId, now: Instant) {
        self.commands.push_back(Command::Abort { conn: old });
        self.timers.stop(Timer::Drain);
        self.timers
            .set(Timer::AbortGrace, after(now, self.config.abort_grace));
        if let State::Draining { aborted, .. } = &mut self.state {
            *aborted = true;
        }
        let to = self.state.clone();
        self.transition(to, Reason::DrainTimeout, None);
    }

    /// The socket being left is gone: do what the drain was for.
    fn drained(&mut self, reason: Reason, now: Instant) {
        let State::Draining { then, .. } = &self.state else {
            return;
        };
        let then = then.clone();
        self.timers.stop_connection();
        match then {
            Then::Stop(stop) => self.stop(stop, reason),
            Then::Reconnect(_) if self.shutdown_requested => {
                self.stop(StopReason::Shutdown, reason);
            }
            Then::Reconnect(plan) => self.reconnect_after(plan, reason, now),
        }
    }

    /// The peer closed the live socket (F4): exactly one reconnect path, unless fatal.
    fn live_closed(&mut self, conn: ConnId, cause: CloseCause, now: Instant) {
        let pace = self.pace_after_loss(now);
        let was_ready = matches!(self.state, State::Ready { .. });
        let class = self.profile.classify_close(&cause);
        let reason = Reason::Closed(cause.clone());
        self.timers.stop_connection();
        self.heartbeat.reset();
        self.events.push_back(Event::Disconnected {
            conn,
            reason: reason.clone(),
        });
        self.connection_ended(conn, was_ready);
        match class {
            CloseClass::Fatal => self.stop(StopReason::Fatal(cause), reason),
            CloseClass::Fresh | CloseClass::Resume => {
                if class == CloseClass::Fresh {
                    self.profile.clear_resume();
                }
                let plan = Plan {
                    pace,
                    reason: reason.clone(),
                    retry_after: self.profile.retry_hint(),
                };
                self.reconnect_after(plan, reason, now);
            }
        }
    }

    /// F3: the pending open failed; back off, honouring the server's retry hint, or stop
    /// when the status says retrying cannot help.
    fn open_failed(&mut self, error: OpenError, now: Instant) {
        self.stats.open_failures += 1;
        self.profile.on_open_failed();
        self.timers.stop_connection();
        let reason = Reason::OpenFailed(error.clone());
        let final_status = matches!(error.kind, OpenErrorKind::Http { status }
            if self.config.stop_on_status.contains(&status));
        let permanent = error.kind.is_permanent() && !self.config.retry_permanent_failures;
        if final_status || permanent {
            self.stop(StopReason::Rejected(error), reason);
            return;
        }
        let plan = Plan {
            pace: Pace::Backoff,
            reason: reason.clone(),
            retry_after: error.retry_after,
        };
        self.reconnect_after(plan, reason, now);
    }

    /// How a lost connection counts: a ready one that stayed up long enough starts a new
    /// streak; anything else is one more failure.
    fn pace_after_loss(&self, now: Instant) -> Pace {
        match self.state {
            State::Ready { since, .. } => Pace::AfterReady {
                stable: now.saturating_duration_since(since) >= self.config.stable_after,
            },
            _ => Pace::Backoff,
        }
    }

    /// Announces the next attempt and waits for it, or opens at once, or gives up.
    fn reconnect_after(&mut self, plan: Plan, reason: Reason, now: Instant) {
        let delay = match plan.pace {
            Pace::Now => {
                self.attempt = 1;
                Duration::ZERO
            }
            Pace::AfterReady { stable: true } => {
                self.attempt = 1;
                uniform(
                    Duration::ZERO,
                    self.config.first_retry_window,
                    &mut self.rng,
                )
            }
            Pace::AfterReady { stable: false } | Pace::Backoff | Pace::Within(..) => {
                let failures = self.attempt.max(1);
                if self.config.max_attempts.is_some_and(|max| failures >= max) {
                    self.stop(StopReason::GaveUp { attempts: failures }, Reason::GaveUp);
                    return;
                }
                self.attempt = failures + 1;
                let backoff = self.backoff.delay(failures, &mut self.rng);
                match plan.pace {
                    // The server's wait is a floor; a streak of them still backs off.
                    Pace::Within(min, max) => backoff.max(uniform(min, max, &mut self.rng)),
                    _ => backoff,
                }
            }
        };
        let hint = plan
            .retry_after
            .map_or(Duration::ZERO, |d| d.min(self.config.retry_after_max));
        let delay = delay.max(hint);
        self.stats.reconnects += 1;
        self.events.push_back(Event::Reconnecting {
            delay,
            attempt: self.attempt,
            resume: self.profile.can_resume(),
            reason: plan.reason,
        });
        if delay.is_zero() {
            self.open(reason, now);
        } else {
            let until = after(now, delay);
            self.timers.set(Timer::Backoff, until);
            self.transition(State::Backoff, reason, Some(delay));
        }
    }

    /// Terminal. What was never sent is handed back first; `Stopped` is the last event.
    fn stop(&mut self, stop: StopReason, reason: Reason) {
        self.timers = DeadlineTable::default();
        self.peer_calls.clear();
        self.heartbeat.reset();
        self.hand_back_everything();
        self.transition(State::Stopped(stop.clone()), reason, None);
        self.events.push_back(Event::Stopped { reason: stop });
    }
}

fn needs_new_socket(stage: Stage, mode: ReconnectMode) -> bool {
    matches!(
        (stage, mode),
        (Stage::Ready { resuming: true }, ReconnectMode::Fresh)
    )
}
