//! A hand-off queue between two tasks: the producer moves a turn's items in under one
//! lock, the consumer swaps the whole queue out under one lock. Both deques keep their
//! capacity, so in steady state nothing is allocated per item or per batch, and each side
//! wakes the other once per batch rather than once per item.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use tokio::sync::Notify;

pub(crate) struct Handoff<T> {
    queue: Mutex<VecDeque<T>>,
    /// Items handed over and not yet taken by the consumer (its local batch included).
    in_flight: AtomicUsize,
    consumer: AtomicWaker,
    room: Notify,
    producer_gone: AtomicBool,
    consumer_gone: AtomicBool,
}

impl<T> Handoff<T> {
    pub(crate) fn new() -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            in_flight: AtomicUsize::new(0),
            consumer: AtomicWaker::new(),
            room: Notify::new(),
            producer_gone: AtomicBool::new(false),
            consumer_gone: AtomicBool::new(false),
        }
    }

    /// Moves every item of `items` over (leaving it empty, its capacity kept). False if
    /// the consumer is gone: the items are dropped, there being no one to take them.
    pub(crate) fn send(&self, items: &mut Vec<T>) -> bool {
        if items.is_empty() {
            return true;
        }
        if self.consumer_gone.load(Ordering::Acquire) {
            items.clear();
            return false;
        }
        self.in_flight.fetch_add(items.len(), Ordering::AcqRel);
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(items.drain(..));
        self.consumer.wake();
        true
    }

    /// Items handed over and not yet taken; none once the consumer is gone (what it left
    /// will never be taken, and must not hold the producer back).
    pub(crate) fn in_flight(&self) -> usize {
        if self.consumer_gone.load(Ordering::Acquire) {
            return 0;
        }
        self.in_flight.load(Ordering::Acquire)
    }

    /// Resolves once the consumer has taken a batch (or left) since the last call.
    pub(crate) async fn room(&self) {
        self.room.notified().await;
    }

    /// Fills `local` with everything handed over, when it is empty. `Ready(false)` once the
    /// producer is gone and nothing is left.
    pub(crate) fn poll_take(&self, local: &mut VecDeque<T>, cx: &mut Context<'_>) -> Poll<bool> {
        if !local.is_empty() {
            return Poll::Ready(true);
        }
        // Registered before looking, so a send between the look and the wait still wakes.
        self.consumer.register(cx.waker());
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if !queue.is_empty() {
            std::mem::swap(&mut *queue, local);
            return Poll::Ready(true);
        }
        drop(queue);
        if self.producer_gone.load(Ordering::Acquire) {
            return Poll::Ready(false);
        }
        Poll::Pending
    }

    /// The consumer is done with `n` items; a producer waiting for room hears of it once
    /// the consumer's batch is used up.
    pub(crate) fn took(&self, n: usize, batch_used_up: bool) {
        self.in_flight.fetch_sub(n, Ordering::AcqRel);
        if batch_used_up {
            self.room.notify_one();
        }
    }

    pub(crate) fn close_producer(&self) {
        self.producer_gone.store(true, Ordering::Release);
        self.consumer.wake();
    }

    pub(crate) fn close_consumer(&self) {
        self.consumer_gone.store(true, Ordering::Release);
        self.room.notify_one();
    }
}
