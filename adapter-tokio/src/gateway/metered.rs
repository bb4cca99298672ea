//! A socket's byte stream, metered: the bytes read since the last whole message are
//! counted, and past the limit the stream stops giving any, so an unfinished message can
//! make the server hold no more than its limit (and one read buffer) whatever the client
//! sends. tokio-tungstenite cannot change its own size limit once a socket is open; the
//! limit here can, as a client moves from unauthenticated to ready.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::budget::Budget;

pub(crate) struct Metered<S> {
    inner: S,
    budget: Arc<Budget>,
    /// Bytes read since the last whole message.
    unfinished: usize,
    /// How many may be read before a message completes.
    limit: usize,
    tripped: bool,
}

/// The room allowed beyond a message's payload: its frames' headers, a few control frames
/// between its fragments.
fn allowance(max_message: usize) -> usize {
    max_message.saturating_add((max_message / 4).max(1024))
}

impl<S> Metered<S> {
    pub(crate) fn new(inner: S, budget: Arc<Budget>, max_message: usize) -> Self {
        Self {
            inner,
            budget,
            unfinished: 0,
            limit: allowance(max_message),
            tripped: false,
        }
    }

    /// Messages of at most `max_message` bytes from now on.
    pub(crate) fn set_limit(&mut self, max_message: usize) {
        self.limit = allowance(max_message);
    }

    /// A whole message was read: what was held for it is free.
    pub(crate) fn message_done(&mut self) {
        self.budget.release_unfinished(self.unfinished);
        self.unfinished = 0;
    }

    /// The client sent more than the limit without finishing a message.
    pub(crate) fn tripped(&self) -> bool {
        self.tripped
    }
}

impl<S> Drop for Metered<S> {
    fn drop(&mut self) {
        self.budget.release_unfinished(self.unfinished);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.unfinished >= this.limit {
            this.tripped = true;
            return Poll::Ready(Err(io::Error::other("message over the size allowed")));
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        this.unfinished = this.unfinished.saturating_add(n);
        this.budget.add_unfinished(n);
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
