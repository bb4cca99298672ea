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

/// Reads and writes until the socket ends; returns how it ended.
async fn pump(
    ws: Ws,
    conn: ConnId,
    inputs: &InputSender,
    mut writes: mpsc::Receiver<Write>,
) -> CloseCause {
    let (mut sink, mut stream) = ws.split();
    let mut peer_close: Option<CloseFrame> = None;
    let mut writing = true;
    loop {
        tokio::select! {
            read = stream.next() => match read {
                Some(Ok(message)) => match wire::read(message) {
                    Read::Frame(frame) => {
                        // Awaiting here is the backpressure: a slow driver stops the reads.
                        if inputs.send(Input::Frame { conn, frame }).await.is_err() {
                            return CloseCause::Aborted;
                        }
                    }
                    Read::Close(frame) => peer_close = frame,
                    Read::Nothing => {}
                },
                Some(Err(error)) => {
                    let cause = wire::closed_by(&error, peer_close.clone());
                    if let CloseCause::Error { kind: tether_core::TransportErrorKind::MessageTooBig, .. } = cause {
                        // Tell the peer why (1009), without waiting on it.
                        let too_big = CloseFrame::new(1009, "message too big");
                        let _ = sink.send(wire::close(too_big)).await;
                    }
                    return cause;
                }
                None => return peer_close.map_or(CloseCause::Dropped, CloseCause::Frame),
            },
            write = writes.recv(), if writing => match write {
                Some(Write::Frame(frame)) => {
                    if let Err(error) = sink.feed(wire::write(frame)).await {
                        return wire::closed_by(&error, peer_close.clone());
                    }
                    // Pipelined writes share one flush; an idle queue flushes at once.
                    if writes.is_empty() {
                        if let Err(error) = sink.flush().await {
                            return wire::closed_by(&error, peer_close.clone());
                        }
                    }
                }
                Some(Write::Close(frame)) => {
                    if let Err(error) = sink.send(wire::close(frame)).await {
                        return wire::closed_by(&error, peer_close.clone());
                    }
                }
                // The driver let go of this socket's writes; keep reading until it ends.
                None => writing = false,
            },
        }
    }
}
