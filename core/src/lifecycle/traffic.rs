//! Frames in and out of the live connection: messages, liveness, the outbound queue, and
//! requests.

use std::time::Instant;

use super::Client;
use super::calls::returned;
use super::state::State;
use super::transitions::Trigger;
use crate::command::Command;
use crate::conn::ConnId;
use crate::error::SendErrorKind;
use crate::event::{Event, Outcome, Reason, RequestId};
use crate::frame::Frame;
use crate::heartbeat::Ack;
use crate::outbound::{Item, Queued};
use crate::protocol::{Inbound, Protocol};
use crate::requests::Answer;
use crate::timer::Timer;

impl<P: Protocol> Client<P> {
    /// A frame of the current connection.
    pub(super) fn on_frame(&mut self, conn: ConnId, frame: Frame, now: Instant) {
        self.stats.frames_received += 1;
        if let Some(ack) = self.heartbeat.frame_arrived(now, &mut self.timers) {
            self.count_ack(ack);
        }
        // A ping is the transport's (the adapter answers it): it shows the peer alive, as
        // every frame does, and means nothing to a profile.
        if matches!(frame, Frame::Ping(_)) {
            return;
        }
        match self.profile.on_frame(frame) {
            Inbound::Message(message) => self.events.push_back(Event::Message { conn, message }),
            Inbound::Hello => self.step(Trigger::Hello, now),
            Inbound::Ready { resumed, message } => {
                self.step(Trigger::HandshakeDone { resumed }, now);
                // Its message goes out only if it did make the connection ready (a READY
                // before the handshake was sent replaces the connection instead).
                let ready = matches!(self.state, State::Ready { conn: c, .. } if c == conn);
                if let (true, Some(message)) = (ready, message) {
                    self.events.push_back(Event::Message { conn, message });
                }
            }
            Inbound::HeartbeatAck => {
                let ack = self.heartbeat.acked(now, &mut self.timers);
                self.count_ack(ack);
            }
            // Coalesced: the beat that is out answers every request until it is
            // acknowledged, and requests are answered within the rate limit only, so a
            // peer flooding requests cannot make the client write without bound.
            Inbound::HeartbeatRequest => {
                if self.heartbeat.is_awaiting_ack() || !self.limiter.allows_control(now) {
                    self.stats.heartbeat_requests_coalesced += 1;
                } else {
                    self.beat(now, false);
                }
            }
            Inbound::Response { id, result } => self.complete_request(conn, id, result),
            Inbound::Reconnect => self.step(Trigger::ServerReconnect, now),
            Inbound::InvalidSession { resumable, wait } => {
                if !resumable {
                    self.profile.clear_resume();
                }
                self.step(Trigger::InvalidSession { resumable, wait }, now);
            }
            Inbound::Refused { refusal, message } => {
                if let Some(message) = message {
                    self.events.push_back(Event::Message { conn, message });
                }
                self.step(Trigger::Refused(refusal), now);
            }
            Inbound::Call {
                key,
                answer_within,
                message,
            } => {
                // Bounded like requests: a peer that asks faster than the application answers
                // hears at once that the call went unanswered, rather than grow the table.
                if self.peer_calls.len() >= self.config.max_pending_requests {
                    self.stats.calls_unanswered += 1;
                    if let Some(frame) = self.profile.encode_unanswered(&key) {
                        self.write_control(conn, frame, now);
                    }
                    return;
                }
                let deadline = crate::peer_calls::answer_by(now, answer_within);
                let id = self.peer_calls.register(conn, key, deadline);
                self.arm_call_timer();
                self.events.push_back(Event::Call { id, message });
            }
            Inbound::Ignored => {}
            Inbound::Error(error) => self.protocol_error(conn, error, now),
        }
        while let Some(error) = self.profile.poll_protocol_error() {
            self.protocol_error(conn, error, now);
        }
    }

    fn protocol_error(&mut self, conn: ConnId, error: crate::event::ProtocolError, now: Instant) {
        self.stats.protocol_errors += 1;
        let fatal = error.fatal;
        self.events.push_back(Event::ProtocolError {
            conn,
            error: error.clone(),
        });
        if fatal && self.state.live_conn() == Some(conn) {
            self.step(Trigger::Broken(Reason::ProtocolError(error)), now);
        }
    }

    fn count_ack(&mut self, ack: Ack) {
        match ack {
            Ack::Answered(rtt) => self.stats.last_heartbeat_rtt = Some(rtt),
            Ack::Unexpected => self.stats.unexpected_acks += 1,
        }
    }

    /// Asks the profile how the peer's liveness is judged now, and applies it.
    pub(super) fn refresh_liveness(&mut self, now: Instant) {
        let liveness = self.profile.liveness();
        self.heartbeat
            .update(liveness, now, &mut self.rng, &mut self.timers);
    }

    /// Sends a heartbeat on the live connection; false if there is none to send.
    pub(super) fn beat(&mut self, now: Instant, probe: bool) -> bool {
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
        self.write_control(conn, frame, now);
        self.heartbeat.sent(now, probe, &mut self.timers);
        true
    }

    /// The ack deadline passed with no ack. Handled on time, the peer is a zombie (F12).
    /// Handled late, the silence may be ours (a starved or suspended process), so the
    /// machine beats now and waits one more ack timeout before judging.
    pub(super) fn ack_overdue(&mut self, deadline: Instant, now: Instant) {
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

    /// A frame of the machine's own (handshake, heartbeat): it never waits, and may use the
    /// rate limit's reserved slots.
    pub(super) fn write_control(&mut self, conn: ConnId, frame: Frame, now: Instant) {
        self.limiter.record(now);
        self.commands.push_back(Command::Send { conn, frame });
    }

    /// Queues an application frame, then writes what the connection can take now.
    pub(super) fn enqueue(
        &mut self,
        item: Queued,
        now: Instant,
    ) -> Result<(), (SendErrorKind, Queued)> {
        let events = &mut self.events;
        let stats = &mut self.stats;
        let pushed = self.outbound.push(item, |old, reason| {
            if let Item::Send(id) = old.item {
                stats.frames_returned += 1;
                events.push_back(returned(id, old.frame, reason));
            }
        });
        if pushed.is_ok() {
            self.pump_queue(now);
        }
        self.arm_send_expiry();
        pushed
    }

    /// Writes queued frames in order while the session is ready and the rate limit allows;
    /// when it does not, wakes up at the next free slot.
    pub(super) fn pump_queue(&mut self, now: Instant) {
        let State::Ready { conn, .. } = self.state else {
            return;
        };
        self.timers.stop(Timer::RateLimit);
        while !self.outbound.is_empty() {
            if !self.limiter.allows_application(now) {
                self.stats.rate_limited += 1;
                if let Some(at) = self.limiter.next_application_slot(now) {
                    self.timers.set(Timer::RateLimit, at.max(now));
                }
                break;
            }
            let events = &mut self.events;
            let stats = &mut self.stats;
            let next = self.outbound.pop_sendable(now, |old, reason| {
                if let Item::Send(id) = old.item {
                    stats.frames_returned += 1;
                    events.push_back(returned(id, old.frame, reason));
                }
            });
            let Some(queued) = next else { break };
            // Queued before the peer said how large a frame it takes: never written to be
            // closed for. A send comes back; a request ends unsent.
            if self.over_peer_limit(&queued.frame) {
                self.refuse_over_limit(queued);
                continue;
            }
            match queued.item {
                Item::Send(_) => self.stats.frames_sent += 1,
                Item::Request(id) => self.requests.written(id, conn),
            }
            self.limiter.record(now);
            self.commands.push_back(Command::Send {
                conn,
                frame: queued.frame,
            });
        }
        self.arm_send_expiry();
    }

    fn refuse_over_limit(&mut self, queued: Queued) {
        match queued.item {
            Item::Send(id) => {
                self.stats.frames_returned += 1;
                let reason = crate::event::ReturnReason::Refused(SendErrorKind::OverPeerLimit);
                self.events.push_back(returned(id, queued.frame, reason));
            }
            Item::Request(id) => {
                self.requests.forget(id);
                self.arm_request_timer();
                self.events.push_back(Event::Response {
                    id,
                    outcome: Outcome::NotSent,
                });
            }
        }
    }

    pub(super) fn expire_sends(&mut self, now: Instant) {
        let events = &mut self.events;
        let stats = &mut self.stats;
        self.outbound.expire(now, |old, reason| {
            if let Item::Send(id) = old.item {
                stats.frames_returned += 1;
                events.push_back(returned(id, old.frame, reason));
            }
        });
        self.arm_send_expiry();
    }

    pub(super) fn arm_send_expiry(&mut self) {
        match self.outbound.next_expiry() {
            Some(at) => self.timers.set(Timer::SendExpiry, at),
            None => self.timers.stop(Timer::SendExpiry),
        }
    }

    // ---- requests (F14)

    fn complete_request(
        &mut self,
        conn: ConnId,
        id: RequestId,
        result: Result<P::Response, crate::event::RemoteError>,
    ) {
        match self.requests.answer(id, conn) {
            Answer::Accept => {
                let outcome = match result {
                    Ok(response) => Outcome::Response(response),
                    Err(error) => Outcome::Remote(error),
                };
                self.events.push_back(Event::Response { id, outcome });
                self.arm_request_timer();
            }
            Answer::Stray => self.stats.stray_responses += 1,
        }
    }

    pub(super) fn expire_requests(&mut self, now: Instant) {
        let outbound = &mut self.outbound;
        let events = &mut self.events;
        self.requests.expire(now, |id| {
            outbound.remove_request(id);
            events.push_back(Event::Response {
                id,
                outcome: Outcome::TimedOut,
            });
        });
        self.arm_request_timer();
        self.arm_send_expiry();
    }

    /// The live connection `conn` ended: what it carried has an unknown outcome, and what
    /// still waited to be written was never sent.
    pub(super) fn end_requests_of(&mut self, conn: ConnId) {
        let events = &mut self.events;
        self.requests.connection_ended(conn, |id, written| {
            events.push_back(Event::Response {
                id,
                outcome: if written {
                    Outcome::Unknown
                } else {
                    Outcome::NotSent
                },
            });
        });
        self.outbound.remove_requests();
        self.arm_request_timer();
    }

    /// Answers, for the application, every call left unanswered until just before the
    /// peer's timeout.
    pub(super) fn expire_calls(&mut self, now: Instant) {
        let live = self.state.live_conn();
        let mut due = Vec::new();
        self.peer_calls.expire(now, |id, key| due.push((id, key)));
        for (id, key) in due {
            self.stats.calls_unanswered += 1;
            if live == Some(id.conn()) {
                if let Some(frame) = self.profile.encode_unanswered(&key) {
                    self.write_control(id.conn(), frame, now);
                }
            }
        }
        self.arm_call_timer();
    }

    /// The calls `conn` carried can no longer be answered.
    pub(super) fn end_calls_of(&mut self, conn: ConnId) {
        let dropped = self.peer_calls.connection_ended(conn);
        self.stats.calls_unanswered += dropped as u64;
        self.arm_call_timer();
    }

    pub(super) fn arm_call_timer(&mut self) {
        match self.peer_calls.next_deadline() {
            Some(at) => self.timers.set(Timer::PeerCall, at),
            None => self.timers.stop(Timer::PeerCall),
        }
    }

    pub(super) fn arm_request_timer(&mut self) {
        match self.requests.next_deadline() {
            Some(at) => self.timers.set(Timer::Request, at),
            None => self.timers.stop(Timer::Request),
        }
    }
}
