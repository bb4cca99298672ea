//! One gateway socket's task: it reads the socket and writes what the driver hands it, in
//! the same turn, and closes it when told.

use std::collections::VecDeque;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tether_adapter::wire;
use tether_core::{CloseFrame, ConnId, Frame};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::driver::ToDriver;
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
/// is seen even while the client has stopped reading.
pub(super) async fn run_socket<S>(
    mut ws: tokio_tungstenite::WebSocketStream<S>,
    conn: ConnId,
    calls: mpsc::Sender<ToDriver>,
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
            if batch.is_empty() {
                outbox.take_frames(&mut batch);
            }
            if write_ready(&mut ws, &mut batch, &mut unflushed, cx).is_err() {
                return Poll::Ready(Step::WriteFailed);
            }
            ws.poll_next_unpin(cx).map(Step::Read)
        })
        .await;
        match step {
            Step::Read(Some(Ok(message))) => match wire::read(message) {
                wire::Read::Frame(frame) => {
                    if calls.send(ToDriver::Frame(conn, frame)).await.is_err() {
                        break;
                    }
                }
                wire::Read::Close(_) | wire::Read::Nothing => {}
            },
            Step::Read(_) | Step::WriteFailed => break,
            Step::Close(Some(frame)) => {
                // Boxed: a closing socket's state need not size every open one.
                Box::pin(linger(&mut ws, frame, close_timeout)).await;
                break;
            }
            Step::Close(None) => break,
        }
    }
    let _ = calls.send(ToDriver::Ended(conn)).await;
}

/// Moves the batch into the socket while it takes frames, and flushes. `Err`: the socket
/// failed.
fn write_ready<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
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
async fn linger<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    frame: CloseFrame,
    limit: Duration,
) where
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
