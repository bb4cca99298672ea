//! Sockets: opening them (a task per attempt), then reading and writing them from the
//! driver itself, which owns both halves of every open socket.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::{SinkExt, StreamExt};
use tether_core::{CloseCause, CloseFrame, ConnId, Frame, OpenError};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
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
pub(crate) type Tls = std::convert::Infallible;

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
    let connector = Some(dial.tls.map_or(Connector::Plain, Connector::Rustls));
    #[cfg(not(feature = "rustls"))]
    let connector = Some(Connector::Plain);
    let (ws, _response) = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(dial.websocket),
        true,
        connector,
    )
    .await
    .map_err(|e| wire::open_failed(&e))?;
    Ok(ws)
}

/// The write half of one open socket, owned by the driver and written without ever
/// blocking it: frames wait in `outbox` and go out as the socket takes them, while the
/// driver goes on reading (a peer that echoes can never deadlock with us).
pub(crate) struct Writer {
    pub(crate) conn: ConnId,
    sink: WriteHalf,
    outbox: std::collections::VecDeque<Message>,
    unflushed: bool,
}

impl Writer {
    pub(crate) fn new(conn: ConnId, sink: WriteHalf) -> Self {
        Self {
            conn,
            sink,
            outbox: std::collections::VecDeque::new(),
            unflushed: false,
        }
    }

    pub(crate) fn push(&mut self, message: Message) {
        self.outbox.push_back(message);
    }

    /// Frames waiting for the socket.
    pub(crate) fn waiting(&self) -> usize {
        self.outbox.len()
    }

    /// Gives up the write half, for a last close frame sent on its own.
    pub(crate) fn into_sink(self) -> WriteHalf {
        self.sink
    }

    /// Writes as much as the socket takes now, then flushes. Ready only with an error.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<tungstenite::Error> {
        while !self.outbox.is_empty() {
            match self.sink.poll_ready_unpin(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(e),
                Poll::Pending => return Poll::Pending,
            }
            if let Some(message) = self.outbox.pop_front() {
                if let Err(e) = self.sink.start_send_unpin(message) {
                    return Poll::Ready(e);
                }
                self.unflushed = true;
            }
        }
        if self.unflushed {
            match self.sink.poll_flush_unpin(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(e)) => return Poll::Ready(e),
                Poll::Pending => {}
            }
        }
        Poll::Pending
    }
}

/// Makes write progress on every socket; ready only when one of them fails.
pub(crate) fn poll_writers(
    writers: &mut [Writer],
    cx: &mut Context<'_>,
) -> Poll<(ConnId, CloseCause)> {
    for writer in writers.iter_mut() {
        if let Poll::Ready(error) = writer.poll_write(cx) {
            return Poll::Ready((writer.conn, wire::closed_by(&error, None)));
        }
    }
    Poll::Pending
}

/// Sends one last close frame on a socket the driver has let go of, without waiting long.
pub(crate) async fn send_last(mut sink: WriteHalf, frame: CloseFrame) {
    let _ = tokio::time::timeout(
        std::time::Duration::from_millis(100),
        sink.send(wire::close(frame)),
    )
    .await;
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
