//! Sockets: opening them (a task per attempt), writing to them (a task per socket, so a
//! write waiting on a full send buffer never stops the reads), and reading them (in the
//! driver itself, which owns every socket's read half).

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

/// What the driver asks of a socket's writer.
#[derive(Debug)]
pub(crate) enum Write {
    Frame(Frame),
    Close(CloseFrame),
}

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
pub(crate) type Dialed = (ConnId, Result<Ws, OpenError>);

/// Opens one socket and hands it (or why it failed) to the driver.
pub(crate) async fn dial(dial: Dial, done: mpsc::UnboundedSender<Dialed>) {
    let conn = dial.conn;
    let opened = open(dial).await;
    if let Err(error) = &opened {
        debug!(conn = conn.get(), %error, "open failed");
    }
    let _ = done.send((conn, opened));
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

/// Writes what the driver sends, flushing whenever the queue runs dry. A failed write is
/// reported on `failed`; the reads then end the socket too.
pub(crate) async fn write_all(
    conn: ConnId,
    mut sink: WriteHalf,
    mut writes: mpsc::Receiver<Write>,
    failed: mpsc::UnboundedSender<(ConnId, CloseCause)>,
) {
    while let Some(write) = writes.recv().await {
        let sent = match write {
            Write::Frame(frame) => match sink.feed(wire::write(frame)).await {
                // Pipelined writes share one flush: when the queue runs dry, give the
                // driver one turn to add more, then flush.
                Ok(()) if writes.is_empty() => {
                    tokio::task::yield_now().await;
                    if writes.is_empty() {
                        sink.flush().await
                    } else {
                        Ok(())
                    }
                }
                other => other,
            },
            Write::Close(frame) => sink.send(wire::close(frame)).await,
        };
        if let Err(error) = sent {
            let _ = failed.send((conn, wire::closed_by(&error, None)));
            return;
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
