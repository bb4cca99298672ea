//! Discord sessions kept for resuming: the numbered dispatches of each, and how long a
//! session whose socket ended stays resumable.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Instant;

use super::PeerId;
use tether_core::ConnId;
use tether_core::Frame;
use tether_core::protocol::discord::wire;

#[derive(Debug)]
struct Session {
    /// Who the credentials say the client is: a resume must come from them.
    owner: PeerId,
    /// The key the session is kept under in the registry: the owner, with the shard when
    /// the identify named one (a bot's shards are sessions of their own).
    peer: PeerId,
    seq: u64,
    /// The last dispatches, oldest first, for replay.
    replay: VecDeque<(u64, Frame)>,
    /// The bytes of `replay`.
    bytes: usize,
    /// Every dispatch up to this sequence is gone from `replay`.
    forgotten_through: u64,
    /// The connection it is attached to; `None` while it waits to be resumed.
    conn: Option<ConnId>,
    expires: Option<Instant>,
}

/// Why a resume cannot be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResumeRefused {
    /// No such session (never, expired, or replaced by a fresh identify).
    Unknown,
    /// The credentials belong to another peer.
    OtherPeer,
    /// The client is further behind than the replay buffer reaches, or ahead of it.
    OutOfReach,
}

/// A dispatch written to a session.
#[derive(Debug, Clone)]
pub(crate) struct Pushed {
    pub(crate) seq: u64,
    pub(crate) frame: Frame,
    pub(crate) conn: Option<ConnId>,
}

#[derive(Debug)]
pub(crate) struct Sessions {
    by_id: HashMap<String, Session>,
    by_peer: HashMap<PeerId, String>,
    expiries: BTreeSet<(Instant, String)>,
    budget: ReplayBudget,
    /// The bytes kept for replay over all sessions, and the most ever kept.
    bytes: usize,
    peak: usize,
}

/// How much each session, and all of them, keep for replay.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReplayBudget {
    /// Dispatches per session.
    pub(crate) frames: usize,
    /// Bytes per session.
    pub(crate) bytes: usize,
    /// Bytes over all sessions.
    pub(crate) total: usize,
}

impl Sessions {
    pub(crate) fn new(budget: ReplayBudget) -> Self {
        Self {
            by_id: HashMap::new(),
            by_peer: HashMap::new(),
            expiries: BTreeSet::new(),
            budget,
            bytes: 0,
            peak: 0,
        }
    }

    /// The bytes kept for replay now, and the most ever kept at once.
    pub(crate) fn replay_bytes(&self) -> (usize, usize) {
        (self.bytes, self.peak)
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// A fresh session `peer` of `owner` on `conn`; the previous session under `peer`, if
    /// any, is gone.
    pub(crate) fn start(&mut self, id: String, owner: PeerId, peer: PeerId, conn: ConnId) {
        if let Some(old) = self.by_peer.insert(peer.clone(), id.clone()) {
            self.remove(&old);
        }
        self.by_id.insert(
            id,
            Session {
                owner,
                peer,
                seq: 0,
                replay: VecDeque::new(),
                bytes: 0,
                forgotten_through: 0,
                conn: Some(conn),
                expires: None,
            },
        );
    }

    /// Numbers a dispatch of `peer`'s session and keeps it for replay, within the budget:
    /// the session's oldest dispatches make room, and one that cannot fit at all is not kept
    /// (a client that missed it can no longer resume).
    pub(crate) fn push(&mut self, peer: &str, name: &str, data: &str) -> Option<Pushed> {
        let id = self.by_peer.get(peer)?;
        let session = self.by_id.get_mut(id)?;
        session.seq += 1;
        let frame = wire::dispatch(session.seq, name, data);
        let cost = frame.len();
        let budget = self.budget;
        let fits = |session: &Session, total: usize| {
            session.replay.len() < budget.frames
                && session.bytes.saturating_add(cost) <= budget.bytes
                && total.saturating_add(cost) <= budget.total
        };
        while !session.replay.is_empty() && !fits(session, self.bytes) {
            if let Some((seq, old)) = session.replay.pop_front() {
                session.forgotten_through = seq;
                session.bytes = session.bytes.saturating_sub(old.len());
                self.bytes = self.bytes.saturating_sub(old.len());
            }
        }
        if fits(session, self.bytes) {
            session.replay.push_back((session.seq, frame.clone()));
            session.bytes += cost;
            self.bytes += cost;
            self.peak = self.peak.max(self.bytes);
        } else {
            session.forgotten_through = session.seq;
        }
        Some(Pushed {
            seq: session.seq,
            frame,
            conn: session.conn,
        })
    }

    /// Moves session `id` to `conn` for `owner`'s client that saw every dispatch up to
    /// `seq`; gives back the session's key and the dispatches it missed, in order.
    pub(crate) fn resume(
        &mut self,
        id: &str,
        owner: &PeerId,
        seq: Option<u64>,
        conn: ConnId,
    ) -> Result<(PeerId, Vec<Frame>), ResumeRefused> {
        let session = self.by_id.get_mut(id).ok_or(ResumeRefused::Unknown)?;
        if session.owner != *owner {
            return Err(ResumeRefused::OtherPeer);
        }
        let seen = seq.unwrap_or(0);
        if seen < session.forgotten_through || seen > session.seq {
            return Err(ResumeRefused::OutOfReach);
        }
        if let Some(at) = session.expires.take() {
            self.expiries.remove(&(at, id.to_owned()));
        }
        let missed = session
            .replay
            .iter()
            .filter(|(s, _)| *s > seen)
            .map(|(_, frame)| frame.clone())
            .collect();
        session.conn = Some(conn);
        Ok((session.peer.clone(), missed))
    }

    /// `conn`'s client ended `peer`'s session (it closed with 1000 or 1001): it is gone,
    /// not resumable.
    pub(crate) fn end(&mut self, peer: &PeerId, conn: ConnId) -> bool {
        let Some(id) = self.by_peer.get(peer).cloned() else {
            return false;
        };
        if self.by_id.get(&id).and_then(|s| s.conn) != Some(conn) {
            return false;
        }
        self.remove(&id);
        true
    }

    /// `conn` no longer carries `peer`'s session: it stays resumable until `expires`.
    pub(crate) fn detach(&mut self, peer: &PeerId, conn: ConnId, expires: Instant) {
        let Some(id) = self.by_peer.get(peer) else {
            return;
        };
        let Some(session) = self.by_id.get_mut(id) else {
            return;
        };
        if session.conn != Some(conn) {
            return;
        }
        session.conn = None;
        session.expires = Some(expires);
        self.expiries.insert((expires, id.clone()));
    }

    /// Forgets sessions whose window has passed; returns how many.
    pub(crate) fn expire(&mut self, now: Instant) -> usize {
        let mut expired = 0;
        while let Some((at, id)) = self.expiries.first().cloned() {
            if at > now {
                break;
            }
            self.expiries.remove(&(at, id.clone()));
            self.remove(&id);
            expired += 1;
        }
        expired
    }

    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.expiries.first().map(|(at, _)| *at)
    }

    /// Sessions held, attached or waiting to be resumed.
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    fn remove(&mut self, id: &str) {
        if let Some(session) = self.by_id.remove(id) {
            self.bytes = self.bytes.saturating_sub(session.bytes);
            if let Some(at) = session.expires {
                self.expiries.remove(&(at, id.to_owned()));
            }
            if self.by_peer.get(&session.peer).map(String::as_str) == Some(id) {
                self.by_peer.remove(&session.peer);
            }
        }
    }
}
