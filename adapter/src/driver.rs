//! The driver task: it owns the core machine and every socket the machine asked for.

use std::collections::HashMap;
use std::time::Instant;

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use tether_core::{
    CallError, Client, CloseCause, CloseFrame, Command, ConnId, Event, Frame, Input, OpenError,
    OpenErrorKind, Outcome, Protocol, RequestError, RequestId, ReturnReason, SendError, SendId,
    SendOptions, Stats, Status,
};
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, debug, debug_span};

use crate::options::Options;
use crate::socket::{self, Read, Reader, Tls, Writer};
use crate::target::Target;
use crate::{Profile, Runtime};
use tungstenite::Message;

/// What the application's handle asks of the driver.
pub(crate) enum Call<P: Protocol> {
    Send {
        frame: Frame,
        options: SendOptions,
        reply: oneshot::Sender<Result<SendId, SendError>>,
    },
    Feed {
        frame: Frame,
        options: SendOptions,
    },
    Request {
        request: P::Request,
        timeout: std::time::Duration,
        reply: oneshot::Sender<Result<oneshot::Receiver<Outcome<P::Response>>, RequestError>>,
    },
    Answer {
        id: tether_core::CallId,
        answer: P::Answer,
        reply: oneshot::Sender<Result<(), tether_core::AnswerError>>,
    },
    Reconnect {
        mode: tether_core::ReconnectMode,
        reply: oneshot::Sender<Result<(), CallError>>,
    },
    Probe {
        reply: oneshot::Sender<Result<(), CallError>>,
    },
    Shutdown {
        /// Close as a client that means to resume, so the peer keeps the session.
        keep_session: bool,
        reply: oneshot::Sender<Vec<(SendId, Frame)>>,
    },
    Snapshot {
        reply: oneshot::Sender<(Status, Stats)>,
    },
    /// Runs on the profile, in the driver: a session export, say.
    Inspect {
        look: Box<dyn FnOnce(&P) + Send>,
    },
}

/// How long a failed write waits for the reads to bring the peer's close frame.
const CLOSE_FRAME_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

/// How many calls or inputs the driver takes per wake before it looks at the rest.
const BATCH: usize = 256;

/// What woke the driver.
enum Wake<P: Protocol> {
    Call(Option<Call<P>>),
    Control(Call<P>),
    /// Room was made: the application took events, or a writer wrote.
    Room,
    Read(ConnId, Read),
    Dialed(ConnId),
    WriteFailed(ConnId, CloseCause),
    WriteFailedLong(ConnId, CloseCause),
    Granted(ConnId),
    Timer,
}

/// The adapter's bookkeeping of one socket, so the machine hears exactly one `Opened` or
/// `OpenFailed` per `Open`, and exactly one `Closed` after `Opened`, also after an abort.
/// Which inputs are stale is the machine's business, never decided here.
struct Socket<R: Runtime> {
    /// The open attempt, until it resolves; dropping it cancels the attempt.
    dialing: Option<R::Task>,
    /// Where the attempt leaves its socket.
    dialed: socket::DialSlot<R::Socket>,
    opened: bool,
    /// The connection's span, a child of the client's: everything done for this socket
    /// is recorded under it. Nothing secret goes in (no frames, no tokens).
    span: tracing::Span,
}

impl<R: Runtime> Socket<R> {
    fn opened(&self) -> bool {
        self.opened
    }

    /// Stops the attempt, if any. A socket it already left is dropped now; the farewell
    /// resolves once the attempt's task is gone, dropping a socket left meanwhile too.
    fn stop(&mut self, runtime: &R) -> Option<BoxFuture<'static, ()>> {
        drop(socket::take_dialed(&self.dialed));
        let task = self.dialing.take()?;
        let stopped = runtime.stop(task);
        let slot = self.dialed.clone();
        Some(Box::pin(async move {
            stopped.await;
            drop(socket::take_dialed(&slot));
        }))
    }
}

pub(crate) struct Driver<R: Runtime, P: Protocol> {
    runtime: R,
    client: Client<P>,
    watch: crate::watch::Watch,
    target: Target,
    options: Options,
    tls: Option<Tls>,
    calls: mpsc::Receiver<Call<P>>,
    /// Control calls, taken even while data calls wait for a backed-up socket.
    control: mpsc::Receiver<Call<P>>,
    news_tx: mpsc::UnboundedSender<socket::News>,
    news: mpsc::UnboundedReceiver<socket::News>,
    /// The read half of every open socket: the driver reads them itself, so what a
    /// socket reads reaches the machine with no hop in between.
    readers: Vec<Reader<R::Socket>>,
    read_cursor: usize,
    /// The write side of every open socket. While frames wait on any of them beyond the
    /// socket queue, the driver takes no calls: the application's sends feel the
    /// backpressure.
    writers: Vec<Writer<R>>,
    events: EventSender<P>,
    /// Events not yet handed to the application, sent as one batch per driver turn.
    pending_events: Vec<Event<P::Message, P::Response>>,
    sockets: HashMap<ConnId, Socket<R>>,
    /// Sockets ended but perhaps not yet dropped by their tasks: the next dial waits.
    retiring: socket::Retiring,
    requests: HashMap<RequestId, oneshot::Sender<Outcome<P::Response>>>,
    shutdown_waiters: Vec<oneshot::Sender<Vec<(SendId, Frame)>>>,
    returned_at_shutdown: Vec<(SendId, Frame)>,
    stopped: bool,
}

type EventSender<P> =
    crate::handle::EventSender<<P as Protocol>::Message, <P as Protocol>::Response>;

impl<R, P> Driver<R, P>
where
    R: Runtime,
    P: Profile,
{
    pub(crate) fn new(
        runtime: R,
        client: Client<P>,
        target: Target,
        options: Options,
        tls: Option<Tls>,
        (calls, control): (mpsc::Receiver<Call<P>>, mpsc::Receiver<Call<P>>),
        events: EventSender<P>,
    ) -> Self {
        let (news_tx, news) = mpsc::unbounded_channel();
        Self {
            runtime,
            watch: crate::watch::Watch::new(client.config(), options.check_invariants),
            client,
            target,
            options,
            tls,
            calls,
            control,
            news_tx,
            news,
            readers: Vec::new(),
            read_cursor: 0,
            writers: Vec::new(),
            events,
            pending_events: Vec::new(),
            sockets: HashMap::new(),
            retiring: socket::Retiring::default(),
            requests: HashMap::new(),
            shutdown_waiters: Vec::new(),
            returned_at_shutdown: Vec::new(),
            stopped: false,
        }
    }

    /// The driving loop of DESIGN.md: feed what happened, perform the commands, hand the
    /// events on, sleep until the next deadline or input.
    pub(crate) async fn run(mut self) {
        let mut sleep: Option<futures_util::future::BoxFuture<'static, ()>> = None;
        let mut armed: Option<Instant> = None;
        let mut handles_gone = false;
        // A full batch was taken: more is waiting. The driver then gives its executor a
        // turn before the next, as tokio's budget would make it: on a one-thread executor
        // (smol's default) a flooded client must not starve every other task.
        let mut busy = false;
        loop {
            if std::mem::take(&mut busy) {
                socket::yield_once().await;
            }
            self.perform();
            if self.stopped && self.pending_events.is_empty() {
                // Everything is handed over; the stream ends once it is taken.
                break;
            }
            let deadline = self.client.poll_timeout();
            if deadline != armed {
                sleep = deadline.map(|at| self.runtime.sleep_until(at));
                armed = deadline;
            }
            let room_for_events = self.room_for_events();
            let blocked = self.blocked_writer();
            // Unbiased: a sender that never pauses cannot starve the reads (and so the
            // heartbeat acks), nor a flood of reads the application's calls.
            let wake = tokio::select! {
                call = self.calls.recv(), if !handles_gone && blocked.is_none() => Wake::Call(call),
                Some(call) = self.control.recv(), if !handles_gone => Wake::Control(call),
                () = async { if let Some(shared) = &blocked { shared.room().await } }, if blocked.is_some() => Wake::Room,
                Some(news) = self.news.recv() => match news {
                    socket::News::Dialed(conn) => Wake::Dialed(conn),
                    socket::News::WriteFailed(conn, cause) => Wake::WriteFailed(conn, *cause),
                    socket::News::WriteFailedLong(conn, cause) => Wake::WriteFailedLong(conn, *cause),
                    socket::News::Granted(conn) => Wake::Granted(conn),
                },
                // Only when the application is behind: the driver waits for it to take
                // some events before reading any more.
                () = self.events.room(), if !room_for_events => Wake::Room,
                (conn, read) = std::future::poll_fn(|cx| {
                    socket::poll_readers(&mut self.readers, &mut self.read_cursor, cx)
                }), if room_for_events && !self.readers.is_empty() => Wake::Read(conn, read),
                () = std::future::poll_fn(|cx| match sleep.as_mut() {
                    Some(sleep) => sleep.as_mut().poll(cx),
                    None => std::task::Poll::Pending,
                }), if armed.is_some() => Wake::Timer,
            };
            match wake {
                Wake::Call(Some(call)) => {
                    self.call(call);
                    // Take what else is waiting in one go: one wake, many calls.
                    let mut taken = 1;
                    while taken < BATCH && !self.any_blocked() {
                        match self.calls.try_recv() {
                            Ok(call) => self.call(call),
                            Err(_) => break,
                        }
                        taken += 1;
                    }
                    busy = taken >= BATCH;
                }
                Wake::Control(call) => self.call(call),
                Wake::Call(None) => {
                    // Every handle is gone: nobody can shut down, so do it now.
                    handles_gone = true;
                    self.watch.call(true);
                    self.client.shutdown(Instant::now());
                }
                Wake::Room => {}
                Wake::Read(conn, read) => {
                    self.read(conn, read);
                    self.perform();
                    // Take what else the sockets already hold in one go: one wake, many
                    // frames, each routed before the next.
                    let mut taken = 1;
                    while taken < BATCH && self.room_for_events() {
                        let more = std::future::poll_fn(|cx| {
                            socket::poll_readers(&mut self.readers, &mut self.read_cursor, cx)
                        })
                        .now_or_never();
                        match more {
                            Some((conn, read)) => {
                                self.read(conn, read);
                                self.perform();
                            }
                            None => break,
                        }
                        taken += 1;
                    }
                    busy = taken >= BATCH;
                }
                Wake::Dialed(conn) => self.dialed(conn),
                Wake::WriteFailed(conn, cause) => {
                    self.write_failed(conn, cause);
                    self.perform();
                }
                Wake::WriteFailedLong(conn, cause) => self.end(conn, cause),
                Wake::Granted(conn) => {
                    self.feed(Input::StartGranted { conn }, Instant::now());
                }
                Wake::Timer => {
                    armed = None;
                    sleep = None;
                    let now = Instant::now();
                    self.watch.call(false);
                    self.client.handle_timeout(now);
                    self.perform();
                    self.watch.after_timeout(now, self.client.poll_timeout());
                }
            }
        }
        // The driver ends: nothing is dialled after, so nobody waits for the farewells.
        for (_, mut socket) in self.sockets.drain() {
            if let Some(farewell) = socket.stop(&self.runtime) {
                self.runtime.spawn_detached(farewell);
            }
        }
        self.readers.clear();
        for writer in self.writers.drain(..) {
            self.runtime.spawn_detached(writer.stop());
        }
        // Calls that raced the stop first, then the shutdowns waiting for it.
        while let Ok(call) = self.calls.try_recv().or_else(|_| self.control.try_recv()) {
            self.after_stop(call);
        }
        for waiter in self.shutdown_waiters.drain(..) {
            let _ = waiter.send(std::mem::take(&mut self.returned_at_shutdown));
        }
        // The event stream ends; the handle is still answered (a session to export, the
        // state, the counters) until the last one goes.
        self.events.close();
        loop {
            let call = tokio::select! {
                Some(call) = self.calls.recv() => call,
                Some(call) = self.control.recv() => call,
                else => break,
            };
            self.after_stop(call);
            for waiter in self.shutdown_waiters.drain(..) {
                let _ = waiter.send(std::mem::take(&mut self.returned_at_shutdown));
            }
        }
    }

    /// A call after the stop is answered, never dropped with what it carried: a send comes
    /// back in its error, a fed frame in the shutdown's result; reads of the profile and
    /// the state are served.
    fn after_stop(&mut self, call: Call<P>) {
        {
            match call {
                Call::Send { frame, reply, .. } => {
                    let _ = reply.send(Err(SendError {
                        kind: tether_core::SendErrorKind::Stopped,
                        frame,
                    }));
                }
                Call::Feed { frame, .. } => {
                    if self.shutdown_waiters.is_empty() {
                        tracing::warn!("a frame fed after the client stopped was dropped");
                    }
                    // No id was ever given to it: the shutdown's result is where it goes.
                    self.returned_at_shutdown.push((SendId::UNASSIGNED, frame));
                }
                Call::Request { reply, .. } => {
                    let _ = reply.send(Err(RequestError {
                        kind: tether_core::RequestErrorKind::Stopped,
                        frame: None,
                    }));
                }
                Call::Reconnect { reply, .. } | Call::Probe { reply } => {
                    let _ = reply.send(Err(CallError::Stopped));
                }
                Call::Answer { reply, .. } => {
                    let _ = reply.send(Err(tether_core::AnswerError::Stopped));
                }
                Call::Shutdown { reply, .. } => self.shutdown_waiters.push(reply),
                // The profile outlives the stop: a session can be exported after it.
                Call::Inspect { look } => look(self.client.profile()),
                Call::Snapshot { reply } => {
                    let _ = reply.send((self.client.state(), self.client.stats()));
                }
            }
        }
    }

    fn call(&mut self, call: Call<P>) {
        let now = Instant::now();
        self.watch.call(matches!(call, Call::Shutdown { .. }));
        match call {
            Call::Send {
                frame,
                options,
                reply,
            } => {
                let _ = reply.send(self.client.send_with(frame, options, now));
            }
            Call::Feed { frame, options } => {
                self.client.send_or_return(frame, options, now);
            }
            Call::Answer { id, answer, reply } => {
                let _ = reply.send(self.client.answer(id, answer, now));
            }
            Call::Request {
                request,
                timeout,
                reply,
            } => {
                let registered = self.client.request(request, timeout, now);
                if let Ok(id) = registered {
                    self.watch.request(id);
                }
                let registered = registered.map(|id| {
                    let (tx, rx) = oneshot::channel();
                    self.requests.insert(id, tx);
                    rx
                });
                let _ = reply.send(registered);
            }
            Call::Reconnect { mode, reply } => {
                let _ = reply.send(self.client.reconnect(mode, now));
            }
            Call::Probe { reply } => {
                let _ = reply.send(self.client.probe(now));
            }
            Call::Shutdown {
                keep_session,
                reply,
            } => {
                if keep_session {
                    self.client.suspend(now);
                } else {
                    self.client.shutdown(now);
                }
                self.shutdown_waiters.push(reply);
            }
            Call::Inspect { look } => look(self.client.profile()),
            Call::Snapshot { reply } => {
                let _ = reply.send((self.client.state(), self.client.stats()));
            }
        }
    }

    /// What a socket read: a frame for the machine, or the socket's end.
    fn read(&mut self, conn: ConnId, read: Read) {
        let span = self
            .sockets
            .get(&conn)
            .map_or_else(tracing::Span::none, |s| s.span.clone());
        let _entered = span.enter();
        match read {
            Read::Frame(frame) => {
                self.feed(Input::Frame { conn, frame }, Instant::now());
            }
            Read::End(cause) => {
                if let CloseCause::Error {
                    kind: tether_core::TransportErrorKind::MessageTooBig,
                    ..
                } = cause
                {
                    // Tell the peer why (1009) as the socket goes.
                    if let Some(at) = self.writers.iter().position(|w| w.conn == conn) {
                        let writer = self.writers.swap_remove(at);
                        let farewell = writer.close_with(CloseFrame::new(1009, "message too big"));
                        self.retiring.add(&self.runtime, vec![farewell]);
                    }
                }
                self.end(conn, cause);
            }
        }
    }

    /// An open attempt resolved.
    fn dialed(&mut self, conn: ConnId) {
        let Some(socket) = self.sockets.get_mut(&conn) else {
            // Aborted meanwhile and already reported: its socket was dropped then.
            return;
        };
        socket.dialing = None;
        let Some(opened) = socket::take_dialed(&socket.dialed) else {
            return;
        };
        match opened {
            Ok(ws) => {
                let (sink, stream) = ws.split();
                socket.opened = true;
                self.writers.push(Writer::spawn(
                    &self.runtime,
                    conn,
                    sink,
                    self.news_tx.clone(),
                ));
                self.readers.push(Reader::new(conn, stream));
                socket.span.in_scope(|| debug!("opened"));
                self.feed(Input::Opened { conn }, Instant::now());
            }
            Err(error) => {
                self.sockets.remove(&conn);
                self.feed(Input::OpenFailed { conn, error }, Instant::now());
            }
        }
    }

    /// Feeds an input to the machine, past the invariant checker when it rides along.
    fn feed(&mut self, input: Input, now: Instant) {
        self.watch.input(&input);
        self.client.handle_input(input, now);
    }

    /// Steps 2 and 3 of the loop: every command performed, every event routed and handed
    /// on as far as the application has room.
    fn perform(&mut self) {
        while let Some(command) = self.client.poll_command() {
            self.watch.command(&command);
            self.command(command);
        }
        for writer in &mut self.writers {
            writer.send_batch();
        }
        while let Some(event) = self.client.poll_event() {
            self.watch.event(&event);
            self.route(event);
        }
        self.watch.bounds(self.client.queued());
        // Nobody listening is no error: the events then have nowhere to go.
        self.events.send(&mut self.pending_events);
    }

    /// Whether the application has room for more events, counting those it has not taken.
    fn room_for_events(&self) -> bool {
        self.events.in_flight() + self.pending_events.len() < self.options.event_buffer
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Open { conn, endpoint } => self.open(conn, &endpoint),
            Command::Send { conn, frame } => self.write(conn, crate::wire::write(frame)),
            Command::Close { conn, frame } => self.write(conn, crate::wire::close(frame)),
            Command::Abort { conn } => self.abort(conn),
            Command::RequestStart { conn } => match &self.options.start_gate {
                Some(gate) => {
                    let permit = gate(conn);
                    let granted = self.news_tx.clone();
                    self.runtime.spawn_detached(async move {
                        permit.await;
                        let _ = granted.send(socket::News::Granted(conn));
                    });
                }
                // No gate given: the start is granted at once.
                None => self.feed(Input::StartGranted { conn }, Instant::now()),
            },
        }
    }

    fn open(&mut self, conn: ConnId, endpoint: &tether_core::Endpoint) {
        let defaults = self.client.profile().query_defaults();
        let request = self.target.request(endpoint, defaults).map_err(|e| {
            let mut error = crate::wire::open_failed(&e);
            // Only a URL the profile took from the peer can fail here (the application's
            // was checked at connect): the peer's mistake must not stop the client, so it
            // counts as a protocol failure, after which the profile goes back to its own.
            if error.kind == OpenErrorKind::InvalidUrl {
                error.kind = OpenErrorKind::Protocol;
            }
            error
        });
        let dialed: socket::DialSlot<R::Socket> = std::sync::Arc::default();
        let dial = socket::dial(
            self.runtime.clone(),
            conn,
            request,
            (self.options.websocket, self.tls.clone()),
            self.retiring.take(),
            (dialed.clone(), self.news_tx.clone()),
        );
        let span = debug_span!("conn", id = conn.get());
        let dialing = self.runtime.spawn(dial.instrument(span.clone()));
        self.sockets.insert(
            conn,
            Socket {
                dialing: Some(dialing),
                dialed,
                opened: false,
                span,
            },
        );
    }

    fn write(&mut self, conn: ConnId, message: Message) {
        if let Some(writer) = self.writers.iter_mut().find(|w| w.conn == conn) {
            writer.push(message);
        }
    }

    fn any_blocked(&self) -> bool {
        self.blocked_writer().is_some()
    }

    /// The writer with more frames waiting than the socket queue allows, if any.
    fn blocked_writer(&self) -> Option<std::sync::Arc<crate::handoff::Handoff<Message>>> {
        self.writers
            .iter()
            .find(|w| w.waiting() >= self.options.socket_queue)
            .map(Writer::handoff)
    }

    /// Writing to `conn` failed. A write that races the peer's close (the peer closed with
    /// a code and the socket went while we wrote) fails with an error of its own; the close
    /// frame the reads bring is the truth about how the connection ended, so they are read
    /// first: what they hold now, or within [`CLOSE_FRAME_WAIT`]. Only a socket whose reads
    /// bring no end by then ends with the write's error.
    fn write_failed(&mut self, conn: ConnId, cause: CloseCause) {
        let now = Instant::now();
        while let Some(reader) = self.readers.iter_mut().find(|r| r.conn == conn) {
            if let Some(frame) = reader.take_peer_close() {
                return self.end(conn, CloseCause::Frame(frame));
            }
            let read = std::future::poll_fn(|cx| reader.poll_read(cx)).now_or_never();
            match read {
                Some(Read::Frame(frame)) => self.feed(Input::Frame { conn, frame }, now),
                Some(Read::End(real)) => return self.end(conn, real),
                None => {
                    if let Some(frame) = reader.take_peer_close() {
                        return self.end(conn, CloseCause::Frame(frame));
                    }
                    break;
                }
            }
        }
        if !self.sockets.contains_key(&conn) {
            return;
        }
        let wait = self.runtime.sleep_until(now + CLOSE_FRAME_WAIT);
        let news = self.news_tx.clone();
        self.runtime.spawn_detached(async move {
            wait.await;
            let _ = news.send(socket::News::WriteFailedLong(conn, Box::new(cause)));
        });
    }

    /// Drops the transport at once and reports the end the adapter owes the machine.
    fn abort(&mut self, conn: ConnId) {
        self.end(conn, CloseCause::Aborted);
    }

    /// The socket is gone (or dropped by the adapter now): its tasks and read half go, and
    /// the machine hears the one end it is owed.
    fn end(&mut self, conn: ConnId, cause: CloseCause) {
        let Some(mut socket) = self.sockets.remove(&conn) else {
            return;
        };
        let opened = socket.opened();
        let cause_text = cause.to_string();
        let mut farewells: Vec<_> = socket.stop(&self.runtime).into_iter().collect();
        self.readers.retain(|r| r.conn != conn);
        while let Some(at) = self.writers.iter().position(|w| w.conn == conn) {
            farewells.push(self.writers.swap_remove(at).stop());
        }
        self.retiring.add(&self.runtime, farewells);
        let input = if opened {
            Input::Closed { conn, cause }
        } else {
            Input::OpenFailed {
                conn,
                error: OpenError::new(OpenErrorKind::Aborted, cause.to_string()),
            }
        };
        socket.span.in_scope(|| debug!(%cause_text, "socket ended"));
        self.feed(input, Instant::now());
    }

    fn route(&mut self, event: Event<P::Message, P::Response>) {
        if let Event::Transition(t) = &event {
            debug!(from = %t.from, to = %t.to, reason = %t.reason, conn = t.conn.map(ConnId::get), attempt = t.attempt, "transition");
        }
        match event {
            Event::Response { id, outcome } => match self.requests.remove(&id) {
                Some(waiter) => {
                    let _ = waiter.send(outcome);
                }
                None => self.pending_events.push(Event::Response { id, outcome }),
            },
            Event::Returned {
                id,
                frame,
                reason: ReturnReason::Stopped,
            } if !self.shutdown_waiters.is_empty() => {
                self.returned_at_shutdown.push((id, frame));
            }
            Event::Stopped { reason } => {
                self.stopped = true;
                self.pending_events.push(Event::Stopped { reason });
            }
            other => self.pending_events.push(other),
        }
    }
}

/// Spawns the driver of a new client on `runtime`.
pub(crate) fn spawn<R: Runtime, P: Profile>(runtime: &R, driver: Driver<R, P>, client_id: u64) {
    let span = debug_span!("tether", client = client_id);
    runtime.spawn_detached(driver.run().instrument(span));
}
