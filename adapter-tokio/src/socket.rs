//! Sockets: opening them (a task per attempt), then reading and writing them from the
//! driver itself, which owns both halves of every open socket.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::{SinkExt, StreamExt};
use tether_core::{CloseCause, CloseFrame, ConnId, Frame, OpenError};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::handoff::Handoff;
#[cfg(feature = "rustls")]
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::debug;

use crate::wire;

/// Everything one socket needs to open.
pub(crate) struct Dial {
    pub(crate) conn: ConnId,
    pub(crate) request: Result<Request, OpenError>,
    pub(crate) websocket: WebSocketConfig,
    pub(crate) tls: Option<Tls>,
}

/// The TLS settings for `wss://`.
#[cfg(feature = "rustls")]
pub(crate) type Tls = Arc<rustls::ClientConfig>;
/// Without TLS support, `wss://` is refused when connecting; nothing is ever held here.
#[cfg(not(feature = "rustls"))]
pub(crate) type Tls = NoTls;

/// A type with no values: TLS settings that cannot exist.
#[cfg(not(feature = "rustls"))]
#[derive(Debug, Clone)]
pub(crate) enum NoTls {}

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
pub(crate) type ReadHalf = futures_util::stream::SplitStream<Ws>;
pub(crate) type WriteHalf = futures_util::stream::SplitSink<Ws, Message>;

/// The result of one open, for the driver.
pub(crate) type Dialed = (ConnId, Result<Box<Ws>, OpenError>);

/// Opens one socket and hands it (or why it failed) to the driver.
pub(crate) async fn dial(dial: Dial, done: mpsc::UnboundedSender<Dialed>) {
    let conn = dial.conn;
    let opened = open(dial).await;
    if let Err(error) = &opened {
        debug!(conn = conn.get(), %error, "open failed");
    }
    let _ = done.send((conn, opened.map(Box::new)));
}

async fn open(dial: Dial) -> Result<Ws, OpenError> {
    let request = dial.request?;
    #[cfg(feature = "rustls")]
    let opened = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(dial.websocket),
        true,
        Some(dial.tls.map_or(Connector::Plain, Connector::Rustls)),
    )
    .await;
    #[cfg(not(feature = "rustls"))]
    let opened = {
        // `wss://` is refused when connecting without TLS support; nothing to hold here.
        let _ = dial.tls;
        tokio_tungstenite::connect_async_with_config(request, Some(dial.websocket), true).await
    };
    let (ws, _response) = opened.map_err(|e| wire::open_failed(&e))?;
    Ok(ws)
}

/// The write side of one open socket. The driver collects each turn's frames into a
/// batch; a task of the socket's own writes them, so reading and writing go on side by side
/// (a peer that echoes never deadlocks with us, and large frames use both cores), at one
/// wake per batch rather than per frame.
pub(crate) struct Writer {
    pub(crate) conn: ConnId,
    batch: Vec<Message>,
    handoff: Arc<Handoff<Message>>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    /// Starts the writer task of socket `conn`; a failed write is reported on `failed`.
    pub(crate) fn spawn(
        conn: ConnId,
        sink: WriteHalf,
        failed: mpsc::UnboundedSender<(ConnId, CloseCause)>,
    ) -> Self {
        let handoff = Arc::new(Handoff::new());
        let task = tokio::spawn(write_batches(conn, sink, handoff.clone(), failed));
        Self {
            conn,
            batch: Vec::new(),
            handoff,
            task,
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

    /// Sends one last close frame, then lets the socket go shortly after.
    pub(crate) fn close_with(mut self, frame: CloseFrame) {
        self.push(wire::close(frame));
        self.send_batch();
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            task.abort();
        });
    }
}

impl Drop for Writer {
    /// The socket's write half goes with its task.
    fn drop(&mut self) {
        self.handoff.close_producer();
        self.task.abort();
    }
}

async fn write_batches(
    conn: ConnId,
    mut sink: WriteHalf,
    handoff: Arc<Handoff<Message>>,
    failed: mpsc::UnboundedSender<(ConnId, CloseCause)>,
) {
    let mut local = std::collections::VecDeque::new();
    loop {
        let open = std::future::poll_fn(|cx| handoff.poll_take(&mut local, cx)).await;
        if !open {
            return;
        }
        let n = local.len();
        while let Some(message) = local.pop_front() {
            if let Err(error) = sink.feed(message).await {
                let _ = failed.send((conn, wire::closed_by(&error, None)));
                return;
            }
        }
        handoff.took(n, true);
        // Flush once nothing more waits: a busy writer shares one flush across batches.
        // One turn first lets a driver that is about to hand over more do so.
        if handoff.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
        if handoff.in_flight() == 0 {
            if let Err(error) = sink.flush().await {
                let _ = failed.send((conn, wire::closed_by(&error, None)));
                return;
            }
        }
    }
}

/// The read half of one open socket, owned by the driver.
pub(crate) struct Reader {
    pub(crate) conn: ConnId,
    stream: ReadHalf,
    peer_close: Option<CloseFrame>,
}

/// What one read produced.
pub(crate) enum Read {
    Frame(Frame),
    /// The socket ended, for this reason.
    End(CloseCause),
}

impl Reader {
    pub(crate) fn new(conn: ConnId, stream: ReadHalf) -> Self {
        Self {
            conn,
            stream,
            peer_close: None,
        }
    }

    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Read> {
        loop {
            let next = match self.stream.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(next) => next,
            };
            return Poll::Ready(match next {
                Some(Ok(message)) => match wire::read(message) {
                    wire::Read::Frame(frame) => Read::Frame(frame),
                    wire::Read::Close(frame) => {
                        self.peer_close = frame;
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
pub(crate) fn poll_readers(
    readers: &mut [Reader],
    cursor: &mut usize,
    cx: &mut Context<'_>,
) -> Poll<(ConnId, Read)> {
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
