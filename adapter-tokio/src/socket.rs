//! One task per socket: it opens the socket, forwards what it reads to the driver tagged
//! with its `ConnId`, and writes what the driver sends it.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tether_core::{CloseCause, CloseFrame, ConnId, Frame, Input, OpenError};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use tracing::{Instrument, debug, debug_span};

use crate::wire::{self, Read};

/// What the driver asks of a socket.
#[derive(Debug)]
pub(crate) enum Write {
    Frame(Frame),
    Close(CloseFrame),
}

/// How a socket task reaches the driver: the input, tagged by the socket's generation.
pub(crate) type InputSender = mpsc::Sender<Input>;

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

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Runs one socket from open to close. Every path ends with exactly one report to the
/// driver: `OpenFailed`, or `Opened` and later `Closed`. (An abort cancels the task; the
/// driver then reports for it.)
pub(crate) async fn run(dial: Dial, inputs: InputSender, writes: mpsc::Receiver<Write>) {
    let conn = dial.conn;
    let span = debug_span!("socket", conn = conn.get());
    async move {
        match open(dial).await {
            Ok(ws) => {
                debug!("opened");
                if inputs.send(Input::Opened { conn }).await.is_ok() {
                    let cause = pump(ws, conn, &inputs, writes).await;
                    debug!(%cause, "closed");
                    let _ = inputs.send(Input::Closed { conn, cause }).await;
                }
            }
            Err(error) => {
                debug!(%error, "open failed");
                let _ = inputs.send(Input::OpenFailed { conn, error }).await;
            }
        }
    }
    .instrument(span)
    .await;
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

/// Reads and writes until the socket ends; returns how it ended. Writes run in a task of
/// their own, side by side with the reads: a write waiting on a full send buffer never
/// stops the reads (a peer that echoes would otherwise deadlock with us), and the two
/// directions use both cores as a raw split socket would.
async fn pump(
    ws: Ws,
    conn: ConnId,
    inputs: &InputSender,
    writes: mpsc::Receiver<Write>,
) -> CloseCause {
    let (sink, mut stream) = ws.split();
    let (too_big_tx, too_big_rx) = tokio::sync::oneshot::channel();
    let writer = AbortOnDrop(tokio::spawn(write_all(sink, writes, too_big_rx)));
    let mut peer_close: Option<CloseFrame> = None;
    let mut writer_done = writer;
    let cause = loop {
        tokio::select! {
            read = stream.next() => match read {
                Some(Ok(message)) => match wire::read(message) {
                    Read::Frame(frame) => {
                        // Awaiting here is the backpressure: a slow driver stops the reads.
                        if inputs.send(Input::Frame { conn, frame }).await.is_err() {
                            break CloseCause::Aborted;
                        }
                    }
                    Read::Close(frame) => peer_close = frame,
                    Read::Nothing => {}
                },
                Some(Err(error)) => break wire::closed_by(&error, peer_close),
                None => break peer_close.map_or(CloseCause::Dropped, CloseCause::Frame),
            },
            written = &mut writer_done.0 => match written {
                Ok(Some(cause)) => break cause,
                // The writer ended without an error: keep reading until the socket ends.
                Ok(None) | Err(_) => {
                    let cause = read_to_end(&mut stream, peer_close).await;
                    break cause;
                }
            },
        }
    };
    if let CloseCause::Error {
        kind: tether_core::TransportErrorKind::MessageTooBig,
        ..
    } = cause
    {
        // Tell the peer why (1009), without waiting long on it.
        let _ = too_big_tx.send(());
        let _ =
            tokio::time::timeout(std::time::Duration::from_millis(100), &mut writer_done.0).await;
    }
    cause
}

type Stream = futures_util::stream::SplitStream<Ws>;
type Sink = futures_util::stream::SplitSink<Ws, tokio_tungstenite::tungstenite::Message>;

async fn read_to_end(stream: &mut Stream, mut peer_close: Option<CloseFrame>) -> CloseCause {
    loop {
        match stream.next().await {
            Some(Ok(message)) => {
                if let Read::Close(frame) = wire::read(message) {
                    peer_close = frame;
                }
            }
            Some(Err(error)) => return wire::closed_by(&error, peer_close),
            None => return peer_close.map_or(CloseCause::Dropped, CloseCause::Frame),
        }
    }
}

/// Writes what the driver sends, flushing whenever the queue runs dry. Ends with the
/// cause if a write fails, or `None` once the driver lets go (the reads go on).
async fn write_all(
    mut sink: Sink,
    mut writes: mpsc::Receiver<Write>,
    mut too_big: tokio::sync::oneshot::Receiver<()>,
) -> Option<CloseCause> {
    loop {
        let write = tokio::select! {
            write = writes.recv() => write,
            told = &mut too_big => {
                if told.is_ok() {
                    let _ = sink.send(wire::close(CloseFrame::new(1009, "message too big"))).await;
                }
                return None;
            }
        };
        let Some(write) = write else {
            // Keep the sink alive for the 1009 notice, should the reads need it.
            if (&mut too_big).await.is_ok() {
                let _ = sink
                    .send(wire::close(CloseFrame::new(1009, "message too big")))
                    .await;
            }
            return None;
        };
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
            return Some(wire::closed_by(&error, None));
        }
    }
}

/// Aborts the task when dropped, so an aborted socket task takes its writer with it.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
