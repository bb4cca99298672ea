//! Requests bound to the connection that carried them (F14).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use crate::conn::ConnId;
use crate::event::RequestId;

/// Where a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Whereabouts {
    /// In the outbound queue.
    Queued,
    /// Written on this connection.
    Written(ConnId),
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    whereabouts: Whereabouts,
    deadline: Instant,
}

/// Every request still waiting for its outcome, with its deadline. Each leaves exactly
/// once, with one outcome (I6).
#[derive(Debug, Clone, Default)]
pub(crate) struct Requests {
    pending: BTreeMap<RequestId, Pending>,
    deadlines: BTreeSet<(Instant, RequestId)>,
    last_id: u64,
}

/// What to do with a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// It answers a request written on the connection it came from: complete it.
    Accept,
    /// Unknown, finished, or from another connection: drop and count it.
    Stray,
}

impl Requests {
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    /// Registers a new request, queued, before its frame can be written.
    pub(crate) fn register(&mut self, deadline: Instant) -> RequestId {
        self.last_id += 1;
        let id = RequestId(self.last_id);
        self.pending.insert(
            id,
            Pending {
                whereabouts: Whereabouts::Queued,
                deadline,
            },
        );
        self.deadlines.insert((deadline, id));
        id
    }

    /// The frame of `id` went out on `conn`: the request now belongs to it.
    pub(crate) fn written(&mut self, id: RequestId, conn: ConnId) {
        if let Some(p) = self.pending.get_mut(&id) {
            p.whereabouts = Whereabouts::Written(conn);
        }
    }

    /// Whether a response to `id` arriving on `conn` is accepted; if so the request is
    /// finished and the caller emits its outcome.
    pub(crate) fn answer(&mut self, id: RequestId, conn: ConnId) -> Answer {
        match self.pending.get(&id) {
            Some(p) if p.whereabouts == Whereabouts::Written(conn) => {
                self.finish(id);
                Answer::Accept
            }
            _ => Answer::Stray,
        }
    }

    /// `conn` ended: its written requests end `Unknown` (`written` is true), and every
    /// queued one `NotSent`.
    pub(crate) fn connection_ended(
        &mut self,
        conn: ConnId,
        mut ended: impl FnMut(RequestId, bool),
    ) {
        let ids: Vec<(RequestId, Whereabouts)> = self
            .pending
            .iter()
            .filter(|(_, p)| {
                p.whereabouts == Whereabouts::Written(conn) || p.whereabouts == Whereabouts::Queued
            })
            .map(|(&id, p)| (id, p.whereabouts))
            .collect();
        for (id, whereabouts) in ids {
            self.finish(id);
            ended(id, whereabouts != Whereabouts::Queued);
        }
    }

    /// Finishes every request whose deadline passed by `now`.
    pub(crate) fn expire(&mut self, now: Instant, mut expired: impl FnMut(RequestId)) {
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.finish(id);
            expired(id);
        }
    }

    /// Finishes every request.
    pub(crate) fn drain(&mut self, mut each: impl FnMut(RequestId)) {
        let ids: Vec<RequestId> = self.pending.keys().copied().collect();
        for id in ids {
            self.finish(id);
            each(id);
        }
    }

    /// Removes a request that was refused before the application got its id.
    pub(crate) fn forget(&mut self, id: RequestId) {
        self.finish(id);
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(at, _)| at)
    }

    fn finish(&mut self, id: RequestId) {
        if let Some(p) = self.pending.remove(&id) {
            self.deadlines.remove(&(p.deadline, id));
        }
    }
}
