//! One gateway socket's task: it reads the socket and writes what the driver hands it, in
//! the same turn, and closes it when told.

use std::collections::VecDeque;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tether_adapter::wire;
use tether_core::{CloseFrame, ConnId, Frame};
use tether_gateway::Violation;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::driver::FromSocket;
use super::metered::Metered;
use super::outbox::Outbox;

/// What woke a socket's task.
enum Step {
    /// A message, the end of the stream, or a read error.
    Read(Option<Result<Message, WsError>>),
    /// The driver closes the socket with this frame, or cuts it (`None`).
    Close(Option<CloseFrame>),
    /// Writing failed: the socket is dead.
    WriteFailed,
}

/// One task per socket reads it and writes it: frames from the driver are written as soon
/// as the socket takes them, reads go on while a write waits, and a close from the driver
/// is seen even while the client has stopped reading. Reads stop while what the socket
/// handed on waits for the application (its inbound credit is spent): backpressure falls
/// on this client alone.
pub(super) async fn run_socket<S>(
    mut ws: WebSocketStream<Metered<S>>,
    conn: ConnId,
    to_driver: mpsc::UnboundedSender<FromSocket>,
    outbox: &Outbox,
    close_timeout: Duration,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut batch = VecDeque::new();
    let mut unflushed = false;
    loop {
        let step = std::future::poll_fn(|cx| {
            // A close gets through even while writes wait for a client that does not read.
            if let Poll::Ready(frame) = outbox.poll_close(cx) {
                return Poll::Ready(Step::Close(frame));
            }
            // Before any write: the reply that makes a client ready comes after its limit.
            if let Some(limit) = outbox.take_read_limit() {
                ws.get_mut().set_limit(limit);
            }
            if batch.is_empty() {
                outbox.take_frames(&mut batch);
            }
            if write_ready(&mut ws, outbox, &mut batch, &mut unflushed, cx).is_err() {
                return Poll::Ready(Step::WriteFailed);
            }
            if !outbox.may_read() {
                return Poll::Pending;
            }
            ws.poll_next_unpin(cx).map(Step::Read)
        })
        .await;
        match step {
            Step::Read(Some(Ok(message))) => {
                ws.get_mut().message_done();
                match wire::read(message) {
                    wire::Read::Frame(frame) => {
                        let charge = outbox.handed_on(&frame);
                        if to_driver
                            .send(FromSocket::Frame {
                                conn,
                                frame,
                                charge,
                            })
                            .is_err()
                        {
                            break;
                        }
                    }
                    wire::Read::Close(frame) => {
                        let code = frame.map(|f| f.code);
                        if to_driver.send(FromSocket::CloseFrame(conn, code)).is_err() {
                            break;
                        }
                    }
                    wire::Read::Nothing => {}
                }
            }
            Step::Read(Some(Err(error))) => {
                // The gateway closes it with the code for what it did.
                if let Some(violation) = violation(&error, ws.get_ref()) {
                    if to_driver
                        .send(FromSocket::Violation(conn, violation))
                        .is_err()
                    {
                        break;
                    }
                    let close = std::future::poll_fn(|cx| outbox.poll_close(cx));
                    if let Ok(Some(frame)) = tokio::time::timeout(close_timeout, close).await {
                        Box::pin(linger(&mut ws, frame, close_timeout)).await;
                    }
                }
                break;
            }
            Step::Read(None) | Step::WriteFailed => break,
            Step::Close(Some(frame)) => {
                // What the gateway wrote before its close goes first (a refused connect's
                // answer, say), within the close timeout: the outbox keeps only a little.
                let flush = async {
                    if batch.is_empty() {
                        outbox.take_frames(&mut batch);
                    }
                    while let Some(queued) = batch.pop_front() {
                        outbox.written(&queued);
                        if ws.feed(wire::write(queued)).await.is_err() {
                            return;
                        }
                    }
                    let _ = ws.flush().await;
                };
                let _ = tokio::time::timeout(close_timeout, Box::pin(flush)).await;
                // Boxed: a closing socket's state need not size every open one.
                Box::pin(linger(&mut ws, frame, close_timeout)).await;
                break;
            }
            Step::Close(None) => break,
        }
    }
    outbox.gone(&batch);
    let _ = to_driver.send(FromSocket::Ended(conn));
}

/// The violation a read error is, if the client broke the protocol rather than went away.
fn violation<S>(error: &WsError, stream: &Metered<S>) -> Option<Violation> {
    match error {
        WsError::Io(_) if stream.tripped() => Some(Violation::TooBig),
        WsError::Capacity(_) => Some(Violation::TooBig),
        WsError::Utf8(_) => Some(Violation::InvalidUtf8),
        WsError::Protocol(e) => match e {
            tokio_tungstenite::tungstenite::error::ProtocolError::ResetWithoutClosingHandshake => {
                None
            }
            _ => Some(Violation::Protocol),
        },
        _ => None,
    }
}

/// Moves the batch into the socket while it takes frames, and flushes. `Err`: the socket
/// failed.
fn write_ready<S>(
    ws: &mut WebSocketStream<S>,
    outbox: &Outbox,
    batch: &mut VecDeque<Frame>,
    unflushed: &mut bool,
    cx: &mut Context<'_>,
) -> Result<(), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while !batch.is_empty() {
        match ws.poll_ready_unpin(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => return Ok(()),
        }
        if let Some(frame) = batch.pop_front() {
            outbox.written(&frame);
            ws.start_send_unpin(wire::write(frame))?;
            *unflushed = true;
        }
    }
    if *unflushed {
        match ws.poll_flush_unpin(cx) {
            Poll::Ready(Ok(())) => *unflushed = false,
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => {}
        }
    }
    Ok(())
}

/// Sends our close frame and gives the client `limit` to answer it; a client that does not
/// read is dropped when the time is up.
async fn linger<S>(ws: &mut WebSocketStream<S>, frame: CloseFrame, limit: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(limit, async {
        if ws.send(wire::close(frame)).await.is_err() {
            return;
        }
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}
