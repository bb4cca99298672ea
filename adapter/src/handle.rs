//! What the application holds: a cloneable handle for calls, and a stream of events.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use std::collections::VecDeque;
use std::sync::Arc;
use tether_core::{
    CallError, Event, Frame, Outcome, Protocol, ReconnectMode, RequestError, RequestErrorKind,
    SendError, SendErrorKind, SendId, SendOptions, Stats, Status,
};

use tokio::sync::{mpsc, oneshot};

use crate::handoff::Handoff;

use crate::driver::Call;

/// A handle to one client. Cloneable, `Send + Sync`; every clone drives the same session.
/// When every clone is dropped the client shuts down gracefully.
pub struct Handle<P: Protocol> {
    /// Sends, feeds and requests: they wait while a socket's writes are backed up.
    calls: mpsc::Sender<Call<P>>,
    /// Shutdown, reconnect, probe, state and stats: taken at once, whatever the data does.
    control: mpsc::Sender<Call<P>>,
}

impl<P: Protocol> Clone for Handle<P> {
    fn clone(&self) -> Self {
        Self {
            calls: self.calls.clone(),
            control: self.control.clone(),
        }
    }
}

impl<P: Protocol> std::fmt::Debug for Handle<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

/// The client's driver has stopped and takes no more calls.
const GONE: CallError = CallError::Stopped;

impl<P: Protocol> Handle<P> {
    pub(crate) fn new(calls: mpsc::Sender<Call<P>>, control: mpsc::Sender<Call<P>>) -> Self {
        Self { calls, control }
    }

    /// Sends a text or binary frame. It is written at once when the session is ready, or
    /// waits in the bounded queue; a refused frame comes back in the error.
    pub async fn send(&self, frame: Frame) -> Result<SendId, SendError> {
        self.send_with(frame, SendOptions::new()).await
    }

    /// Sends with a time to live and a coalescing key. A refused frame comes back in the
    /// error, always the caller's own: also when the driver died with the call in hand.
    pub async fn send_with(&self, frame: Frame, options: SendOptions) -> Result<SendId, SendError> {
        let (reply, answer) = oneshot::channel();
        // A frame's payload is shared, so keeping it costs a count, not a copy: a driver
        // that dies with the call in hand (a panic, a runtime shutting down) cannot lose it.
        let kept = frame.clone();
        let call = Call::Send {
            frame,
            options,
            reply,
        };
        let stopped = |frame| SendError {
            kind: SendErrorKind::Stopped,
            frame,
        };
        match self.calls.send(call).await {
            Ok(()) => answer.await.unwrap_or(Err(stopped(kept))),
            Err(_) => Err(stopped(kept)),
        }
    }

    /// Sends without waiting for the verdict: resolves as soon as the driver has room for
    /// the call, so a sender can pipeline. A frame the machine refuses comes back as
    /// [`Event::Returned`] with [`ReturnReason::Refused`](tether_core::ReturnReason); only
    /// a stopped client hands the frame back here.
    pub async fn feed(&self, frame: Frame) -> Result<(), Frame> {
        self.feed_with(frame, SendOptions::new()).await
    }

    /// Like [`feed`](Self::feed), with a time to live and a coalescing key.
    pub async fn feed_with(&self, frame: Frame, options: SendOptions) -> Result<(), Frame> {
        let kept = frame.clone();
        match self.calls.send(Call::Feed { frame, options }).await {
            Ok(()) => Ok(()),
            Err(_) => Err(kept),
        }
    }

    /// Sends a request and resolves with its one outcome: the answer, the peer's error,
    /// not sent, unknown, timed out, or stopped.
    pub async fn request(
        &self,
        request: P::Request,
        timeout: Duration,
    ) -> Result<Outcome<P::Response>, RequestError> {
        let (reply, answer) = oneshot::channel();
        let stopped = RequestError {
            kind: RequestErrorKind::Stopped,
            frame: None,
        };
        let call = Call::Request {
            request,
            timeout,
            reply,
        };
        if self.calls.send(call).await.is_err() {
            return Err(stopped);
        }
        let outcome = match answer.await {
            Ok(registered) => registered?,
            Err(_) => return Err(stopped),
        };
        // A driver that stops ends every request with `Stopped` first; a dropped sender
        // means the same.
        Ok(outcome.await.unwrap_or(Outcome::Stopped))
    }

    /// Answers the peer's call `id` ([`Event::Call`]) on the connection it came on. An
    /// answer for a connection that has ended is refused ([`AnswerError::Stale`]) and
    /// written nowhere.
    ///
    /// [`AnswerError::Stale`]: tether_core::AnswerError::Stale
    pub async fn answer(
        &self,
        id: tether_core::CallId,
        answer: P::Answer,
    ) -> Result<(), tether_core::AnswerError> {
        let (reply, verdict) = oneshot::channel();
        let call = Call::Answer { id, answer, reply };
        if self.calls.send(call).await.is_err() {
            return Err(tether_core::AnswerError::Stopped);
        }
        verdict
            .await
            .unwrap_or(Err(tether_core::AnswerError::Stopped))
    }

    /// Replaces the connection (`Fresh` forgets the session first). Requests merge.
    pub async fn reconnect(&self, mode: ReconnectMode) -> Result<(), CallError> {
        let (reply, answer) = oneshot::channel();
        self.control
            .send(Call::Reconnect { mode, reply })
            .await
            .map_err(|_| GONE)?;
        answer.await.unwrap_or(Err(GONE))
    }

    /// Beats now and judges the peer within one ack timeout.
    pub async fn probe(&self) -> Result<(), CallError> {
        let (reply, answer) = oneshot::channel();
        self.control
            .send(Call::Probe { reply })
            .await
            .map_err(|_| GONE)?;
        answer.await.unwrap_or(Err(GONE))
    }

    /// Shuts the session down gracefully; resolves once it has stopped, with the frames
    /// that were never sent. Calling it again (or after the stop) resolves with nothing.
    pub async fn shutdown(&self) -> Vec<(SendId, Frame)> {
        self.stop(false).await
    }

    /// [`shutdown`](Self::shutdown), closing as a client that means to resume (Discord:
    /// 4000, not 1000): the peer keeps the session, for this process after a restart or for
    /// another one. The recipe, for a bot that restarts:
    ///
    /// ```ignore
    /// // Before exiting: stop, keeping the session, then export it.
    /// handle.suspend().await;
    /// let saved = handle.profile(Discord::session).await?;   // Option<DiscordSession>
    /// std::fs::write("session.json", serde_json::to_vec(&saved)?)?;
    /// // After the restart: import it; the first connect resumes, and what was dispatched
    /// // meanwhile is replayed (within the server's resume window).
    /// let saved: Option<DiscordSession> = serde_json::from_slice(&std::fs::read("session.json")?)?;
    /// let mut profile = Discord::builder(identify);
    /// if let Some(session) = saved { profile = profile.session(session); }
    /// let (handle, events) = tether_tokio::connect(url, config, profile.build()?)?;
    /// ```
    pub async fn suspend(&self) -> Vec<(SendId, Frame)> {
        self.stop(true).await
    }

    async fn stop(&self, keep_session: bool) -> Vec<(SendId, Frame)> {
        let (reply, answer) = oneshot::channel();
        let call = Call::Shutdown {
            keep_session,
            reply,
        };
        if self.control.send(call).await.is_err() {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }

    /// Runs `look` on the profile and gives back what it returns: a session to export
    /// (`handle.profile(Discord::session)`), the last sequence seen. Served after the stop
    /// too, for as long as a handle lives.
    pub async fn profile<T: Send + 'static>(
        &self,
        look: impl FnOnce(&P) -> T + Send + 'static,
    ) -> Result<T, CallError> {
        let (reply, answer) = oneshot::channel();
        let look = Box::new(move |profile: &P| {
            let _ = reply.send(look(profile));
        });
        self.control
            .send(Call::Inspect { look })
            .await
            .map_err(|_| GONE)?;
        answer.await.map_err(|_| GONE)
    }

    /// Where the machine is, and why.
    pub async fn state(&self) -> Result<Status, CallError> {
        self.snapshot().await.map(|(status, _)| status)
    }

    /// The machine's counters.
    pub async fn stats(&self) -> Result<Stats, CallError> {
        self.snapshot().await.map(|(_, stats)| stats)
    }

    async fn snapshot(&self) -> Result<(Status, Stats), CallError> {
        let (reply, answer) = oneshot::channel();
        self.control
            .send(Call::Snapshot { reply })
            .await
            .map_err(|_| GONE)?;
        answer.await.map_err(|_| GONE)
    }
}

/// The driver's end of the event stream: events go over in one batch per driver turn,
/// and the count of those the application has not yet taken bounds them.
pub(crate) struct EventSender<M, R> {
    handoff: Arc<Handoff<Event<M, R>>>,
}

impl<M, R> EventSender<M, R> {
    /// Ends the stream once the application has taken what was handed over.
    pub(crate) fn close(&self) {
        self.handoff.close_producer();
    }

    /// Hands `batch` over (leaving it empty); false if the application dropped the stream.
    pub(crate) fn send(&self, batch: &mut Vec<Event<M, R>>) -> bool {
        self.handoff.send(batch)
    }

    /// Events handed over and not yet taken.
    pub(crate) fn in_flight(&self) -> usize {
        self.handoff.in_flight()
    }

    /// Resolves once the application has taken events since the last call.
    pub(crate) async fn room(&self) {
        self.handoff.room().await;
    }
}

impl<M, R> Drop for EventSender<M, R> {
    /// The stream ends once the application has taken what was handed over.
    fn drop(&mut self) {
        self.handoff.close_producer();
    }
}

/// A new event channel.
pub(crate) fn events<P: Protocol>() -> (EventSender<P::Message, P::Response>, Events<P>) {
    let handoff = Arc::new(Handoff::new());
    (
        EventSender {
            handoff: handoff.clone(),
        },
        Events {
            handoff,
            current: VecDeque::new(),
            stopped: false,
        },
    )
}

/// The client's events, in order. Ends after [`Event::Stopped`], always: a driver that
/// died without a stop ends it with [`StopReason::DriverGone`](tether_core::StopReason). A consumer that falls
/// behind by the configured event buffer stops the reads of its sockets: backpressure, not
/// memory.
pub struct Events<P: Protocol> {
    handoff: Arc<Handoff<Event<P::Message, P::Response>>>,
    current: VecDeque<Event<P::Message, P::Response>>,
    /// `Stopped` was handed out: the end of the stream is the client's stop.
    stopped: bool,
}

impl<P: Protocol> Events<P> {
    /// The next event, or `None` once the client has stopped and every event was taken.
    pub async fn next(&mut self) -> Option<Event<P::Message, P::Response>> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event<P::Message, P::Response>>> {
        match self.handoff.poll_take(&mut self.current, cx) {
            Poll::Pending => Poll::Pending,
            // The driver went without a stop (it panicked, or its runtime ended): the
            // stream still ends with one, saying so.
            Poll::Ready(false) if !self.stopped => {
                self.stopped = true;
                Poll::Ready(Some(Event::Stopped {
                    reason: tether_core::StopReason::DriverGone,
                }))
            }
            Poll::Ready(false) => Poll::Ready(None),
            Poll::Ready(true) => {
                let event = self.current.pop_front();
                if event.is_some() {
                    self.handoff.took(1, self.current.is_empty());
                }
                if matches!(event, Some(Event::Stopped { .. })) {
                    self.stopped = true;
                }
                Poll::Ready(event)
            }
        }
    }
}

impl<P: Protocol> Drop for Events<P> {
    fn drop(&mut self) {
        self.handoff.close_consumer();
    }
}

impl<P: Protocol> Stream for Events<P> {
    type Item = Event<P::Message, P::Response>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_event(cx)
    }
}

impl<P: Protocol> Unpin for Events<P> {}
