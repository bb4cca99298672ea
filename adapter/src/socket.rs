//! Sockets: opening them (through the runtime, a task per attempt), then reading and
//! writing them from the driver itself.

use std::collections::VecDeque;
use std::task::{Context, Poll};

use futures_util::{SinkExt, StreamExt};
use tether_core::{CloseCause, CloseFrame, ConnId, Frame, OpenError};
use tokio::sync::mpsc;
use tracing::debug;
use tungstenite::Message;

use crate::Runtime;
use crate::wire;

/// The TLS settings for `wss://`.
#[cfg(feature = "rustls")]
pub type Tls = std::sync::Arc<rustls::ClientConfig>;
/// Without TLS support, `wss://` is refused when connecting; nothing is ever held here.
#[cfg(not(feature = "rustls"))]
pub type Tls = NoTls;

/// A type with no values: TLS settings that cannot exist without the `rustls` feature.
#[cfg(not(feature = "rustls"))]
#[derive(Debug, Clone)]
pub enum NoTls {}

/// The result of one open, for the driver.
pub(crate) type Dialed<S> = (ConnId, Result<S, OpenError>);

/// What a session's tasks tell its driver, on one channel: a channel allocates a block of
/// slots up front, and a process may hold thousands of sessions. Large payloads are boxed
/// so the slots stay small.
pub(crate) enum News<S> {
    /// An open attempt resolved.
    Dialed(ConnId, Box<Result<S, OpenError>>),
    /// The start gate granted a session start.
    Granted(ConnId),
}

/// Opens one socket through the runtime and hands it (or why it failed) to the driver.
pub(crate) async fn dial<R: Runtime>(
    runtime: R,
    conn: ConnId,
    request: Result<tungstenite::handshake::client::Request, OpenError>,
    websocket: tungstenite::protocol::WebSocketConfig,
    tls: Option<Tls>,
    done: mpsc::UnboundedSender<News<R::Socket>>,
) {
    let opened = match request {
        Ok(request) => runtime.connect(request, websocket, tls).await,
        Err(error) => Err(error),
    };
    if let Err(error) = &opened {
        debug!(conn = conn.get(), %error, "open failed");
    }
    let _ = done.send(News::Dialed(conn, Box::new(opened)));
}

/// One open socket, read and written by the driver itself: no task of its own, no lock
/// between halves. Writes wait in the socket's queue and go out as the socket takes them,
/// polled in the same turn as its reads, so a peer that does not read never stops the
/// driver from reading (and an echoing peer never deadlocks with us).
pub(crate) struct Open<S> {
    pub(crate) conn: ConnId,
    ws: S,
    queue: VecDeque<Message>,
    unflushed: bool,
    peer_close: Option<CloseFrame>,
}

/// What one read produced.
pub(crate) enum Read {
    Frame(Frame),
    /// The socket ended, for this reason.
    End(CloseCause),
}

/// What polling the sockets produced.
pub(crate) enum Polled {
    /// A socket read something (or ended).
    Read(ConnId, Read),
    /// Writes went out: the queues are shorter, or flushed.
    Wrote,
}

impl<S> Open<S>
where
    S: futures_util::Stream<Item = Result<Message, tungstenite::Error>>
        + futures_util::Sink<Message, Error = tungstenite::Error>
        + Unpin,
{
    pub(crate) fn new(conn: ConnId, ws: S) -> Self {
        Self {
            conn,
            ws,
            queue: VecDeque::new(),
            unflushed: false,
            peer_close: None,
        }
    }

    pub(crate) fn push(&mut self, message: Message) {
        self.queue.push_back(message);
    }

    /// Frames waiting to be written.
    pub(crate) fn waiting(&self) -> usize {
        self.queue.len()
    }

    /// Moves queued frames into the socket while it takes them, then flushes. `Ok(true)`
    /// when anything moved on; `Err` when the socket failed.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<bool, tungstenite::Error> {
        let mut moved = false;
        while !self.queue.is_empty() {
            match self.ws.poll_ready_unpin(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(moved),
            }
            if let Some(message) = self.queue.pop_front() {
                self.ws.start_send_unpin(message)?;
                self.unflushed = true;
                moved = true;
            }
        }
        if self.unflushed {
            match self.ws.poll_flush_unpin(cx) {
                Poll::Ready(Ok(())) => {
                    self.unflushed = false;
                    moved = true;
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => {}
            }
        }
        Ok(moved)
    }

    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Read> {
        loop {
            let next = match self.ws.poll_next_unpin(cx) {
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

    /// Sends one last close frame, giving up at `deadline`, and lets the socket go.
    pub(crate) async fn close_with(
        mut self,
        frame: CloseFrame,
        deadline: futures_util::future::BoxFuture<'static, ()>,
    ) {
        let send = self.ws.send(wire::close(frame));
        futures_util::pin_mut!(send);
        let _ = futures_util::future::select(send, deadline).await;
    }
}

/// Makes write progress on every socket and reads them in turn from `cursor` (when
/// `read` allows), so no socket starves another. A failed write ends its socket like a
/// failed read.
pub(crate) fn poll_sockets<S>(
    sockets: &mut [Open<S>],
    cursor: &mut usize,
    read: bool,
    cx: &mut Context<'_>,
) -> Poll<Polled>
where
    S: futures_util::Stream<Item = Result<Message, tungstenite::Error>>
        + futures_util::Sink<Message, Error = tungstenite::Error>
        + Unpin,
{
    let mut wrote = false;
    for socket in sockets.iter_mut() {
        match socket.poll_write(cx) {
            Ok(moved) => wrote |= moved,
            Err(error) => {
                let cause = socket.end(&error);
                return Poll::Ready(Polled::Read(socket.conn, Read::End(cause)));
            }
        }
    }
    if read {
        let n = sockets.len();
        for i in 0..n {
            let at = (*cursor + i) % n;
            if let Some(socket) = sockets.get_mut(at) {
                if let Poll::Ready(read) = socket.poll_read(cx) {
                    *cursor = at + 1;
                    return Poll::Ready(Polled::Read(socket.conn, read));
                }
            }
        }
    }
    if wrote {
        Poll::Ready(Polled::Wrote)
    } else {
        Poll::Pending
    }
}
