//! Calls the peer made of this client (an OpenClaw gateway's invoke of a node), bound to
//! the connection that carried them.
//!
//! The peer waits for each answer on the socket it asked on. So an answer is written only
//! there: once that connection ends, its calls are gone, and an answer the application
//! gives later is refused rather than written to the next socket (where it would answer
//! a call nobody made). A call left unanswered is answered for the application just before
//! the peer would give up on it, so the peer never waits out its own timeout.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::conn::ConnId;
use crate::frame::Utf8Bytes;

/// Identifies one call of the peer, from [`Event::Call`](crate::Event::Call) to its answer.
/// It names the connection that carried the call, so an answer can never reach another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallId {
    conn: ConnId,
    n: u64,
}

impl CallId {
    /// The connection that carried the call: the only one its answer may go out on.
    pub const fn conn(self) -> ConnId {
        self.conn
    }

    /// The number of this call; strictly increasing per machine, from 1.
    pub const fn get(self) -> u64 {
        self.n
    }
}

impl std::fmt::Display for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "call#{} on {}", self.n, self.conn)
    }
}

#[derive(Debug, Clone)]
struct Pending {
    key: Utf8Bytes,
    deadline: Instant,
}

/// The calls waiting for the application's answer, each with the deadline by which the
/// machine answers it instead.
#[derive(Debug, Clone, Default)]
pub(crate) struct PeerCalls {
    pending: BTreeMap<CallId, Pending>,
    deadlines: BTreeSet<(Instant, CallId)>,
    last: u64,
}

/// How long before the peer's own timeout the machine answers an unanswered call: a tenth
/// of the timeout, at most a second, so the answer arrives while the peer still waits.
pub(crate) fn answer_by(now: Instant, peer_timeout: Duration) -> Instant {
    let margin = (peer_timeout / 10).min(Duration::from_secs(1));
    crate::timer::after(now, peer_timeout.saturating_sub(margin))
}

impl PeerCalls {
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    /// Registers a call that arrived on `conn`; `key` is what the profile needs to answer
    /// it.
    pub(crate) fn register(&mut self, conn: ConnId, key: Utf8Bytes, deadline: Instant) -> CallId {
        self.last += 1;
        let id = CallId { conn, n: self.last };
        self.pending.insert(id, Pending { key, deadline });
        self.deadlines.insert((deadline, id));
        id
    }

    /// Takes the call out to answer it; `None` if it was answered or expired already, or
    /// its connection ended.
    pub(crate) fn take(&mut self, id: CallId) -> Option<Utf8Bytes> {
        let pending = self.pending.remove(&id)?;
        self.deadlines.remove(&(pending.deadline, id));
        Some(pending.key)
    }

    /// `conn` ended: its calls can no longer be answered.
    pub(crate) fn connection_ended(&mut self, conn: ConnId) -> usize {
        let ended: Vec<CallId> = self
            .pending
            .keys()
            .filter(|id| id.conn == conn)
            .copied()
            .collect();
        for id in &ended {
            self.take(*id);
        }
        ended.len()
    }

    /// Takes every call whose deadline passed by `now`, earliest first.
    pub(crate) fn expire(&mut self, now: Instant, mut expired: impl FnMut(CallId, Utf8Bytes)) {
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            if let Some(key) = self.take(id) {
                expired(id, key);
            }
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(at, _)| at)
    }

    /// Forgets every call (the machine stopped).
    pub(crate) fn clear(&mut self) {
        self.pending.clear();
        self.deadlines.clear();
    }
}
