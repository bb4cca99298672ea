//! Sockets: opening them (through the runtime, a task per attempt), then reading them from
//! the driver itself and writing them from a task per socket.

use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use tether_core::{CloseCause, CloseFrame, ConnId, Frame, OpenError};
use tokio::sync::{mpsc, oneshot};
use tracing::debug;
use tungstenite::Message;

use crate::Runtime;
use crate::handoff::Handoff;
use crate::wire;

/// The TLS settings for `wss://`.
#[cfg(feature = "rustls")]
pub type Tls = Arc<rustls::ClientConfig>;
/// Without TLS support, `wss://` is refused when connecting; nothing is ever held here.
#[cfg(not(feature = "rustls"))]
pub type Tls = NoTls;

/// A type with no values: TLS settings that cannot exist without the `rustls` feature.
#[cfg(not(feature = "rustls"))]
#[derive(Debug, Clone)]
pub enum NoTls {}

pub(crate) type ReadHalf<S> = futures_util::stream::SplitStream<S>;
pub(crate) type WriteHalf<S> = futures_util::stream::SplitSink<S, Message>;

/// Where an open attempt leaves what it gave (the socket, or why not) for the driver. It
/// is not sent over the news channel: an attempt aborted while its socket is on the way is
/// then still reachable, so the driver drops that socket before it opens the next.
pub(crate) type DialSlot<S> = Arc<Mutex<Option<Result<S, OpenError>>>>;

/// Takes what `slot` holds. A panic elsewhere while it was held cannot leave a socket
/// unreachable: the value is taken out of a poisoned lock too.
pub(crate) fn take_dialed<S>(slot: &DialSlot<S>) -> Option<Result<S, OpenError>> {
    slot.lock().unwrap_or_else(PoisonError::into_inner).take()
}

/// What a session's tasks tell its driver, on one channel: a channel allocates a block of
/// slots up front, and a process may hold thousands of sessions. Large payloads are boxed
/// so the slots stay small.
pub(crate) enum News {
    /// An open attempt resolved; what it gave waits in the attempt's [`DialSlot`].
    Dialed(ConnId),
    /// Writing to a socket failed.
    WriteFailed(ConnId, Box<CloseCause>),
    /// Writing failed a while ago and the reads brought no close frame since: the write's
    /// error is how the socket ended.
    WriteFailedLong(ConnId, Box<CloseCause>),
    /// The start gate granted a session start.
    Granted(ConnId),
}

/// Opens one socket through the runtime, once every socket before it is gone, and tells
/// the driver when what it gave waits in `slot`.
pub(crate) async fn dial<R: Runtime>(
    runtime: R,
    conn: ConnId,
    request: Result<tungstenite::handshake::client::Request, OpenError>,
    settings: (tungstenite::protocol::WebSocketConfig, Option<Tls>),
    after: Retiring,
    (slot, done): (DialSlot<R::Socket>, mpsc::UnboundedSender<News>),
) {
    after.gone().await;
    let (websocket, tls) = settings;
    let opened = match request {
        Ok(request) => runtime.connect(request, websocket, tls).await,
        Err(error) => Err(error),
    };
    if let Err(error) = &opened {
        debug!(conn = conn.get(), %error, "open failed");
    }
    *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(opened);
    let _ = done.send(News::Dialed(conn));
}

/// Sockets on their way out: the tasks that held them are being stopped. A connection's
/// successor is dialled only once they are all gone, so the peer never sees two sockets of
/// one client open at once, even when the executor stops tasks asynchronously.
#[derive(Default)]
pub(crate) struct Retiring(Vec<oneshot::Receiver<()>>);

impl Retiring {
    /// Stops what `farewells` do (each ends a task holding a socket) on a task of its own,
    /// begun now, and counts them until they are done.
    pub(crate) fn add<R: Runtime>(&mut self, runtime: &R, farewells: Vec<BoxFuture<'static, ()>>) {
        if farewells.is_empty() {
            return;
        }
        let (gone, rx) = oneshot::channel();
        runtime.spawn_detached(async move {
            futures_util::future::join_all(farewells).await;
            let _ = gone.send(());
        });
        // Those already gone are forgotten: the list holds only retirements under way.
        self.0
            .retain_mut(|rx| matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Empty)));
        self.0.push(rx);
    }

    /// Resolves once every socket counted so far is gone.
    pub(crate) async fn gone(self) {
        // A sender dropped unsent means its task was dropped: its sockets went with it.
        futures_util::future::join_all(self.0).await;
    }

    pub(crate) fn take(&mut self) -> Self {
        std::mem::take(self)
    }
}

/// The write side of one open socket. The driver collects each turn's frames into a
/// batch; a task of the socket's own writes them, so reading and writing go on side by side
/// (a peer that echoes never deadlocks with us, and large frames use both cores), at one
/// wake per batch rather than per frame.
pub(crate) struct Writer<R: Runtime> {
    pub(crate) conn: ConnId,
    batch: Vec<Message>,
    handoff: Arc<Handoff<Message>>,
    /// Dropping it cancels the writer, and the socket's write half goes with it.
    task: Option<R::Task>,
    runtime: R,
}

impl<R: Runtime> Writer<R> {
    /// Starts the writer task of socket `conn`; a failed write is reported on `failed`.
    pub(crate) fn spawn(
        runtime: &R,
        conn: ConnId,
        sink: WriteHalf<R::Socket>,
        failed: mpsc::UnboundedSender<News>,
    ) -> Self {
        let handoff = Arc::new(Handoff::new());
        let task = Some(runtime.spawn(write_batches(conn, sink, handoff.clone(), failed)));
        Self {
            conn,
            batch: Vec::new(),
            handoff,
            task,
            runtime: runtime.clone(),
        }
    }

    pub(crate) fn push(&mut self, message: Message) {
        self.batch.push(message);
    }

    /// Hands this turn's frames to the writer task.
    pub(crate) fn send_batch(&mut self) {
        self.handoff.send(&mut self.batch);
    }

    /// Frames handed over and not yet written, and this turn's.
    pub(crate) fn waiting(&self) -> usize {
        self.handoff.in_flight() + self.batch.len()
    }

    /// The hand-off, to wait on for room.
    pub(crate) fn handoff(&self) -> Arc<Handoff<Message>> {
        self.handoff.clone()
    }

    /// Sends one last close frame; the returned farewell lets the socket go shortly after.
    pub(crate) fn close_with(mut self, frame: CloseFrame) -> BoxFuture<'static, ()> {
        self.push(wire::close(frame));
        self.send_batch();
        let task = self.task.take();
        let sleep = self
            .runtime
            .sleep_until(std::time::Instant::now() + std::time::Duration::from_millis(100));
        let runtime = self.runtime.clone();
        Box::pin(async move {
            sleep.await;
            if let Some(task) = task {
                runtime.stop(task).await;
            }
        })
    }

    /// Stops the writer; the returned farewell resolves once its task, and the socket's
    /// write half with it, is gone.
    pub(crate) fn stop(mut self) -> BoxFuture<'static, ()> {
        match self.task.take() {
            Some(task) => self.runtime.stop(task),
            None => Box::pin(std::future::ready(())),
        }
    }
}

impl<R: Runtime> Drop for Writer<R> {
    /// The socket's write half goes with its task.
    fn drop(&mut self) {
        self.handoff.close_producer();
    }
}

async fn write_batches<S>(
    conn: ConnId,
    mut sink: WriteHalf<S>,
    handoff: Arc<Handoff<Message>>,
    failed: mpsc::UnboundedSender<News>,
) where
    S: futures_util::Sink<Message, Error = tungstenite::Error> + futures_util::Stream,
{
    let mut local = std::collections::VecDeque::new();
    loop {
        let open = std::future::poll_fn(|cx| handoff.poll_take(&mut local, cx)).await;
        if !open {
            return;
        }
        let n = local.len();
        while let Some(message) = local.pop_front() {
            if let Err(error) = sink.feed(message).await {
                let _ = failed.send(News::WriteFailed(
                    conn,
                    Box::new(wire::closed_by(&error, None)),
                ));
                return;
            }
        }
        handoff.took(n, true);
        // Flush once nothing more waits: a busy writer shares one flush across batches.
        // One turn first lets a driver that is about to hand over more do so.
        if handoff.in_flight() == 0 {
            yield_once().await;
        }
        if handoff.in_flight() == 0 {
            if let Err(error) = sink.flush().await {
                let _ = failed.send(News::WriteFailed(
                    conn,
                    Box::new(wire::closed_by(&error, None)),
                ));
                return;
            }
        }
    }
}

/// The read half of one open socket, owned by the driver.
pub(crate) struct Reader<S> {
    pub(crate) conn: ConnId,
    stream: ReadHalf<S>,
    peer_close: Option<CloseFrame>,
}

/// What one read produced.
pub(crate) enum Read {
    Frame(Frame),
    /// The socket ended, for this reason.
    End(CloseCause),
}

impl<S> Reader<S>
where
    S: futures_util::Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    pub(crate) fn new(conn: ConnId, stream: ReadHalf<S>) -> Self {
        Self {
            conn,
            stream,
            peer_close: None,
        }
    }

    /// The peer's close frame, if one was read and the stream has not ended yet.
    pub(crate) fn take_peer_close(&mut self) -> Option<CloseFrame> {
        self.peer_close.take()
    }

    pub(crate) fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Read> {
        loop {
            let next = match self.stream.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(next) => next,
            };
            return Poll::Ready(match next {
                Some(Ok(message)) => match wire::read(message) {
                    wire::Read::Frame(frame) => Read::Frame(frame),
                    // The peer's close frame ends the connection for the session at once: a
                    // peer that holds its socket open after it cannot delay the reconnect,
                    // and no write that fails meanwhile can hide the code.
                    wire::Read::Close(Some(frame)) => Read::End(CloseCause::Frame(frame)),
                    wire::Read::Close(None) => {
                        self.peer_close = None;
                        continue;
                    }
                    wire::Read::Nothing => continue,
                },
                Some(Err(error)) => Read::End(self.end(&error)),
                None => Read::End(
                    self.peer_close
                        .take()
                        .map_or(CloseCause::Dropped, CloseCause::Frame),
                ),
            });
        }
    }

    fn end(&mut self, error: &tungstenite::Error) -> CloseCause {
        wire::closed_by(error, self.peer_close.take())
    }
}

/// Polls every reader in turn, from `cursor`, so no socket starves another.
pub(crate) fn poll_readers<S>(
    readers: &mut [Reader<S>],
    cursor: &mut usize,
    cx: &mut Context<'_>,
) -> Poll<(ConnId, Read)>
where
    S: futures_util::Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    let n = readers.len();
    for i in 0..n {
        let at = (*cursor + i) % n;
        if let Some(reader) = readers.get_mut(at) {
            if let Poll::Ready(read) = reader.poll_read(cx) {
                *cursor = at + 1;
                return Poll::Ready((reader.conn, read));
            }
        }
    }
    Poll::Pending
}

/// Gives the executor one turn, whatever the executor.
pub(crate) async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
}
