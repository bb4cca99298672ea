//! What the driver and one socket's task share: the frames to write, bounded in bytes; at
//! most one close; the read limit the gateway set; and the socket's inbound credit, the
//! bytes it has handed on that the application has not taken yet. One small cell per
//! socket, allocated only as frames wait, where a channel would allocate a block of slots
//! up front for every socket held.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use tether_core::{CloseFrame, Frame};

use super::budget::{Budget, cost};

/// Why a frame was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The socket's bound is reached: the client does not keep up.
    Full,
    /// The process-wide budget is spent.
    OverBudget,
    /// The socket is closing or gone.
    Closed,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Frame>,
    /// Bytes of the frames waiting here or in the socket's batch, not yet written.
    queued: usize,
    /// Bytes read and handed on, not yet taken by the application.
    inbound: usize,
    /// A read limit the socket has not applied yet.
    read_limit: Option<usize>,
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
    budget: Arc<Budget>,
    /// The bytes of inbound credit: past them the socket stops reading.
    window: usize,
}

impl Outbox {
    pub(crate) fn new(budget: Arc<Budget>, window: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            socket: AtomicWaker::new(),
            budget,
            window,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `frame` behind those waiting, within the socket's byte bound and the
    /// process's budget.
    pub(crate) fn push(&self, frame: Frame) -> Result<(), Refused> {
        let charge = cost(&frame);
        let mut state = self.state();
        if state.closing || state.gone {
            return Err(Refused::Closed);
        }
        let queued = state.queued.saturating_add(charge);
        if queued > self.budget.socket_limit() {
            return Err(Refused::Full);
        }
        if !self.budget.reserve_outbound(charge) {
            return Err(Refused::OverBudget);
        }
        state.queued = queued;
        self.budget.socket_queued(queued);
        state.frames.push_back(frame);
        drop(state);
        self.socket.wake();
        Ok(())
    }

    /// Asks the socket to close with `frame`, or to be cut with no close frame (`None`).
    /// A close frame follows what little still waits (the answer that explains a refusal:
    /// at most [`FLUSH_BEFORE_CLOSE`] bytes); more than that, or a cut, is dropped, since
    /// the gateway has given the connection up.
    pub(crate) fn close(&self, frame: Option<CloseFrame>) {
        let mut state = self.state();
        if state.closing {
            return;
        }
        state.closing = true;
        if frame.is_none() || state.queued > FLUSH_BEFORE_CLOSE {
            Self::drop_frames(&mut state, &self.budget);
        }
        state.close = Some(frame);
        drop(state);
        self.socket.wake();
    }

    /// Messages of at most `max_message` bytes from now on.
    pub(crate) fn set_read_limit(&self, max_message: usize) {
        self.state().read_limit = Some(max_message);
        self.socket.wake();
    }

    /// The read limit set since the last call, if any.
    pub(crate) fn take_read_limit(&self) -> Option<usize> {
        self.state().read_limit.take()
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
    /// capacities. They stay counted until [`written`](Self::written).
    pub(crate) fn take_frames(&self, local: &mut VecDeque<Frame>) {
        let mut state = self.state();
        if !state.frames.is_empty() {
            std::mem::swap(&mut state.frames, local);
        }
    }

    /// A frame taken was handed to the socket.
    pub(crate) fn written(&self, frame: &Frame) {
        let charge = cost(frame);
        let mut state = self.state();
        state.queued = state.queued.saturating_sub(charge);
        self.budget.release_outbound(charge);
    }

    /// Whether the socket may read more: its inbound credit is not spent.
    pub(crate) fn may_read(&self) -> bool {
        self.state().inbound < self.window
    }

    /// The socket handed on `frame`: its bytes are held until [`taken`](Self::taken).
    pub(crate) fn handed_on(&self, frame: &Frame) -> usize {
        let charge = cost(frame);
        let mut state = self.state();
        state.inbound = state.inbound.saturating_add(charge);
        self.budget.add_inbound(charge);
        charge
    }

    /// The application took `charge` bytes this socket handed on: the socket may read on.
    pub(crate) fn taken(&self, charge: usize) {
        let mut state = self.state();
        state.inbound = state.inbound.saturating_sub(charge);
        self.budget.release_inbound(charge);
        drop(state);
        self.socket.wake();
    }

    /// The socket's task has ended: further pushes are refused, and what it had queued is
    /// free. Frames left in its batch are given back with `unsent`.
    pub(crate) fn gone(&self, unsent: &VecDeque<Frame>) {
        let mut state = self.state();
        state.gone = true;
        Self::drop_frames(&mut state, &self.budget);
        for frame in unsent {
            let charge = cost(frame);
            state.queued = state.queued.saturating_sub(charge);
            self.budget.release_outbound(charge);
        }
    }

    fn drop_frames(state: &mut State, budget: &Budget) {
        let dropped: usize = state.frames.iter().map(cost).sum();
        state.queued = state.queued.saturating_sub(dropped);
        budget.release_outbound(dropped);
        state.frames = VecDeque::new();
    }
}

/// The most bytes still waiting that a close frame goes after rather than drops.
const FLUSH_BEFORE_CLOSE: usize = 64 << 10;

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn budget(socket: usize, total: usize) -> Arc<Budget> {
        Arc::new(Budget::new(total, socket))
    }

    #[test]
    fn bounded_in_bytes_then_closed() {
        let budget = budget(3 * cost(&Frame::text("a")), 1 << 20);
        let outbox = Outbox::new(budget.clone(), 1024);
        assert_eq!(outbox.push(Frame::text("a")), Ok(()));
        assert_eq!(outbox.push(Frame::text("b")), Ok(()));
        assert_eq!(outbox.push(Frame::text("cc")), Err(Refused::Full));
        let mut cx = Context::from_waker(Waker::noop());
        let mut local = VecDeque::new();
        assert!(outbox.poll_close(&mut cx).is_pending());
        outbox.take_frames(&mut local);
        assert_eq!(local.len(), 2);
        assert_eq!(budget.stats().outbound, 2 * cost(&Frame::text("a")));
        for frame in local.drain(..) {
            outbox.written(&frame);
        }
        assert_eq!(budget.stats().outbound, 0);
        // A little still waiting goes before the close frame (a refusal's answer).
        outbox.push(Frame::text("d")).ok();
        outbox.close(Some(CloseFrame::new(1008, "refused")));
        assert_eq!(outbox.push(Frame::text("e")), Err(Refused::Closed));
        assert!(matches!(outbox.poll_close(&mut cx), Poll::Ready(Some(f)) if f.code == 1008));
        outbox.take_frames(&mut local);
        assert_eq!(local.len(), 1, "the frame before the close is kept");
        for frame in local.drain(..) {
            outbox.written(&frame);
        }
        assert_eq!(budget.stats().outbound, 0);
        assert!(
            outbox.poll_close(&mut cx).is_pending(),
            "a close is taken once"
        );
        // A cut drops what waits, and frees it.
        let cut = Outbox::new(budget.clone(), 1024);
        cut.push(Frame::text("f")).ok();
        cut.close(None);
        assert_eq!(budget.stats().outbound, 0, "frames behind a cut are freed");
        cut.take_frames(&mut local);
        assert!(local.is_empty(), "frames behind a cut are dropped");
        outbox.gone(&local);
        cut.gone(&local);
        assert_eq!(budget.stats().outbound_peak, 2 * cost(&Frame::text("a")));
    }

    #[test]
    fn the_process_budget_is_shared_by_every_socket() {
        let one = cost(&Frame::text("x"));
        let budget = budget(10 * one, 3 * one);
        let a = Outbox::new(budget.clone(), 1024);
        let b = Outbox::new(budget.clone(), 1024);
        assert_eq!(a.push(Frame::text("x")), Ok(()));
        assert_eq!(a.push(Frame::text("x")), Ok(()));
        assert_eq!(b.push(Frame::text("x")), Ok(()));
        assert_eq!(b.push(Frame::text("x")), Err(Refused::OverBudget));
        a.close(None);
        assert_eq!(b.push(Frame::text("x")), Ok(()));
        assert!(budget.stats().outbound_peak <= 3 * one);
    }

    #[test]
    fn inbound_credit_stops_reads_until_taken() {
        let budget = budget(1 << 20, 1 << 20);
        let frame = Frame::text("hello");
        let outbox = Outbox::new(budget.clone(), 2 * cost(&frame));
        assert!(outbox.may_read());
        let first = outbox.handed_on(&frame);
        assert!(outbox.may_read());
        let second = outbox.handed_on(&frame);
        assert!(!outbox.may_read(), "the window is spent");
        outbox.taken(first);
        assert!(outbox.may_read());
        outbox.taken(second);
        assert_eq!(budget.stats().inbound, 0);
        assert_eq!(budget.stats().inbound_peak, 2 * cost(&frame));
    }
}
