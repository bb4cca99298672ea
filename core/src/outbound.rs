//! The outbound queue: application frames waiting for a ready connection.

use std::collections::VecDeque;
use std::time::Instant;

use crate::config::{Config, OverflowPolicy};
use crate::error::SendErrorKind;
use crate::event::SendId;
use crate::frame::Frame;

/// One application frame waiting to go out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Queued {
    pub(crate) id: SendId,
    pub(crate) frame: Frame,
    pub(crate) expires_at: Option<Instant>,
}

impl Queued {
    fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// A FIFO bounded in frames and in payload bytes. Nothing leaves it except by
/// [`pop_sendable`](Self::pop_sendable) (to be written) or through the `returned` callback
/// of each method (to be handed back to the application).
#[derive(Debug, Clone)]
pub(crate) struct OutboundQueue {
    items: VecDeque<Queued>,
    bytes: usize,
    max_frames: usize,
    max_bytes: usize,
    policy: OverflowPolicy,
}

impl OutboundQueue {
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            items: VecDeque::new(),
            bytes: 0,
            max_frames: config.queue_max_frames,
            max_bytes: config.queue_max_bytes,
            policy: config.overflow,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Admits `item`, or refuses it whole. Under [`OverflowPolicy::DropOldest`] the oldest
    /// frames go to `returned` until the new one fits.
    pub(crate) fn push(
        &mut self,
        item: Queued,
        mut returned: impl FnMut(Queued),
    ) -> Result<(), (SendErrorKind, Queued)> {
        let len = item.frame.len();
        if len > self.max_bytes {
            return Err((SendErrorKind::TooLarge, item));
        }
        let fits = |q: &Self| q.items.len() < q.max_frames && q.bytes + len <= q.max_bytes;
        if !fits(self) {
            match self.policy {
                OverflowPolicy::Refuse => return Err((SendErrorKind::QueueFull, item)),
                OverflowPolicy::DropOldest => {
                    while !fits(self) {
                        match self.pop_front() {
                            Some(old) => returned(old),
                            None => break,
                        }
                    }
                }
            }
        }
        self.bytes += len;
        self.items.push_back(item);
        Ok(())
    }

    /// The next frame to write, handing expired ones to `returned` on the way.
    pub(crate) fn pop_sendable(
        &mut self,
        now: Instant,
        mut returned: impl FnMut(Queued),
    ) -> Option<Queued> {
        while let Some(item) = self.pop_front() {
            if item.is_expired(now) {
                returned(item);
            } else {
                return Some(item);
            }
        }
        None
    }

    /// Hands every expired frame to `returned`, keeping the others in order.
    pub(crate) fn expire(&mut self, now: Instant, mut returned: impl FnMut(Queued)) {
        if !self.items.iter().any(|q| q.is_expired(now)) {
            return;
        }
        let mut kept = VecDeque::with_capacity(self.items.len());
        for item in self.items.drain(..) {
            if item.is_expired(now) {
                self.bytes -= item.frame.len();
                returned(item);
            } else {
                kept.push_back(item);
            }
        }
        self.items = kept;
    }

    /// Hands every frame to `returned`, oldest first.
    pub(crate) fn drain(&mut self, mut returned: impl FnMut(Queued)) {
        self.bytes = 0;
        for item in self.items.drain(..) {
            returned(item);
        }
    }

    /// The earliest time to live that will run out.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.items.iter().filter_map(|q| q.expires_at).min()
    }

    fn pop_front(&mut self) -> Option<Queued> {
        let item = self.items.pop_front()?;
        self.bytes -= item.frame.len();
        Some(item)
    }
}
