//! The per-connection outbound rate limit: a sliding window of send times.

use std::collections::VecDeque;
use std::time::Instant;

use crate::protocol::RateLimit;

/// Remembers when the last frames went out on the current connection. A sliding window
/// (not a token bucket) so that no window of `per` ever holds more than `max` frames.
#[derive(Debug, Clone, Default)]
pub(crate) struct RateLimiter {
    limit: Option<RateLimit>,
    sent: VecDeque<Instant>,
}

impl RateLimiter {
    /// Starts a new connection's window under `limit`.
    pub(crate) fn reset(&mut self, limit: Option<RateLimit>) {
        self.limit = limit;
        self.sent.clear();
    }

    /// The slots application frames may use; the rest are the machine's (heartbeats and
    /// handshakes are never held back, and the reserve keeps them within `max`).
    fn application_cap(limit: &RateLimit) -> usize {
        (limit.max as usize).saturating_sub(limit.reserved as usize)
    }

    fn forget_before(&mut self, now: Instant) {
        let Some(limit) = self.limit else { return };
        while self
            .sent
            .front()
            .is_some_and(|&at| crate::timer::after(at, limit.per) <= now)
        {
            self.sent.pop_front();
        }
    }

    /// Whether an application frame may go out now.
    pub(crate) fn allows_application(&mut self, now: Instant) -> bool {
        self.forget_before(now);
        match self.limit {
            None => true,
            Some(limit) => self.sent.len() < Self::application_cap(&limit),
        }
    }

    /// Whether a frame of the machine's own may go out now: within the whole limit, the
    /// reserve included.
    pub(crate) fn allows_control(&mut self, now: Instant) -> bool {
        self.forget_before(now);
        match self.limit {
            None => true,
            Some(limit) => self.sent.len() < limit.max as usize,
        }
    }

    /// A frame went out at `now`.
    pub(crate) fn record(&mut self, now: Instant) {
        if self.limit.is_some() {
            self.sent.push_back(now);
        }
    }

    /// When an application send will next be allowed, if it is not now.
    pub(crate) fn next_application_slot(&mut self, now: Instant) -> Option<Instant> {
        let limit = self.limit?;
        self.forget_before(now);
        let cap = Self::application_cap(&limit);
        let excess = (self.sent.len() + 1).checked_sub(cap)?;
        // Enough of the oldest sends must leave the window to free one slot.
        let at = excess
            .checked_sub(1)
            .and_then(|i| self.sent.get(i))
            .map(|&at| crate::timer::after(at, limit.per));
        // A cap of zero never frees a slot; the window then only empties as it slides.
        Some(at.unwrap_or_else(|| crate::timer::after(now, limit.per)))
    }
}
