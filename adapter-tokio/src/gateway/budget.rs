//! The server's byte accounting: what its sockets hold in each place, now and at the
//! most, and the process-wide bound on what they are owed.

use std::sync::atomic::{AtomicUsize, Ordering};

use tether_core::Frame;

/// What each queued frame costs beyond its payload: its slot and its buffer's header, so
/// that a flood of empty frames is not free.
pub(crate) const FRAME_OVERHEAD: usize = 64;

/// What `frame` counts against a byte budget.
pub(crate) fn cost(frame: &Frame) -> usize {
    frame.len().saturating_add(FRAME_OVERHEAD)
}

/// Bytes the gateway's sockets hold, in each place, now and at the most. The gateway's own
/// count, exact for what it queues; for what the WebSocket layer holds of a message not yet
/// complete, the bytes read since the last whole message (within one read buffer of it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Bytes read of messages not yet complete, over all sockets.
    pub unfinished: usize,
    /// The most ever held at once.
    pub unfinished_peak: usize,
    /// Bytes read and handed on, not yet taken by the application, over all sockets.
    pub inbound: usize,
    /// The most ever held at once.
    pub inbound_peak: usize,
    /// Bytes waiting to be written, over all sockets.
    pub outbound: usize,
    /// The most ever held at once.
    pub outbound_peak: usize,
    /// The most any one socket ever had waiting to be written.
    pub outbound_socket_peak: usize,
    /// The process-wide bound on `outbound`.
    pub outbound_budget: usize,
    /// The bound on what one socket may have waiting to be written.
    pub outbound_socket_budget: usize,
}

/// One counter and its peak.
#[derive(Debug, Default)]
struct Gauge {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Gauge {
    fn add(&self, n: usize) {
        let now = self.now.fetch_add(n, Ordering::AcqRel).saturating_add(n);
        self.peak.fetch_max(now, Ordering::AcqRel);
    }

    fn sub(&self, n: usize) {
        // Never below zero, whatever the order of a racing add and sub.
        let _ = self
            .now
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                Some(v.saturating_sub(n))
            });
    }

    fn get(&self) -> (usize, usize) {
        (
            self.now.load(Ordering::Acquire),
            self.peak.load(Ordering::Acquire),
        )
    }
}

/// The gateway's byte accounting, shared by its driver and its sockets.
#[derive(Debug)]
pub(crate) struct Budget {
    unfinished: Gauge,
    inbound: Gauge,
    outbound: Gauge,
    outbound_socket_peak: AtomicUsize,
    outbound_limit: usize,
    socket_limit: usize,
}

impl Budget {
    pub(crate) fn new(outbound_limit: usize, socket_limit: usize) -> Self {
        Self {
            unfinished: Gauge::default(),
            inbound: Gauge::default(),
            outbound: Gauge::default(),
            outbound_socket_peak: AtomicUsize::new(0),
            outbound_limit,
            socket_limit,
        }
    }

    /// What one socket may have waiting to be written.
    pub(crate) fn socket_limit(&self) -> usize {
        self.socket_limit
    }

    /// Takes `n` bytes of the process-wide outbound budget; `false` (and nothing taken)
    /// when that would pass it.
    pub(crate) fn reserve_outbound(&self, n: usize) -> bool {
        let taken = self
            .outbound
            .now
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                v.checked_add(n)
                    .filter(|total| *total <= self.outbound_limit)
            });
        match taken {
            Ok(before) => {
                self.outbound
                    .peak
                    .fetch_max(before.saturating_add(n), Ordering::AcqRel);
                true
            }
            Err(_) => false,
        }
    }

    /// A socket's queue now holds `queued` bytes.
    pub(crate) fn socket_queued(&self, queued: usize) {
        self.outbound_socket_peak
            .fetch_max(queued, Ordering::AcqRel);
    }

    pub(crate) fn release_outbound(&self, n: usize) {
        self.outbound.sub(n);
    }

    pub(crate) fn add_inbound(&self, n: usize) {
        self.inbound.add(n);
    }

    pub(crate) fn release_inbound(&self, n: usize) {
        self.inbound.sub(n);
    }

    pub(crate) fn add_unfinished(&self, n: usize) {
        self.unfinished.add(n);
    }

    pub(crate) fn release_unfinished(&self, n: usize) {
        self.unfinished.sub(n);
    }

    pub(crate) fn stats(&self) -> MemoryStats {
        let (unfinished, unfinished_peak) = self.unfinished.get();
        let (inbound, inbound_peak) = self.inbound.get();
        let (outbound, outbound_peak) = self.outbound.get();
        MemoryStats {
            unfinished,
            unfinished_peak,
            inbound,
            inbound_peak,
            outbound,
            outbound_peak,
            outbound_socket_peak: self.outbound_socket_peak.load(Ordering::Acquire),
            outbound_budget: self.outbound_limit,
            outbound_socket_budget: self.socket_limit,
        }
    }
}
