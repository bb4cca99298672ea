//! The application's calls on the client machine.

use crate::protocol::CloseIntent;
use std::borrow::Cow;
use std::time::{Duration, Instant};

use super::Client;
use super::state::State;
use super::transitions::Trigger;
use crate::error::{
    AnswerError, CallError, RequestError, RequestErrorKind, SendError, SendErrorKind,
};
use crate::event::{ReconnectMode, RequestId, ReturnReason, SendId};
use crate::frame::Frame;
use crate::outbound::{Item, Queued};
use crate::peer_calls::CallId;
use crate::protocol::Protocol;

/// How a send is to be treated while it waits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendOptions {
    ttl: Option<Duration>,
    key: Option<Cow<'static, str>>,
}

impl SendOptions {
    /// No time to live, no key.
    pub fn new() -> Self {
        Self::default()
    }

    /// A frame still waiting after `ttl` is handed back as expired instead of sent late.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// A newer send with the same key replaces this one while both wait (presence
    /// updates, say): only the latest goes out.
    pub fn key(mut self, key: impl Into<Cow<'static, str>>) -> Self {
        self.key = Some(key.into());
        self
    }
}

impl<P: Protocol> Client<P> {
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
    /// close in time; frames never sent are handed back as
    /// [`Event::Returned`](crate::Event::Returned) and pending requests end `Stopped`; no
    /// `Open` follows. The [`Event::Stopped`](crate::Event::Stopped) comes once the socket
    /// is gone. Calling it again changes nothing.
    pub fn shutdown(&mut self, now: Instant) {
        self.stop_with(CloseIntent::Shutdown, now);
    }

    /// [`shutdown`](Self::shutdown), closing the socket as a client that means to resume
    /// (Discord: 4000, not 1000), so the peer keeps the session for another process to
    /// resume: export it first (`Discord::session`), import it there
    /// (`DiscordBuilder::session`). What a shutdown hands back, this hands back too.
    pub fn suspend(&mut self, now: Instant) {
        self.stop_with(CloseIntent::Reconnect(ReconnectMode::Resume), now);
    }

    fn stop_with(&mut self, intent: CloseIntent, now: Instant) {
        let now = self.advance(now);
        if self.shutdown_requested {
            return;
        }
        self.shutdown_requested = true;
        self.hand_back_everything();
        self.step(Trigger::Shutdown(intent), now);
    }

    /// Sends an application frame (text or binary). When the session is ready, nothing
    /// waits and the rate limit allows, it is written at once; otherwise it waits in the
    /// outbound queue and goes out in order. A refused frame comes back inside the error.
    pub fn send(&mut self, frame: Frame, now: Instant) -> Result<SendId, SendError> {
        self.send_with(frame, SendOptions::new(), now)
    }

    /// Like [`send`](Self::send), with a time to live.
    pub fn send_with_ttl(
        &mut self,
        frame: Frame,
        ttl: Duration,
        now: Instant,
    ) -> Result<SendId, SendError> {
        self.send_with(frame, SendOptions::new().ttl(ttl), now)
    }

    /// Like [`send`](Self::send), with a time to live and a coalescing key.
    pub fn send_with(
        &mut self,
        frame: Frame,
        options: SendOptions,
        now: Instant,
    ) -> Result<SendId, SendError> {
        let now = self.advance(now);
        let refuse = |kind, frame| Err(SendError { kind, frame });
        if self.refuse_if_stopped().is_err() {
            return refuse(SendErrorKind::Stopped, frame);
        }
        if !frame.is_data() {
            return refuse(SendErrorKind::NotData, frame);
        }
        if options.ttl.is_some_and(|ttl| ttl > crate::timer::MAX_DELAY) {
            return refuse(SendErrorKind::TtlTooLong, frame);
        }
        if self.over_peer_limit(&frame) {
            return refuse(SendErrorKind::OverPeerLimit, frame);
        }
        self.next_send += 1;
        let id = SendId(self.next_send);
        let item = Queued {
            item: Item::Send(id),
            frame,
            // A time to live too long to represent never runs out.
            expires_at: options.ttl.map(|ttl| crate::timer::after(now, ttl)),
            key: options.key,
        };
        match self.enqueue(item, now) {
            Ok(()) => Ok(id),
            Err((kind, item)) => refuse(kind, item.frame),
        }
    }

    /// Like [`send_with`](Self::send_with), for callers that cannot wait for the verdict
    /// (an adapter's fire-and-forget path): a refused frame comes back as
    /// [`Event::Returned`](crate::Event::Returned) with
    /// [`ReturnReason::Refused`](crate::ReturnReason::Refused). Refusals use up an id too,
    /// so every frame handed in is accounted for by its id.
    pub fn send_or_return(&mut self, frame: Frame, options: SendOptions, now: Instant) -> SendId {
        match self.send_with(frame, options, now) {
            Ok(id) => id,
            Err(SendError { kind, frame }) => {
                self.next_send += 1;
                let id = SendId(self.next_send);
                self.stats.frames_returned += 1;
                self.events
                    .push_back(returned(id, frame, ReturnReason::Refused(kind)));
                id
            }
        }
    }

    /// Sends a request and tracks it to exactly one outcome, reported as
    /// [`Event::Response`](crate::Event::Response): the peer's answer or error on the
    /// connection that carried it, `NotSent` (its connection ended while it still waited:
    /// safe to retry), `Unknown` (written, then the connection ended), `TimedOut` after
    /// `timeout`, or `Stopped`. It is registered before its frame can be written.
    pub fn request(
        &mut self,
        request: P::Request,
        timeout: Duration,
        now: Instant,
    ) -> Result<RequestId, RequestError> {
        let now = self.advance(now);
        let refuse = |kind| Err(RequestError { kind, frame: None });
        if self.refuse_if_stopped().is_err() {
            return refuse(RequestErrorKind::Stopped);
        }
        if timeout > crate::timer::MAX_DELAY {
            return refuse(RequestErrorKind::TimeoutTooLong);
        }
        if !self.config.requests_wait_for_ready && !matches!(self.state, State::Ready { .. }) {
            return refuse(RequestErrorKind::NotReady);
        }
        if self.requests.len() >= self.config.max_pending_requests {
            return refuse(RequestErrorKind::TooMany);
        }
        let deadline = crate::timer::after(now, timeout);
        let id = self.requests.register(deadline);
        let frame = self.profile.encode_request(id, request);
        if self.over_peer_limit(&frame) {
            self.requests.forget(id);
            return Err(RequestError {
                kind: RequestErrorKind::OverPeerLimit,
                frame: Some(frame),
            });
        }
        let item = Queued {
            item: Item::Request(id),
            frame,
            expires_at: None,
            key: None,
        };
        self.stats.requests += 1;
        self.arm_request_timer();
        match self.enqueue(item, now) {
            Ok(()) => Ok(id),
            Err((kind, item)) => {
                // Never registered as far as the application is concerned: no outcome.
                self.requests.forget(id);
                self.arm_request_timer();
                let kind = match kind {
                    SendErrorKind::TooLarge => RequestErrorKind::TooLarge,
                    _ => RequestErrorKind::QueueFull,
                };
                Err(RequestError {
                    kind,
                    frame: Some(item.frame),
                })
            }
        }
    }

    /// Answers the peer's call `id` ([`Event::Call`](crate::Event::Call)) on the connection
    /// that carried it. Refused, and written nowhere, when that connection has ended
    /// ([`AnswerError::Stale`]: the peer that asked no longer waits, and the current
    /// connection never asked), when the call was answered or expired already, or when the
    /// answer is larger than the peer accepts.
    pub fn answer(
        &mut self,
        id: CallId,
        answer: P::Answer,
        now: Instant,
    ) -> Result<(), AnswerError> {
        let now = self.advance(now);
        if self.refuse_if_stopped().is_err() {
            return Err(AnswerError::Stopped);
        }
        if self.state.live_conn() != Some(id.conn()) {
            return Err(AnswerError::Stale);
        }
        let Some(key) = self.peer_calls.take(id) else {
            return Err(AnswerError::NotPending);
        };
        self.arm_call_timer();
        let Some(frame) = self.profile.encode_answer(&key, answer) else {
            return Err(AnswerError::Unsupported);
        };
        if self.over_peer_limit(&frame) {
            // The peer still waits: it hears that the call went unanswered, not nothing.
            self.stats.calls_unanswered += 1;
            if let Some(frame) = self.profile.encode_unanswered(&key) {
                self.write_control(id.conn(), frame, now);
            }
            return Err(AnswerError::OverPeerLimit);
        }
        self.stats.calls_answered += 1;
        self.write_control(id.conn(), frame, now);
        Ok(())
    }

    /// Whether `frame` is larger than the peer said it accepts.
    pub(super) fn over_peer_limit(&self, frame: &Frame) -> bool {
        self.profile
            .max_frame()
            .is_some_and(|max| frame.len() > max)
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

    pub(super) fn refuse_if_stopped(&self) -> Result<(), CallError> {
        if self.shutdown_requested || matches!(self.state, State::Stopped(_)) {
            Err(CallError::Stopped)
        } else {
            Ok(())
        }
    }

    /// Hands back every queued send and ends every request `Stopped`.
    pub(super) fn hand_back_everything(&mut self) {
        let events = &mut self.events;
        let stats = &mut self.stats;
        self.outbound.drain(|old, reason| {
            if let Item::Send(id) = old.item {
                stats.frames_returned += 1;
                events.push_back(returned(id, old.frame, reason));
            }
        });
        self.requests.drain(|id| {
            events.push_back(crate::event::Event::Response {
                id,
                outcome: crate::event::Outcome::Stopped,
            });
        });
        self.arm_send_expiry();
        self.arm_request_timer();
    }
}

pub(super) fn returned<M, R>(
    id: SendId,
    frame: Frame,
    reason: ReturnReason,
) -> crate::event::Event<M, R> {
    crate::event::Event::Returned { id, frame, reason }
}
