//! The bodies of the `registry` and `gateway_frames` fuzz targets (feature `fuzzing`), so
//! normal builds compile them and a stable test can replay the corpus through the very same
//! code: sequences of registry steps, or of client frames and socket ends against a whole
//! gateway, checked against models built only from the presence events, with S1 to S4 and
//! I6 after every step. Time is virtual: the clock's origin comes from the caller.

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

/// One step of a gateway scenario: what clients send and when.
#[derive(Debug, Clone, Arbitrary, Serialize, Deserialize)]
pub enum GatewayStep {
    /// A socket was accepted (over loopback or not).
    Accept(bool),
    /// Connection `conn` (an index into those accepted) sent this text.
    Text(u8, String),
    /// Connection `conn` sent the n-th of the canned frames of real clients (a connect of
    /// theirs, an invoke result, a request, garbage), so the fuzzer starts from real shapes.
    Canned(u8, u8),
    /// Connection `conn`'s socket ended.
    Close(u8),
    /// The application invokes peer `peer` (an index into those seen).
    Invoke(u8, u16),
    /// Time passes, in ms.
    Elapse(u16),
}

/// A whole gateway scenario: the profile and the steps.
#[derive(Debug, Clone, Arbitrary, Serialize, Deserialize)]
pub struct GatewayScenario {
    /// 0: Discord, 1: OpenClaw, else plain.
    pub profile: u8,
    /// The steps.
    pub steps: Vec<GatewayStep>,
}

/// Frames real clients send, with what a scenario cannot know (the nonce) left out: their
/// shapes are what the gateway must read without fault, whatever comes around them.
const CANNED: [&str; 9] = [
    r#"{"type":"req","id":"1:a","method":"connect","params":{"minProtocol":4,"maxProtocol":4,"client":{"id":"node-host","displayName":"vm","version":"2026.9.6","platform":"linux","deviceFamily":"Linux","mode":"node","instanceId":"5355"},"caps":["system"],"commands":["system.which"],"auth":{"token":"t"},"role":"node","scopes":[]}}"#,
    r#"{"type":"req","id":"c","method":"connect","params":{"minProtocol":3,"maxProtocol":4,"client":{"id":"cli","version":"1","platform":"linux","mode":"cli"},"role":"operator","scopes":["operator.read"],"auth":{"token":"t"}}}"#,
    r#"{"type":"req","id":"2","method":"connect","params":{"minProtocol":4,"maxProtocol":4,"client":{"id":"gateway-client","version":"0.3.0","platform":"linux","mode":"backend"},"role":"operator","scopes":["operator.read","operator.write"],"caps":[],"commands":[],"permissions":{},"auth":{"token":"t"},"locale":"en-US","userAgent":"openclaw-node/0.2.1"}}"#,
    r#"{"type":"req","id":"3","method":"health","params":{}}"#,
    r#"{"type":"req","id":"4","method":"node.invoke.result","params":{"id":"1","nodeId":"n","ok":true,"payloadJSON":"{\"bins\":{}}"}}"#,
    r#"{"type":"req","id":"5","method":"node.event","params":{"event":"stats","payloadJSON":"{}"}}"#,
    r#"{"op":2,"d":{"token":"t","intents":0,"properties":{}}}"#,
    r#"{"op":1,"d":null}"#,
    r#"{"type":"req","id":6,"method":"connect","params":{"client":"x"}}"#,
];

/// Target `gateway_frames`: a gateway scenario (JSON, as the committed seeds are, or the
/// fuzzer's structured bytes).
pub fn gateway_frames(data: &[u8], epoch: Instant) {
    if let Ok(scenario) = serde_json::from_slice::<GatewayScenario>(data) {
        run_gateway(&scenario, epoch);
        return;
    }
    let mut u = Unstructured::new(data);
    if let Ok(scenario) = GatewayScenario::arbitrary(&mut u) {
        run_gateway(&scenario, epoch);
    }
}

/// Runs `scenario` against a gateway, checking after every step that nothing is written
/// to a connection after its close, that presence only ever names an owner change the
/// model agrees with (S4), and that every invoke ends once (I6).
pub fn run_gateway(scenario: &GatewayScenario, epoch: Instant) {
    use crate::{
        Credentials, Gateway, GatewayCommand, GatewayConfig, GatewayEvent, PeerId, Rejection,
        ServerProfile,
    };
    let profile = match scenario.profile % 3 {
        0 => ServerProfile::Discord,
        1 => ServerProfile::OpenClaw,
        _ => ServerProfile::Plain,
    };
    let Ok(config) = GatewayConfig::builder(profile)
        .heartbeat_interval(Duration::from_millis(500))
        .handshake_timeout(Duration::from_millis(800))
        .max_invokes(8)
        .build()
    else {
        return;
    };
    let auth = |c: &Credentials<'_>| match c.token {
        Some("t") => Ok(PeerId::from("a")),
        Some(other) if other.len() < 4 => Ok(PeerId::from(other)),
        _ => Err(Rejection::new("no")),
    };
    let mut gw = Gateway::new(config, auth, 7);
    let mut now = epoch;
    let mut accepted: Vec<ConnId> = Vec::new();
    let mut ended: BTreeSet<ConnId> = BTreeSet::new();
    let mut closed: BTreeSet<ConnId> = BTreeSet::new();
    let mut owners: HashMap<String, ConnId> = HashMap::new();
    let mut open: BTreeSet<crate::registry::InvokeId> = BTreeSet::new();
    let mut done: BTreeSet<crate::registry::InvokeId> = BTreeSet::new();
    let pick = |accepted: &Vec<ConnId>, n: &u8| {
        accepted
            .get(usize::from(*n) % accepted.len().max(1))
            .copied()
            .unwrap_or(ConnId::new(999))
    };
    for step in &scenario.steps {
        match step {
            GatewayStep::Accept(loopback) => accepted.push(if *loopback {
                gw.accept_loopback(now)
            } else {
                gw.accept(now)
            }),
            GatewayStep::Text(c, text) => {
                gw.handle_frame(
                    pick(&accepted, c),
                    tether_core::Frame::text(text.clone()),
                    now,
                );
            }
            GatewayStep::Canned(c, n) => {
                let text = CANNED[usize::from(*n) % CANNED.len()];
                gw.handle_frame(pick(&accepted, c), tether_core::Frame::text(text), now);
            }
            GatewayStep::Close(c) => {
                let conn = pick(&accepted, c);
                ended.insert(conn);
                gw.handle_close(conn, now);
            }
            GatewayStep::Invoke(p, ms) => {
                let peers: Vec<String> = owners.keys().cloned().collect();
                if let Some(peer) = peers.get(usize::from(*p) % peers.len().max(1)) {
                    if let Ok(params) = serde_json::value::RawValue::from_string("{}".into()) {
                        let timeout = Duration::from_millis(u64::from(*ms));
                        if let Ok(id) = gw.invoke(peer, "c", &params, timeout, now) {
                            open.insert(id);
                        }
                    }
                }
            }
            GatewayStep::Elapse(ms) => {
                now += Duration::from_millis(u64::from(*ms));
                gw.handle_timeout(now);
            }
        }
        while let Some(command) = gw.poll_command() {
            match command {
                GatewayCommand::Send { conn, .. } => {
                    check(!closed.contains(&conn), "nothing is written after a close");
                    check(
                        !ended.contains(&conn),
                        "nothing is written to an ended socket",
                    );
                }
                GatewayCommand::Close { conn, .. } | GatewayCommand::Abort { conn } => {
                    closed.insert(conn);
                }
                GatewayCommand::ReadLimit { .. } => {}
            }
        }
        while let Some(event) = gw.poll_event() {
            match event {
                GatewayEvent::Presence {
                    peer,
                    conn,
                    presence,
                } => match presence {
                    Presence::Connected => {
                        check(
                            !owners.contains_key(peer.as_ref()),
                            "S4: connected only when nobody owned",
                        );
                        owners.insert(peer.to_string(), conn);
                    }
                    Presence::Replaced { old } => {
                        check(
                            owners.get(peer.as_ref()) == Some(&old) && old != conn,
                            "S4: replaced the owner",
                        );
                        owners.insert(peer.to_string(), conn);
                    }
                    Presence::Disconnected => {
                        check(
                            owners.remove(peer.as_ref()) == Some(conn),
                            "S4: the owner disconnected",
                        );
                    }
                },
                GatewayEvent::Invoked { id, .. } => {
                    check(open.remove(&id), "I6: an open invoke completed");
                    check(done.insert(id), "I6: completed once");
                }
                _ => {}
            }
        }
    }
}
