//! The outbound queue: application frames waiting for a ready connection or a rate-limit
//! slot.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::time::Instant;

use crate::config::{Config, OverflowPolicy};
use crate::error::SendErrorKind;
use crate::event::{RequestId, ReturnReason, SendId};
use crate::frame::Frame;

/// What a queued frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Item {
    /// An application send; handed back as `Returned` if it leaves unsent.
    Send(SendId),
    /// A request's frame; its outcome is the request table's business.
    Request(RequestId),
}

/// One frame waiting to go out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Queued {
    pub(crate) item: Item,
    pub(crate) frame: Frame,
    pub(crate) expires_at: Option<Instant>,
    pub(crate) key: Option<Cow<'static, str>>,
}

impl Queued {
    fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// A FIFO bounded in frames and in payload bytes. Nothing leaves it except by
/// [`pop_sendable`](Self::pop_sendable) (to be written) or through the `returned` callback
/// of each method, with the reason (to be handed back to the application).
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

    /// Admits `item`, or refuses it whole. A queued frame with the same coalescing key is
    /// replaced. Under [`OverflowPolicy::DropOldest`] the oldest frames go to `returned`
    /// until the new one fits.
    pub(crate) fn push(
        &mut self,
        item: Queued,
        mut returned: impl FnMut(Queued, ReturnReason),
    ) -> Result<(), (SendErrorKind, Queued)> {
        let len = item.frame.len();
        if len > self.max_bytes {
            return Err((SendErrorKind::TooLarge, item));
        }
        if let Some(key) = &item.key {
            if let Some(at) = self.items.iter().position(|q| q.key.as_ref() == Some(key)) {
                if let Some(old) = self.remove_at(at) {
                    returned(old, ReturnReason::Replaced);
                }
            }
        }
        let fits = |q: &Self| q.items.len() < q.max_frames && q.bytes + len <= q.max_bytes;
        if !fits(self) {
            match self.policy {
                OverflowPolicy::Refuse => return Err((SendErrorKind::QueueFull, item)),
                OverflowPolicy::DropOldest => {
                    while !fits(self) {
                        match self.remove_at(0) {
                            Some(old) => returned(old, ReturnReason::Overflow),
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
        mut returned: impl FnMut(Queued, ReturnReason),
    ) -> Option<Queued> {
        while let Some(item) = self.remove_at(0) {
            if item.is_expired(now) {
                returned(item, ReturnReason::Expired);
            } else {
                return Some(item);
            }
        }
        None
    }

    /// Hands every expired frame to `returned`, keeping the others in order.
    pub(crate) fn expire(&mut self, now: Instant, mut returned: impl FnMut(Queued, ReturnReason)) {
        while let Some(at) = self.items.iter().position(|q| q.is_expired(now)) {
            if let Some(item) = self.remove_at(at) {
                returned(item, ReturnReason::Expired);
            }
        }
    }

    /// Takes out the frame of request `id`, if it is still queued.
    pub(crate) fn remove_request(&mut self, id: RequestId) {
        if let Some(at) = self.items.iter().position(|q| q.item == Item::Request(id)) {
            self.remove_at(at);
        }
    }

    /// Takes out every request frame, keeping the sends in order.
    pub(crate) fn remove_requests(&mut self) {
        self.items.retain(|q| matches!(q.item, Item::Send(_)));
        self.bytes = self.items.iter().map(|q| q.frame.len()).sum();
    }

    /// Hands every frame to `returned`, oldest first.
    pub(crate) fn drain(&mut self, mut returned: impl FnMut(Queued, ReturnReason)) {
        self.bytes = 0;
        for item in self.items.drain(..) {
            returned(item, ReturnReason::Stopped);
        }
    }

    /// The earliest time to live that will run out.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.items.iter().filter_map(|q| q.expires_at).min()
    }

    fn remove_at(&mut self, at: usize) -> Option<Queued> {
        let item = self.items.remove(at)?;
        self.bytes -= item.frame.len();
        Some(item)
    }
}
