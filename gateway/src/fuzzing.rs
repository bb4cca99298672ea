//! The body of the `registry` fuzz target (feature `fuzzing`), so normal builds compile it
//! and a stable test can replay the corpus through the very same code: a sequence of
//! registry steps, checked against a model built only from the presence events, with S1 to
//! S4 and I6 after every step. Time is virtual: the clock's origin comes from the caller.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use serde::{Deserialize, Serialize};
use tether_core::ConnId;

use crate::registry::{Accepted, Presence, Registry, RegistryEvent};

/// One step of a registry scenario.
#[derive(Debug, Clone, Arbitrary, Serialize, Deserialize)]
pub enum RegistryStep {
    /// A socket was accepted.
    Accept,
    /// Connection `conn` (an index into those accepted) registered as peer `peer` (of 4).
    Register(u8, u8),
    /// Connection `conn` closed.
    Close(u8),
    /// An invoke of peer `peer` with a timeout in ms.
    Invoke(u8, u16),
    /// A result for invoke `id` (an index into those open) arrived on connection `conn`.
    Result(u8, u8),
    /// Time passes, in ms.
    Elapse(u16),
}

/// Target `registry`: a sequence of registry steps (JSON, as the committed seeds are, or
/// the fuzzer's structured bytes), checking S1-S4 and I6 after each.
pub fn registry(data: &[u8], epoch: Instant) {
    if let Ok(steps) = serde_json::from_slice::<Vec<RegistryStep>>(data) {
        run_registry(&steps, epoch);
        return;
    }
    let mut u = Unstructured::new(data);
    let Ok(steps) = Vec::<RegistryStep>::arbitrary(&mut u) else {
        return;
    };
    run_registry(&steps, epoch);
}

#[allow(clippy::panic)]
fn check(ok: bool, what: &str) {
    if !ok {
        panic!("registry invariant violated: {what}");
    }
}

/// Runs `steps` against a registry, against a model built only from its presence events.
pub fn run_registry(steps: &[RegistryStep], epoch: Instant) {
    const PEERS: [&str; 4] = ["a", "b", "c", "d"];
    let peer = |p: &u8| {
        PEERS
            .get(usize::from(*p) % PEERS.len())
            .copied()
            .unwrap_or("a")
    };
    let mut now = epoch;
    let mut r: Registry<&str, u8> = Registry::new(8);
    let mut accepted: Vec<ConnId> = Vec::new();
    let mut owners: HashMap<&str, ConnId> = HashMap::new();
    let mut open: Vec<(crate::registry::InvokeId, ConnId)> = Vec::new();
    let mut done = BTreeSet::new();
    let pick = |accepted: &Vec<ConnId>, n: &u8| {
        accepted
            .get(usize::from(*n) % accepted.len().max(1))
            .copied()
            .unwrap_or(ConnId::new(999))
    };
    for step in steps {
        match step {
            RegistryStep::Accept => accepted.push(r.accept()),
            RegistryStep::Register(c, p) => {
                let before = r.owner(&peer(p));
                if let Some(old) = r.register(pick(&accepted, c), peer(p)) {
                    check(
                        Some(old) == before,
                        "S1: the replaced connection was the owner",
                    );
                }
            }
            RegistryStep::Close(c) => {
                let conn = pick(&accepted, c);
                let owned: Vec<&str> = owners
                    .iter()
                    .filter(|(_, o)| **o == conn)
                    .map(|(p, _)| *p)
                    .collect();
                match r.close(conn) {
                    Some(p) => check(owned.contains(&p), "S2: a close names only an owner"),
                    None => check(owned.is_empty(), "S2: an owner's close names its peer"),
                }
            }
            RegistryStep::Invoke(p, ms) => {
                if let Ok((id, conn)) =
                    r.invoke(&peer(p), Duration::from_millis(u64::from(*ms)), now)
                {
                    check(Some(conn) == r.owner(&peer(p)), "S3: bound to the owner");
                    open.push((id, conn));
                }
            }
            RegistryStep::Result(c, i) => {
                let conn = pick(&accepted, c);
                if let Some(&(id, carrier)) = open.get(usize::from(*i) % open.len().max(1)) {
                    let accepted_result = r.result(conn, id, 1) == Accepted::Yes;
                    check(
                        accepted_result == (carrier == conn),
                        "S3: only from the carrier",
                    );
                }
            }
            RegistryStep::Elapse(ms) => {
                now += Duration::from_millis(u64::from(*ms));
                r.handle_timeout(now);
            }
        }
        while let Some(event) = r.poll_event() {
            match event {
                RegistryEvent::Presence {
                    peer,
                    conn,
                    presence,
                } => match presence {
                    Presence::Connected => {
                        check(
                            !owners.contains_key(peer),
                            "S4: connected only when nobody owned",
                        );
                        owners.insert(peer, conn);
                    }
                    Presence::Replaced { old } => {
                        check(
                            owners.get(peer) == Some(&old) && old != conn,
                            "S4: replaced the owner",
                        );
                        owners.insert(peer, conn);
                    }
                    Presence::Disconnected => {
                        check(
                            owners.remove(peer) == Some(conn),
                            "S4: the owner disconnected",
                        );
                    }
                },
                RegistryEvent::Invoked { id, .. } => {
                    let before = open.len();
                    open.retain(|(o, _)| *o != id);
                    check(open.len() + 1 == before, "I6: an open invoke completed");
                    check(done.insert(id), "I6: completed once");
                }
                RegistryEvent::Unresponsive { .. } => {}
            }
        }
        for p in PEERS {
            check(
                r.owner(&p) == owners.get(p).copied(),
                "the model agrees with the registry",
            );
        }
    }
}
