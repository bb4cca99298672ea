//! The server side: a registry of sessions keyed by peer, whose connections are `ConnId`
//! generations, so a late close or a late result of an old socket can never act on the
//! session that replaced it (S1 to S4).
//!
//! Sans-IO like the client machine: the server feeds what happened (`accept`, `register`,
//! `close`, `result`, `beat`, `handle_timeout`) and drains [`Registry::poll_event`].

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

use tether_core::after;
use tether_core::{ConnId, ConnIds};

/// Identifies one invoke, from [`Registry::invoke`] to its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InvokeId(u64);

impl InvokeId {
    /// The number of this invoke; strictly increasing per registry, from 1.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The id a peer quoted back; 0 is never issued, so it matches nothing.
    pub(crate) const fn from_wire(n: u64) -> Self {
        Self(n)
    }
}

/// How an invoke ended. Each invoke has exactly one outcome (I6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeOutcome<R> {
    /// The peer answered on the connection that carried the invoke.
    Result(R),
    /// That connection closed first.
    Disconnected,
    /// No answer in time.
    TimedOut,
}

/// A change of who owns a peer's session. Emitted only for owner transitions (S4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// The peer has a session; nobody had it before.
    Connected,
    /// A new connection took the session over from `old` (S1); the peer stays connected.
    Replaced {
        /// The connection that lost the session: the server should close it.
        old: ConnId,
    },
    /// The owning connection closed; the peer has no session.
    Disconnected,
}

/// What the server should know, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryEvent<P, R> {
    /// The owner of `peer`'s session changed.
    Presence {
        /// The peer.
        peer: P,
        /// The connection that owns the session now (or, for `Disconnected`, owned it).
        conn: ConnId,
        /// What changed.
        presence: Presence,
    },
    /// An invoke ended.
    Invoked {
        /// The id `invoke` returned.
        id: InvokeId,
        /// The peer it was sent to.
        peer: P,
        /// How it ended.
        outcome: InvokeOutcome<R>,
    },
    /// A connection showed no sign of life within its bound: close it.
    Unresponsive {
        /// The connection.
        conn: ConnId,
    },
}

/// Why an invoke was refused. Nothing was registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    /// The peer has no session.
    #[error("the peer is not connected")]
    NotConnected,
    /// `max_invokes` invokes already wait.
    #[error("too many invokes pending")]
    TooMany,
}

/// What happened to a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// It completed its invoke.
    Yes,
    /// Unknown or finished invoke, or not from the connection that carried it: dropped and
    /// counted (S3).
    No,
}

/// How late the server may come to a liveness deadline and still judge it: later than
/// this, it was itself stalled and gives the overdue connections one more bound. Timers of
/// a busy but running server fire within milliseconds; a stopped one is seconds late.
pub const STALL_TOLERANCE: Duration = Duration::from_millis(100);

/// Counters of the registry; they only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistryStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Sessions replaced by a newer connection of the same peer.
    pub replaced: u64,
    /// Closes of connections that did not own a session: no presence change.
    pub stale_closes: u64,
    /// Results dropped: unknown, finished, or from the wrong connection.
    pub stray_results: u64,
    /// Connections found unresponsive.
    pub unresponsive: u64,
    /// Liveness judgments deferred because the server itself was late to make them (a
    /// stalled process): the connection got one more bound to show what was waiting.
    pub reprieves: u64,
}

#[derive(Debug, Clone)]
struct Pending<P> {
    peer: P,
    conn: ConnId,
    deadline: Instant,
}

#[derive(Debug, Clone)]
struct Liveness {
    bound: Duration,
    due: Instant,
    /// The deadline was deferred once already since the last sign of life.
    reprieved: bool,
}

/// The session registry. `P` is the application's peer id; `R` an invoke's result.
#[derive(Debug)]
pub struct Registry<P, R> {
    ids: ConnIds,
    owners: HashMap<P, ConnId>,
    peers: HashMap<ConnId, Option<P>>,
    invokes: BTreeMap<InvokeId, Pending<P>>,
    invoke_deadlines: BTreeSet<(Instant, InvokeId)>,
    liveness: HashMap<ConnId, Liveness>,
    liveness_deadlines: BTreeSet<(Instant, ConnId)>,
    events: VecDeque<RegistryEvent<P, R>>,
    stats: RegistryStats,
    last_invoke: u64,
    max_invokes: usize,
    /// Until then the server is reading what waited while it was stalled.
    catching_up: Option<Instant>,
}

impl<P: Clone + Eq + Hash, R> Registry<P, R> {
    /// An empty registry holding at most `max_invokes` pending invokes.
    pub fn new(max_invokes: usize) -> Self {
        Self {
            ids: ConnIds::new(),
            owners: HashMap::new(),
            peers: HashMap::new(),
            invokes: BTreeMap::new(),
            invoke_deadlines: BTreeSet::new(),
            liveness: HashMap::new(),
            liveness_deadlines: BTreeSet::new(),
            events: VecDeque::new(),
            stats: RegistryStats::default(),
            last_invoke: 0,
            max_invokes,
            catching_up: None,
        }
    }

    /// A new socket was accepted: its generation, never reused.
    pub fn accept(&mut self) -> ConnId {
        self.stats.accepted += 1;
        let conn = self.ids.issue();
        self.peers.insert(conn, None);
        conn
    }

    /// `conn` identified as `peer`. A session of the same peer on another connection is
    /// replaced, and its connection returned so the server can close it (S1). A connection
    /// not accepted, or already closed, registers nothing.
    pub fn register(&mut self, conn: ConnId, peer: P) -> Option<ConnId> {
        let previous = match self.peers.get_mut(&conn) {
            Some(slot) => slot.replace(peer.clone()),
            None => return None,
        };
        // A connection that identifies as another peer leaves the session it owned.
        if let Some(previous) = previous.filter(|p| *p != peer) {
            if self.owners.get(&previous) == Some(&conn) {
                self.owners.remove(&previous);
                self.events.push_back(RegistryEvent::Presence {
                    peer: previous,
                    conn,
                    presence: Presence::Disconnected,
                });
            }
        }
        if self.owners.get(&peer) == Some(&conn) {
            // Already the owner: no transition, no presence (S4).
            return None;
        }
        let old = self.owners.insert(peer.clone(), conn);
        let presence = match old {
            Some(old) => {
                self.stats.replaced += 1;
                Presence::Replaced { old }
            }
            None => Presence::Connected,
        };
        self.events.push_back(RegistryEvent::Presence {
            peer,
            conn,
            presence,
        });
        old
    }

    /// The socket of `conn` ended. Its invokes fail as disconnected (S3). Names the peer
    /// only if `conn` still owned its session: a stale close returns nothing and changes no
    /// presence (S2, S4).
    pub fn close(&mut self, conn: ConnId) -> Option<P> {
        let registered = self.peers.remove(&conn)?;
        self.forget_liveness(conn);
        let failed: Vec<InvokeId> = self
            .invokes
            .iter()
            .filter(|(_, p)| p.conn == conn)
            .map(|(&id, _)| id)
            .collect();
        for id in failed {
            self.finish(id, InvokeOutcome::Disconnected);
        }
        let peer = registered?;
        if self.owners.get(&peer) != Some(&conn) {
            self.stats.stale_closes += 1;
            return None;
        }
        self.owners.remove(&peer);
        self.events.push_back(RegistryEvent::Presence {
            peer: peer.clone(),
            conn,
            presence: Presence::Disconnected,
        });
        Some(peer)
    }

    /// The connection that owns `peer`'s session.
    pub fn owner<Q>(&self, peer: &Q) -> Option<ConnId>
    where
        P: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.owners.get(peer).copied()
    }

    /// Registers an invoke of `peer`, bound to its current connection (on which the server
    /// then writes it). It ends with exactly one outcome.
    pub fn invoke<Q>(
        &mut self,
        peer: &Q,
        timeout: Duration,
        now: Instant,
    ) -> Result<(InvokeId, ConnId), InvokeError>
    where
        P: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // The registry's own key: a lookup by borrowed id allocates nothing.
        let (peer, &conn) = self
            .owners
            .get_key_value(peer)
            .ok_or(InvokeError::NotConnected)?;
        if self.invokes.len() >= self.max_invokes {
            return Err(InvokeError::TooMany);
        }
        let peer = peer.clone();
        self.last_invoke += 1;
        let id = InvokeId(self.last_invoke);
        let deadline = after(now, timeout);
        self.invokes.insert(
            id,
            Pending {
                peer,
                conn,
                deadline,
            },
        );
        self.invoke_deadlines.insert((deadline, id));
        Ok((id, conn))
    }

    /// A result for invoke `id` arrived on `conn`: accepted only from the connection that
    /// carried the invoke (S3).
    pub fn result(&mut self, conn: ConnId, id: InvokeId, result: R) -> Accepted {
        match self.invokes.get(&id) {
            Some(p) if p.conn == conn => {
                self.finish(id, InvokeOutcome::Result(result));
                Accepted::Yes
            }
            _ => {
                self.stats.stray_results += 1;
                Accepted::No
            }
        }
    }

    /// `conn` must show a sign of life (a heartbeat, any frame) within `bound` of now and of
    /// each [`beat`](Self::beat); otherwise it is reported unresponsive.
    pub fn watch(&mut self, conn: ConnId, bound: Duration, now: Instant) {
        if !self.peers.contains_key(&conn) {
            return;
        }
        self.arm_liveness(conn, bound, now, false);
    }

    /// `conn` showed a sign of life.
    pub fn beat(&mut self, conn: ConnId, now: Instant) {
        if let Some(bound) = self.liveness.get(&conn).map(|l| l.bound) {
            self.watch(conn, bound, now);
        }
    }

    /// Handles every deadline passed by `now`: invokes time out, silent connections are
    /// reported.
    ///
    /// A late judgment is not a verdict (F12, on the server side): when the server comes to
    /// the liveness deadlines later than [`STALL_TOLERANCE`] after the first of them was
    /// due, it was not running (a stopped or starved process), and the signs of life sent
    /// meanwhile are still waiting in its sockets, unread, and take a while to read. Every
    /// connection that falls due then, or while the server catches up (for as long again as
    /// it was late), is given one more bound from now, once per silence, so what waited is
    /// read before it is judged; a connection that really went silent is reported at the
    /// end of it.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.invoke_deadlines.first() {
            if at > now {
                break;
            }
            self.finish(id, InvokeOutcome::TimedOut);
        }
        if let Some(&(first, _)) = self.liveness_deadlines.first() {
            let late = now.saturating_duration_since(first);
            if late > STALL_TOLERANCE {
                let until = after(now, late);
                self.catching_up = Some(self.catching_up.map_or(until, |t| t.max(until)));
            }
        }
        let stalled = self.catching_up.is_some_and(|until| now <= until);
        while let Some(&(at, conn)) = self.liveness_deadlines.first() {
            if at > now {
                break;
            }
            let Some(liveness) = self.liveness.get(&conn).cloned() else {
                self.liveness_deadlines.remove(&(at, conn));
                continue;
            };
            if stalled && !liveness.reprieved {
                self.stats.reprieves += 1;
                self.arm_liveness(conn, liveness.bound, now, true);
                continue;
            }
            self.forget_liveness(conn);
            self.stats.unresponsive += 1;
            self.events.push_back(RegistryEvent::Unresponsive { conn });
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let invoke = self.invoke_deadlines.first().map(|&(at, _)| at);
        let live = self.liveness_deadlines.first().map(|&(at, _)| at);
        match (invoke, live) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next event for the server.
    pub fn poll_event(&mut self) -> Option<RegistryEvent<P, R>> {
        self.events.pop_front()
    }

    /// Invokes waiting for their outcome.
    pub fn pending_invokes(&self) -> usize {
        self.invokes.len()
    }

    /// The counters.
    pub fn stats(&self) -> RegistryStats {
        self.stats
    }

    fn finish(&mut self, id: InvokeId, outcome: InvokeOutcome<R>) {
        if let Some(p) = self.invokes.remove(&id) {
            self.invoke_deadlines.remove(&(p.deadline, id));
            self.events.push_back(RegistryEvent::Invoked {
                id,
                peer: p.peer,
                outcome,
            });
        }
    }

    fn arm_liveness(&mut self, conn: ConnId, bound: Duration, now: Instant, reprieved: bool) {
        self.forget_liveness(conn);
        let due = after(now, bound);
        self.liveness.insert(
            conn,
            Liveness {
                bound,
                due,
                reprieved,
            },
        );
        self.liveness_deadlines.insert((due, conn));
    }

    fn forget_liveness(&mut self, conn: ConnId) {
        if let Some(l) = self.liveness.remove(&conn) {
            self.liveness_deadlines.remove(&(l.due, conn));
        }
    }
}
