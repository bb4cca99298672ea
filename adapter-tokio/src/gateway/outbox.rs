//! What the driver hands one socket: frames to write, at most a bound of them, and at most
//! one close. One small shared cell per socket, allocated only as frames wait, where a
//! channel would allocate a block of slots up front for every socket held.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use tether_core::{CloseFrame, Frame};

/// Why a frame was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The bound is reached: the client does not keep up.
    Full,
    /// The socket is closing or gone.
    Closed,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Frame>,
    /// The close asked for: with a frame, or `None` to cut the socket without one.
    close: Option<Option<CloseFrame>>,
    /// A close was asked for (and possibly taken already).
    closing: bool,
    /// The socket's task has ended.
    gone: bool,
}

pub(crate) struct Outbox {
    state: Mutex<State>,
    socket: AtomicWaker,
    bound: usize,
}

impl Outbox {
    pub(crate) fn new(bound: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            socket: AtomicWaker::new(),
            bound: bound.max(1),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `frame` behind those waiting.
    pub(crate) fn push(&self, frame: Frame) -> Result<(), Refused> {
        let mut state = self.state();
        if state.closing || state.gone {
            return Err(Refused::Closed);
        }
        if state.frames.len() >= self.bound {
            return Err(Refused::Full);
        }
        state.frames.push_back(frame);
        drop(state);
        self.socket.wake();
        Ok(())
    }

    /// Asks the socket to close with `frame`, or to be cut with no close frame (`None`);
    /// frames still waiting are dropped, since the gateway has given the connection up.
    pub(crate) fn close(&self, frame: Option<CloseFrame>) {
        let mut state = self.state();
        if state.closing {
            return;
        }
        state.closing = true;
        state.frames = VecDeque::new();
        state.close = Some(frame);
        drop(state);
        self.socket.wake();
    }

    /// The close the driver asked for, once. Registers the socket's task to be woken by
    /// anything the driver hands over afterwards.
    pub(crate) fn poll_close(&self, cx: &mut Context<'_>) -> Poll<Option<CloseFrame>> {
        self.socket.register(cx.waker());
        match self.state().close.take() {
            Some(frame) => Poll::Ready(frame),
            None => Poll::Pending,
        }
    }

    /// Moves every waiting frame into `local` (which must be empty), keeping both
    /// capacities.
    pub(crate) fn take_frames(&self, local: &mut VecDeque<Frame>) {
        let mut state = self.state();
        if !state.frames.is_empty() {
            std::mem::swap(&mut state.frames, local);
        }
    }

    /// The socket's task has ended: further pushes are refused.
    pub(crate) fn gone(&self) {
        let mut state = self.state();
        state.gone = true;
        state.frames = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    #[test]
    fn bounded_then_closed() {
        let outbox = Outbox::new(2);
        assert_eq!(outbox.push(Frame::text("a")), Ok(()));
        assert_eq!(outbox.push(Frame::text("b")), Ok(()));
        assert_eq!(outbox.push(Frame::text("c")), Err(Refused::Full));
        let mut cx = Context::from_waker(Waker::noop());
        let mut local = VecDeque::new();
        assert!(outbox.poll_close(&mut cx).is_pending());
        outbox.take_frames(&mut local);
        assert_eq!(local.len(), 2);
        local.clear();
        outbox.push(Frame::text("d")).ok();
        outbox.close(Some(CloseFrame::new(1008, "slow")));
        assert_eq!(outbox.push(Frame::text("e")), Err(Refused::Closed));
        assert!(matches!(outbox.poll_close(&mut cx), Poll::Ready(Some(f)) if f.code == 1008));
        outbox.take_frames(&mut local);
        assert!(local.is_empty(), "frames behind a close are dropped");
        assert!(
            outbox.poll_close(&mut cx).is_pending(),
            "a close is taken once"
        );
        outbox.gone();
    }
}
