//! The server-side registry: S1 to S4 as scenarios, and a property test that checks S1 to
//! S4 and I6 after every step of random sequences.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use tether_core::ConnId;
use tether_gateway::registry::{
    Accepted, InvokeError, InvokeId, InvokeOutcome, Presence, Registry, RegistryEvent,
};

type Reg = Registry<&'static str, u32>;
type Ev = RegistryEvent<&'static str, u32>;

#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    // The virtual clock's origin; only differences matter.
    Instant::now()
}

fn events(r: &mut Reg) -> Vec<Ev> {
    std::iter::from_fn(|| r.poll_event()).collect()
}

fn presence(peer: &'static str, conn: ConnId, presence: Presence) -> Ev {
    Ev::Presence {
        peer,
        conn,
        presence,
    }
}

#[test]
fn s01_new_session_replaces_old() {
    let mut r = Reg::new(16);
    let old = r.accept();
    assert_eq!(r.register(old, "bot"), None);
    let new = r.accept();
    assert_eq!(
        r.register(new, "bot"),
        Some(old),
        "the caller learns what to close"
    );
    assert_eq!(r.owner(&"bot"), Some(new));
    assert_eq!(
        events(&mut r),
        [
            presence("bot", old, Presence::Connected),
            presence("bot", new, Presence::Replaced { old })
        ]
    );
}

#[test]
fn s02_stale_close_keeps_new_session() {
    let mut r = Reg::new(16);
    let old = r.accept();
    r.register(old, "bot");
    let new = r.accept();
    r.register(new, "bot");
    events(&mut r);
    // The old socket's close arrives late: it names nobody and changes nothing.
    assert_eq!(r.close(old), None);
    assert_eq!(r.owner(&"bot"), Some(new));
    assert_eq!(events(&mut r), []);
    assert_eq!(r.stats().stale_closes, 1);
    // A close of the owner ends the session.
    assert_eq!(r.close(new), Some("bot"));
    assert_eq!(
        events(&mut r),
        [presence("bot", new, Presence::Disconnected)]
    );
    // Closing twice, or an id never accepted, is nothing.
    assert_eq!(r.close(new), None);
    assert_eq!(r.close(ConnId::new(99)), None);
}

#[test]
fn s03_invoke_result_only_from_owner() {
    let t0 = epoch();
    let mut r = Reg::new(16);
    let old = r.accept();
    r.register(old, "agent");
    let new = r.accept();
    r.register(new, "agent");
    events(&mut r);
    let (id, carrier) = r.invoke(&"agent", Duration::from_secs(5), t0).unwrap();
    assert_eq!(carrier, new, "bound to the current connection");
    // A result from the old connection, or for an unknown invoke, is dropped and counted.
    assert_eq!(r.result(old, id, 1), Accepted::No);
    assert_eq!(r.result(new, id, 42), Accepted::Yes);
    assert_eq!(
        events(&mut r),
        [Ev::Invoked {
            id,
            peer: "agent",
            outcome: InvokeOutcome::Result(42)
        }]
    );
    // Exactly once: a second answer is stray.
    assert_eq!(r.result(new, id, 43), Accepted::No);
    assert_eq!(r.stats().stray_results, 2);
    assert_eq!(
        r.invoke(&"nobody", Duration::from_secs(1), t0),
        Err(InvokeError::NotConnected)
    );
}

#[test]
fn s03_old_close_fails_only_old_invokes() {
    let t0 = epoch();
    let mut r = Reg::new(16);
    let old = r.accept();
    r.register(old, "agent");
    let (on_old, _) = r.invoke(&"agent", Duration::from_secs(5), t0).unwrap();
    let new = r.accept();
    r.register(new, "agent");
    let (on_new, _) = r.invoke(&"agent", Duration::from_secs(5), t0).unwrap();
    events(&mut r);
    r.close(old);
    assert_eq!(
        events(&mut r),
        [Ev::Invoked {
            id: on_old,
            peer: "agent",
            outcome: InvokeOutcome::Disconnected
        }]
    );
    assert_eq!(r.pending_invokes(), 1);
    r.handle_timeout(t0 + Duration::from_secs(5));
    assert_eq!(
        events(&mut r),
        [Ev::Invoked {
            id: on_new,
            peer: "agent",
            outcome: InvokeOutcome::TimedOut
        }]
    );
}

#[test]
fn s04_stale_close_no_presence_change() {
    let mut r = Reg::new(16);
    let a1 = r.accept();
    r.register(a1, "a");
    let a2 = r.accept();
    r.register(a2, "a");
    let a3 = r.accept();
    r.register(a3, "a");
    let mut seen = events(&mut r);
    r.close(a1);
    r.close(a2);
    seen.extend(events(&mut r));
    // Connected once, replaced twice, and never disconnected while a3 holds the session.
    assert_eq!(
        seen,
        [
            presence("a", a1, Presence::Connected),
            presence("a", a2, Presence::Replaced { old: a1 }),
            presence("a", a3, Presence::Replaced { old: a2 })
        ]
    );
}

#[test]
fn silent_connections_are_reported() {
    let t0 = epoch();
    let mut r = Reg::new(16);
    let c = r.accept();
    r.register(c, "a");
    // Discord: no heartbeat within 1.5 x the interval.
    let bound = Duration::from_millis(1500);
    r.watch(c, bound, t0);
    r.beat(c, t0 + Duration::from_millis(1000));
    r.handle_timeout(t0 + Duration::from_millis(2000));
    events(&mut r);
    assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_millis(2500)));
    r.handle_timeout(t0 + Duration::from_millis(2500));
    assert_eq!(events(&mut r), [Ev::Unresponsive { conn: c }]);
    assert_eq!(r.stats().unresponsive, 1);
}

#[derive(Debug, Clone)]
enum Op {
    Accept,
    Register(u8, u8),
    Close(u8),
    Invoke(u8, u16),
    Result(u8, u8),
    Elapse(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Accept),
        4 => (any::<u8>(), 0u8..4).prop_map(|(c, p)| Op::Register(c, p)),
        3 => any::<u8>().prop_map(Op::Close),
        3 => (0u8..4, 1u16..3000).prop_map(|(p, t)| Op::Invoke(p, t)),
        3 => (any::<u8>(), any::<u8>()).prop_map(|(c, i)| Op::Result(c, i)),
        2 => (0u16..4000).prop_map(Op::Elapse),
    ]
}

const PEERS: [&str; 4] = ["a", "b", "c", "d"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 3_000, ..ProptestConfig::default() })]

    #[test]
    fn registry_keeps_s1_to_s4_and_i6(ops in proptest::collection::vec(op(), 1..120)) {
        let mut now = epoch();
        let mut r = Reg::new(8);
        let mut accepted: Vec<ConnId> = Vec::new();
        // The model: who owns each peer, as presence events said.
        let mut owners: HashMap<&str, ConnId> = HashMap::new();
        let mut open_invokes: BTreeMap<InvokeId, ConnId> = BTreeMap::new();
        let mut done: BTreeSet<InvokeId> = BTreeSet::new();
        let pick = |accepted: &Vec<ConnId>, n: u8| -> ConnId {
            if accepted.is_empty() || n == 255 {
                ConnId::new(1000 + u64::from(n))
            } else {
                accepted[usize::from(n) % accepted.len()]
            }
        };
        for op in ops {
            match op {
                Op::Accept => accepted.push(r.accept()),
                Op::Register(c, p) => {
                    let conn = pick(&accepted, c);
                    let before = r.owner(&PEERS[usize::from(p)]);
                    let replaced = r.register(conn, PEERS[usize::from(p)]);
                    // S1: the replaced connection is the previous owner.
                    if let Some(old) = replaced {
                        prop_assert_eq!(Some(old), before);
                    }
                }
                Op::Close(c) => {
                    let conn = pick(&accepted, c);
                    let owned: Vec<&str> = owners.iter().filter(|(_, o)| **o == conn).map(|(p, _)| *p).collect();
                    let named = r.close(conn);
                    // S2: a close names the peer only if the connection owned it.
                    match named {
                        Some(peer) => prop_assert!(owned.contains(&peer)),
                        None => prop_assert!(owned.is_empty()),
                    }
                }
                Op::Invoke(p, t) => {
                    if let Ok((id, conn)) = r.invoke(&PEERS[usize::from(p)], Duration::from_millis(u64::from(t)), now) {
                        prop_assert_eq!(Some(conn), r.owner(&PEERS[usize::from(p)]));
                        prop_assert!(open_invokes.insert(id, conn).is_none());
                    }
                }
                Op::Result(c, i) => {
                    let conn = pick(&accepted, c);
                    let id = open_invokes.keys().nth(usize::from(i) % open_invokes.len().max(1)).copied();
                    if let Some(id) = id {
                        let carrier = open_invokes.get(&id).copied();
                        let accepted_result = r.result(conn, id, 7);
                        // S3: only from the connection that carried it.
                        prop_assert_eq!(accepted_result == Accepted::Yes, carrier == Some(conn));
                    }
                }
                Op::Elapse(ms) => {
                    now += Duration::from_millis(u64::from(ms));
                    r.handle_timeout(now);
                    prop_assert!(r.poll_timeout().is_none_or(|t| t > now));
                }
            }
            while let Some(event) = r.poll_event() {
                match event {
                    RegistryEvent::Presence { peer, conn, presence } => match presence {
                        // S4: presence only for owner transitions.
                        Presence::Connected => {
                            prop_assert!(!owners.contains_key(peer));
                            owners.insert(peer, conn);
                        }
                        Presence::Replaced { old } => {
                            prop_assert_eq!(owners.get(peer), Some(&old));
                            prop_assert_ne!(old, conn);
                            owners.insert(peer, conn);
                        }
                        Presence::Disconnected => {
                            prop_assert_eq!(owners.remove(peer), Some(conn));
                        }
                    },
                    RegistryEvent::Invoked { id, .. } => {
                        // I6: exactly once.
                        prop_assert!(open_invokes.remove(&id).is_some());
                        prop_assert!(done.insert(id));
                    }
                    RegistryEvent::Unresponsive { .. } => {}
                }
            }
            for peer in PEERS {
                prop_assert_eq!(r.owner(&peer), owners.get(peer).copied());
            }
        }
        // Every invoke ends: closing every connection ends the rest.
        for conn in accepted {
            r.close(conn);
        }
        while let Some(event) = r.poll_event() {
            if let RegistryEvent::Invoked { id, .. } = event {
                prop_assert!(open_invokes.remove(&id).is_some());
            }
        }
        prop_assert!(open_invokes.is_empty(), "{:?} never completed", open_invokes);
    }
}
