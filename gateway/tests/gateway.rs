//! The gateway's server side as scenarios on a virtual clock: handshakes, resume with
//! replay, replacement, invokes bound to their connection, liveness, bad frames, and a
//! property test over random socket histories.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use support::{auth, epoch};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tether_core::protocol::openclaw::{DeviceIdentity, SignedConnect};
use tether_core::{CloseFrame, ConnId, Frame};
use tether_gateway::registry::{InvokeOutcome, Presence};
use tether_gateway::{
    AutoApprove, CloseWhy, Delivered, Faults, Gateway, GatewayCommand, GatewayConfig, GatewayError,
    GatewayEvent, PairingRequest, ServerProfile,
};

struct Server {
    gw: Gateway,
    now: Instant,
    start: Instant,
    /// The read limits the gateway set, in order.
    limits: Vec<(ConnId, usize)>,
}

impl Server {
    fn new(config: GatewayConfig) -> Self {
        let now = epoch();
        Self {
            gw: Gateway::new(config, auth, 7),
            now,
            start: now,
            limits: Vec::new(),
        }
    }

    fn discord() -> Self {
        Self::new(
            GatewayConfig::builder(ServerProfile::Discord)
                .heartbeat_interval(Duration::from_millis(1000))
                .resume_window(Duration::from_secs(5))
                .handshake_timeout(Duration::from_secs(5))
                .replay_capacity(4)
                .build()
                .unwrap(),
        )
    }

    fn openclaw() -> Self {
        Self::new(
            GatewayConfig::builder(ServerProfile::OpenClaw)
                .heartbeat_interval(Duration::from_millis(500))
                .pong_window(Duration::from_millis(2_500))
                .build()
                .unwrap(),
        )
    }

    fn accept(&mut self) -> ConnId {
        self.gw.accept(self.now)
    }

    fn json(&mut self, conn: ConnId, v: Value) {
        self.gw
            .handle_frame(conn, Frame::text(v.to_string()), self.now);
    }

    fn raw(&mut self, conn: ConnId, text: &'static str) {
        self.gw.handle_frame(conn, Frame::text(text), self.now);
    }

    fn close(&mut self, conn: ConnId) {
        self.gw.handle_close(conn, self.now);
    }

    fn elapse_ms(&mut self, ms: u64) {
        let until = self.now + Duration::from_millis(ms);
        while let Some(at) = self.gw.poll_timeout().filter(|at| *at <= until) {
            self.now = at.max(self.now);
            self.gw.handle_timeout(self.now);
        }
        self.now = until;
    }

    /// Every command so far, frames read back as JSON; read limits go to `limits`.
    fn commands(&mut self) -> Vec<(ConnId, Wire)> {
        let mut limits = Vec::new();
        let wire = std::iter::from_fn(|| self.gw.poll_command())
            .filter(|c| match c {
                GatewayCommand::ReadLimit { conn, max_message } => {
                    limits.push((*conn, *max_message));
                    false
                }
                _ => true,
            })
            .map(|c| match c {
                GatewayCommand::Send {
                    conn,
                    frame: Frame::Text(t),
                } => (conn, Wire::Json(serde_json::from_str(t.as_str()).unwrap())),
                GatewayCommand::Send {
                    conn,
                    frame: Frame::Ping(_),
                } => (conn, Wire::Ping),
                GatewayCommand::Send { conn, frame } => panic!("{conn}: {frame:?}"),
                GatewayCommand::Close { conn, frame } => (conn, Wire::Close(frame)),
                GatewayCommand::Abort { conn } => (conn, Wire::Abort),
                GatewayCommand::ReadLimit { .. } => unreachable!("filtered above"),
            })
            .collect();
        self.limits.extend(limits);
        wire
    }

    fn events(&mut self) -> Vec<GatewayEvent> {
        std::iter::from_fn(|| self.gw.poll_event()).collect()
    }

    fn identify(&mut self, peer: &str) -> ConnId {
        let conn = self.accept();
        self.json(
            conn,
            json!({"op": 2, "d": {"token": format!("token-{peer}"), "intents": 0}}),
        );
        conn
    }

    fn connect(&mut self, peer: &str) -> ConnId {
        let conn = self.accept();
        self.json(
            conn,
            json!({"type": "req", "id": "connect", "method": "connect", "params": operator_params(&format!("token-{peer}"))}),
        );
        conn
    }

    fn ms(&self) -> u128 {
        self.now.duration_since(self.start).as_millis()
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Wire {
    Json(Value),
    /// A liveness ping (OpenClaw, with each tick).
    Ping,
    Close(CloseFrame),
    Abort,
}

/// A device-less operator's connect params with the shared `token`.
fn operator_params(token: &str) -> Value {
    json!({
        "minProtocol": 3, "maxProtocol": 4,
        "client": {"id": "cli", "version": "1.0.0", "platform": "linux", "mode": "cli"},
        "role": "operator", "scopes": ["operator.read"],
        "auth": {"token": token},
    })
}

/// A node's connect, signed by `identity` over `nonce` and `ts` with the shared `token`.
fn node_params(identity: &DeviceIdentity, nonce: &str, ts: u64, token: &str) -> Value {
    let scopes: Vec<String> = Vec::new();
    let signed = SignedConnect {
        device_id: identity.id(),
        client_id: "node-host",
        client_mode: "node",
        role: "node",
        scopes: &scopes,
        signed_at: ts,
        token,
        nonce,
        platform: "linux",
        device_family: "",
    };
    json!({
        "minProtocol": 3, "maxProtocol": 4,
        "client": {"id": "node-host", "version": "1.0.0", "platform": "linux", "mode": "node"},
        "role": "node", "scopes": [], "commands": ["tether.echo"],
        "auth": {"token": token},
        "device": {
            "id": identity.id(), "publicKey": identity.public_key(),
            "signature": identity.sign(&signed.payload_v3()), "signedAt": ts, "nonce": nonce,
        },
    })
}

/// The challenge a freshly accepted connection was sent: its nonce and ts.
fn challenge_of(wire: &[(ConnId, Wire)]) -> (String, u64) {
    let Some((_, Wire::Json(challenge))) = wire.first() else {
        panic!("{wire:?}")
    };
    assert_eq!(challenge["event"], "connect.challenge");
    (
        challenge["payload"]["nonce"].as_str().unwrap().to_owned(),
        challenge["payload"]["ts"].as_u64().unwrap(),
    )
}

/// A node's `node.invoke.result` for invoke `id`, with `fields` (`ok`, `payload`...).
fn result(id: u64, fields: Value) -> Value {
    let mut params = json!({"id": id.to_string(), "nodeId": "agent"});
    if let (Some(params), Some(fields)) = (params.as_object_mut(), fields.as_object()) {
        params.extend(fields.clone());
    }
    json!({"type": "req", "id": format!("r-{id}"), "method": "node.invoke.result", "params": params})
}

fn raw(s: &str) -> Box<RawValue> {
    RawValue::from_string(s.to_owned()).unwrap()
}

fn presence(peer: &str, conn: ConnId, presence: Presence) -> GatewayEvent {
    GatewayEvent::Presence {
        peer: peer.into(),
        conn,
        presence,
    }
}

fn session_id(wire: &[(ConnId, Wire)]) -> String {
    wire.iter()
        .find_map(|(_, w)| match w {
            Wire::Json(v) if v["t"] == "READY" => v["d"]["session_id"].as_str().map(str::to_owned),
            _ => None,
        })
        .expect("a READY")
}

#[test]
fn discord_hello_identify_ready_heartbeat_and_dispatch() {
    let mut s = Server::discord();
    let conn = s.identify("bot");
    s.json(conn, json!({"op": 1, "d": 1}));
    let delivered =
        s.gw.dispatch("bot", "MESSAGE_CREATE", &raw("{\"id\":1}"))
            .unwrap();
    assert_eq!(
        delivered,
        Delivered {
            seq: 2,
            conn: Some(conn)
        }
    );
    let wire = s.commands();
    assert_eq!(
        wire[0],
        (
            conn,
            Wire::Json(json!({"op": 10, "d": {"heartbeat_interval": 1000}}))
        )
    );
    let Wire::Json(ready) = &wire[1].1 else {
        panic!()
    };
    assert_eq!(
        (
            ready["op"].as_u64(),
            ready["s"].as_u64(),
            ready["t"].as_str()
        ),
        (Some(0), Some(1), Some("READY"))
    );
    assert_eq!(wire[2], (conn, Wire::Json(json!({"op": 11}))));
    assert_eq!(
        wire[3],
        (
            conn,
            Wire::Json(json!({"op": 0, "s": 2, "t": "MESSAGE_CREATE", "d": {"id": 1}}))
        )
    );
    assert_eq!(s.events(), [presence("bot", conn, Presence::Connected)]);
    assert_eq!(s.gw.owner("bot"), Some(conn));
}

#[test]
fn discord_resume_replays_what_was_missed_in_order() {
    let mut s = Server::discord();
    let first = s.identify("bot");
    let id = session_id(&s.commands());
    s.gw.dispatch("bot", "A", &raw("1")).unwrap(); // seq 2, seen
    s.close(first);
    // Sent while the session waits: kept for replay.
    let waiting = s.gw.dispatch("bot", "B", &raw("2")).unwrap();
    assert_eq!(waiting, Delivered { seq: 3, conn: None });
    s.gw.dispatch("bot", "C", &raw("3")).unwrap();
    let second = s.accept();
    s.commands();
    s.json(
        second,
        json!({"op": 6, "d": {"token": "token-bot", "session_id": id, "seq": 2}}),
    );
    let frames: Vec<(Option<u64>, Option<String>)> = s
        .commands()
        .into_iter()
        .map(|(c, w)| {
            assert_eq!(c, second);
            let Wire::Json(v) = w else { panic!("{w:?}") };
            (v["s"].as_u64(), v["t"].as_str().map(str::to_owned))
        })
        .collect();
    assert_eq!(
        frames,
        [
            (Some(3), Some("B".into())),
            (Some(4), Some("C".into())),
            (Some(5), Some("RESUMED".into()))
        ]
    );
    assert_eq!(
        s.events(),
        [
            presence("bot", first, Presence::Connected),
            presence("bot", first, Presence::Disconnected),
            presence("bot", second, Presence::Connected),
            GatewayEvent::Resumed {
                peer: "bot".into(),
                conn: second,
                replayed: 2
            },
        ]
    );
    assert_eq!(s.gw.stats().resumes, 1);
    assert_eq!(s.gw.stats().replayed, 2);
}

#[test]
fn discord_resume_out_of_reach_or_expired_is_an_invalid_session() {
    let mut s = Server::discord();
    let first = s.identify("bot");
    let id = session_id(&s.commands());
    for n in 0..6 {
        s.gw.dispatch("bot", "X", &raw(&n.to_string())).unwrap();
    }
    s.close(first);
    // Capacity 4: seq 4..=7 kept, so a client at seq 2 cannot be brought up to date.
    let behind = s.accept();
    s.commands();
    s.json(
        behind,
        json!({"op": 6, "d": {"token": "token-bot", "session_id": id, "seq": 2}}),
    );
    assert_eq!(
        s.commands(),
        [(behind, Wire::Json(json!({"op": 9, "d": false})))]
    );
    // Another peer's token cannot take the session either.
    s.json(
        behind,
        json!({"op": 6, "d": {"token": "token-eve", "session_id": id, "seq": 7}}),
    );
    assert_eq!(
        s.commands(),
        [(behind, Wire::Json(json!({"op": 9, "d": false})))]
    );
    // Past the window the session is gone.
    s.elapse_ms(5_001);
    assert_eq!(s.gw.sessions(), 0);
    let late = s.accept();
    s.commands();
    s.json(
        late,
        json!({"op": 6, "d": {"token": "token-bot", "session_id": id, "seq": 7}}),
    );
    let wire = s.commands();
    assert!(
        wire.contains(&(late, Wire::Json(json!({"op": 9, "d": false})))),
        "{wire:?}"
    );
    assert_eq!(s.gw.stats().invalid_sessions, 3);
    assert_eq!(s.gw.stats().expired_sessions, 1);
}

#[test]
fn s01_gateway_new_session_replaces_old_and_closes_it() {
    let mut s = Server::discord();
    let old = s.identify("bot");
    let new = s.identify("bot");
    let closes: Vec<_> = s
        .commands()
        .into_iter()
        .filter(|(_, w)| matches!(w, Wire::Close(_)))
        .collect();
    assert_eq!(
        closes,
        [(
            old,
            Wire::Close(CloseFrame::new(
                4000,
                "session replaced by a newer connection"
            ))
        )]
    );
    assert_eq!(
        s.events(),
        [
            presence("bot", old, Presence::Connected),
            presence("bot", new, Presence::Replaced { old }),
            GatewayEvent::Closing {
                conn: old,
                peer: Some("bot".into()),
                why: CloseWhy::Replaced
            },
        ]
    );
}

#[test]
fn s02_s04_gateway_late_close_of_the_old_socket_changes_nothing() {
    let mut s = Server::discord();
    let old = s.identify("bot");
    let new = s.identify("bot");
    s.events();
    // The old socket's frames and its close arrive late.
    s.json(old, json!({"op": 1, "d": 1}));
    s.close(old);
    assert_eq!(s.gw.owner("bot"), Some(new));
    assert_eq!(s.events(), []);
    assert_eq!(s.gw.stats().registry.stale_closes, 1);
    assert_eq!(s.gw.stats().stale_frames, 1);
    // Dispatches still reach the new socket.
    assert_eq!(
        s.gw.dispatch("bot", "X", &raw("null")).unwrap().conn,
        Some(new)
    );
}

#[test]
fn s03_gateway_invoke_answered_only_on_its_connection() {
    let mut s = Server::openclaw();
    let old = s.connect("agent");
    let first =
        s.gw.invoke("agent", "status", &raw("{}"), Duration::from_secs(5), s.now)
            .unwrap();
    let new = s.connect("agent");
    let second =
        s.gw.invoke("agent", "status", &raw("{}"), Duration::from_secs(5), s.now)
            .unwrap();
    let invokes: Vec<_> = s
        .commands()
        .into_iter()
        .filter_map(|(c, w)| match w {
            Wire::Json(v) if v["event"] == "node.invoke.request" => Some((
                c,
                v["payload"]["id"].as_str().unwrap().parse::<u64>().unwrap(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(invokes, [(old, first.get()), (new, second.get())]);
    s.events();
    // The old socket answers the second invoke: not its own, so dropped and counted.
    s.json(
        old,
        result(
            second.get(),
            json!({"ok": true, "payloadJSON": "\"from old\""}),
        ),
    );
    assert_eq!(s.events(), []);
    assert_eq!(s.gw.stats().registry.stray_results, 1);
    // Its close fails only its own invoke; the new one's stands and is answered by new.
    s.close(old);
    s.json(
        new,
        result(second.get(), json!({"ok": true, "payload": "from new"})),
    );
    let events = s.events();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        matches!(&events[0], GatewayEvent::Invoked { id, outcome: InvokeOutcome::Disconnected, .. } if *id == first)
    );
    let GatewayEvent::Invoked {
        id,
        outcome: InvokeOutcome::Result(Ok(payload)),
        ..
    } = &events[1]
    else {
        panic!("{events:?}")
    };
    assert_eq!((*id, payload.as_str()), (second, "\"from new\""));
    // A repeat of a finished invoke is stray too.
    s.json(new, result(second.get(), json!({"ok": true, "payload": 1})));
    assert_eq!(s.events(), []);
    assert_eq!(s.gw.pending_invokes(), 0);
}

#[test]
fn openclaw_invokes_time_out_and_errors_are_answers() {
    let mut s = Server::openclaw();
    let conn = s.connect("agent");
    let slow =
        s.gw.invoke(
            "agent",
            "a",
            &raw("null"),
            Duration::from_millis(100),
            s.now,
        )
        .unwrap();
    let failing =
        s.gw.invoke("agent", "b", &raw("null"), Duration::from_secs(9), s.now)
            .unwrap();
    s.json(
        conn,
        result(
            failing.get(),
            json!({"ok": false, "error": {"code": "NOPE", "message": "no"}}),
        ),
    );
    s.elapse_ms(100);
    let outcomes: Vec<_> = s
        .events()
        .into_iter()
        .filter_map(|e| match e {
            GatewayEvent::Invoked { id, outcome, .. } => Some((id, outcome)),
            _ => None,
        })
        .collect();
    assert_eq!(outcomes.len(), 2);
    assert_eq!(outcomes[0].0, failing);
    assert!(matches!(&outcomes[0].1, InvokeOutcome::Result(Err(e)) if e.code == "NOPE"));
    assert_eq!(outcomes[1], (slow, InvokeOutcome::TimedOut));
    assert_eq!(
        s.gw.invoke("nobody", "a", &raw("null"), Duration::from_secs(1), s.now),
        Err(GatewayError::NotConnected)
    );
    let mut d = Server::discord();
    d.identify("bot");
    assert_eq!(
        d.gw.invoke("bot", "a", &raw("null"), Duration::from_secs(1), d.now),
        Err(GatewayError::Unsupported("discord"))
    );
}

#[test]
fn openclaw_challenge_hello_ok_ticks_and_messages_share_one_sequence() {
    let mut s = Server::openclaw();
    let conn = s.accept();
    let wire = s.commands();
    let Wire::Json(challenge) = &wire[0].1 else {
        panic!("{wire:?}")
    };
    assert_eq!(challenge["event"], "connect.challenge");
    assert!(challenge["payload"]["nonce"].is_string());
    assert!(challenge["payload"]["ts"].is_u64());
    s.json(
        conn,
        json!({"type": "req", "id": "c-1", "method": "connect", "params": operator_params("token-agent")}),
    );
    s.json(
        conn,
        json!({"type": "event", "event": "presence", "payload": {"echo": [1]}}),
    );
    s.elapse_ms(500);
    s.gw.dispatch("agent", "price", &raw("{\"px\":1}")).unwrap();
    let all = s.commands();
    assert!(
        all.iter().any(|(_, w)| *w == Wire::Ping),
        "a liveness ping goes with the tick: {all:?}"
    );
    let wire: Vec<Value> = all
        .into_iter()
        .filter_map(|(_, w)| match w {
            Wire::Json(v) => Some(v),
            Wire::Ping => None,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(wire.len(), 3, "{wire:?}");
    let hello = &wire[0];
    assert_eq!(hello["id"], "c-1");
    assert_eq!(hello["payload"]["type"], "hello-ok");
    assert_eq!(hello["payload"]["protocol"], 4);
    assert_eq!(hello["payload"]["auth"]["role"], "operator");
    assert_eq!(hello["payload"]["policy"]["tickIntervalMs"], 500);
    for field in ["server", "features", "snapshot", "auth", "policy"] {
        assert!(
            hello["payload"].get(field).is_some(),
            "hello-ok has {field}"
        );
    }
    assert_eq!(
        (wire[1]["event"].as_str(), wire[1]["seq"].as_u64()),
        (Some("tick"), Some(1))
    );
    assert_eq!(
        wire[2],
        json!({"type": "event", "event": "price", "payload": {"px": 1}, "seq": 2})
    );
    let events = s.events();
    assert!(
        events.iter().any(
            |e| matches!(e, GatewayEvent::Message { text, .. } if text.as_str().contains("echo"))
        ),
        "{events:?}"
    );
}

#[test]
fn openclaw_a_node_signs_the_live_nonce_pairs_once_and_gets_a_device_token() {
    let mut s = Server::new(
        GatewayConfig::builder(ServerProfile::OpenClaw)
            .auto_approve(AutoApprove::Never)
            .build()
            .unwrap(),
    );
    let identity = DeviceIdentity::from_seed([8; 32]).unwrap();
    let connect =
        |params: Value| json!({"type": "req", "id": "c", "method": "connect", "params": params});
    // A nonce of another socket (or a guess) is refused, typed, and closed 1008.
    let first = s.accept();
    let (first_nonce, ts) = challenge_of(&s.commands());
    let other = s.accept();
    let (other_nonce, other_ts) = challenge_of(&s.commands());
    assert_ne!(
        first_nonce, other_nonce,
        "each connection gets its own nonce"
    );
    s.json(
        first,
        connect(node_params(&identity, &other_nonce, ts, "token-a")),
    );
    let wire = s.commands();
    let Wire::Json(refused) = &wire[0].1 else {
        panic!("{wire:?}")
    };
    assert_eq!(refused["error"]["message"], "device nonce mismatch");
    assert_eq!(
        refused["error"]["details"]["code"],
        "DEVICE_AUTH_NONCE_MISMATCH"
    );
    assert_eq!(
        wire[1].1,
        Wire::Close(CloseFrame::new(1008, "device nonce mismatch"))
    );
    // A signature over another credential than the one presented does not verify.
    let mut forged = node_params(&identity, &other_nonce, other_ts, "token-b");
    forged["auth"]["token"] = json!("token-a");
    s.json(other, connect(forged));
    let wire = s.commands();
    let Wire::Json(refused) = &wire[0].1 else {
        panic!("{wire:?}")
    };
    assert_eq!(
        refused["error"]["details"]["code"],
        "DEVICE_AUTH_SIGNATURE_INVALID"
    );
    // A good proof of a new device: pairing required, announced once, retried.
    let mut pairing = None;
    for attempt in 0..2 {
        let conn = s.accept();
        let (nonce, ts) = challenge_of(&s.commands());
        s.json(conn, connect(node_params(&identity, &nonce, ts, "token-a")));
        let wire = s.commands();
        let Wire::Json(refused) = &wire[0].1 else {
            panic!("{wire:?}")
        };
        assert_eq!(refused["error"]["code"], "NOT_PAIRED");
        assert_eq!(refused["error"]["details"]["pauseReconnect"], false);
        let requested: Vec<PairingRequest> = s
            .events()
            .into_iter()
            .filter_map(|e| match e {
                GatewayEvent::PairingRequested(p) => Some(p),
                _ => None,
            })
            .collect();
        assert_eq!(requested.len(), usize::from(attempt == 0), "announced once");
        if let Some(request) = requested.into_iter().next() {
            assert_eq!(request.device_id, identity.id());
            assert_eq!(request.commands, ["tether.echo"]);
            pairing = Some(request.request_id);
        }
    }
    let pairing = pairing.unwrap();
    s.gw.approve_pairing(&pairing).unwrap();
    assert_eq!(
        s.gw.approve_pairing(&pairing),
        Err(GatewayError::UnknownPairing)
    );
    let conn = s.accept();
    let (nonce, ts) = challenge_of(&s.commands());
    s.json(conn, connect(node_params(&identity, &nonce, ts, "token-a")));
    let wire = s.commands();
    let Wire::Json(hello) = &wire[0].1 else {
        panic!("{wire:?}")
    };
    assert_eq!(hello["payload"]["type"], "hello-ok", "{hello}");
    let device_token = hello["payload"]["auth"]["deviceToken"]
        .as_str()
        .unwrap()
        .to_owned();
    // Kept by device id: the node is its device.
    assert_eq!(s.gw.owner(identity.id()), Some(conn));
    // Its device token alone lets it in again, signed with that token.
    let again = s.accept();
    let (nonce, ts) = challenge_of(&s.commands());
    let mut params = node_params(&identity, &nonce, ts, &device_token);
    params["auth"] = json!({"deviceToken": device_token});
    s.json(again, connect(params));
    let wire = s.commands();
    assert!(
        wire.iter().any(|(c, w)| *c == again
            && matches!(w, Wire::Json(v) if v["payload"]["type"] == "hello-ok")),
        "{wire:?}"
    );
    assert_eq!(
        s.gw.owner(identity.id()),
        Some(again),
        "the newer connection owns it (S1)"
    );
}

#[test]
fn openclaw_connects_are_validated_as_the_real_gateway_does() {
    let cases = [
        (json!({"client": {"id": "cli"}}), "INVALID_REQUEST", 1008),
        (
            {
                let mut p = operator_params("token-a");
                p["extra"] = json!(1);
                p
            },
            "INVALID_REQUEST",
            1008,
        ),
        (
            {
                let mut p = operator_params("token-a");
                p["client"]["id"] = json!("made-up");
                p
            },
            "INVALID_REQUEST",
            1008,
        ),
        (
            {
                let mut p = operator_params("token-a");
                p["minProtocol"] = json!(5);
                p["maxProtocol"] = json!(6);
                p
            },
            "INVALID_REQUEST",
            1002,
        ),
        (
            {
                let mut p = operator_params("token-a");
                p["auth"] = json!({});
                p
            },
            "INVALID_REQUEST",
            1008,
        ),
        (
            {
                let mut p = operator_params("token-a");
                p["role"] = json!("node");
                p
            },
            "NOT_PAIRED",
            1008,
        ),
    ];
    for (params, code, close) in cases {
        let mut s = Server::openclaw();
        let conn = s.accept();
        s.commands();
        s.json(
            conn,
            json!({"type": "req", "id": "c", "method": "connect", "params": params}),
        );
        let wire = s.commands();
        let Wire::Json(refused) = &wire[0].1 else {
            panic!("{params}: {wire:?}")
        };
        assert_eq!(refused["error"]["code"], code, "{params}: {refused}");
        assert!(
            matches!(&wire[1].1, Wire::Close(f) if f.code == close),
            "{params}: {wire:?}"
        );
    }
    // An unknown method is refused; health and status are answered by the gateway itself.
    let mut s = Server::openclaw();
    let conn = s.connect("a");
    s.commands();
    for method in ["health", "status", "nope"] {
        s.json(conn, json!({"type": "req", "id": method, "method": method}));
    }
    let wire = s.commands();
    let oks: Vec<bool> = wire
        .iter()
        .filter_map(|(_, w)| match w {
            Wire::Json(v) => v["ok"].as_bool(),
            _ => None,
        })
        .collect();
    assert_eq!(oks, [true, true, false], "{wire:?}");
}

#[test]
fn handshake_timeout_and_silence_close_the_socket() {
    let mut s = Server::discord();
    let idle = s.accept();
    let bot = s.identify("bot");
    s.commands();
    s.events();
    // Heartbeats keep the bot; the idle socket never identifies.
    for _ in 0..9 {
        s.elapse_ms(1000);
        s.json(bot, json!({"op": 1, "d": null}));
    }
    assert_eq!(s.gw.stats().handshake_timeouts, 1);
    let closes: Vec<_> = s
        .commands()
        .into_iter()
        .filter(|(_, w)| matches!(w, Wire::Close(_)))
        .collect();
    assert_eq!(
        closes,
        [(
            idle,
            Wire::Close(CloseFrame::new(4009, "session timed out"))
        )]
    );
    // Then the bot stops heartbeating: closed 1.5 intervals after its last heartbeat.
    let last = s.ms();
    s.elapse_ms(1499);
    assert!(s.commands().is_empty());
    s.elapse_ms(1);
    assert_eq!(
        s.commands(),
        [(
            bot,
            Wire::Close(CloseFrame::new(4000, "no heartbeat in time"))
        )]
    );
    assert_eq!(s.ms() - last, 1500);
    assert_eq!(s.gw.stats().unresponsive, 1);
}

#[test]
fn bad_frames_are_counted_and_closed_per_profile() {
    let cases: [(&str, u16); 4] = [
        ("{", 4002),
        ("{\"op\":99}", 4001),
        ("{\"op\":3,\"d\":{}}", 4003),
        ("{\"op\":2}", 4002),
    ];
    for (text, code) in cases {
        let mut s = Server::discord();
        let conn = s.accept();
        s.commands();
        s.raw(conn, text);
        let wire = s.commands();
        assert!(
            matches!(&wire[..], [(c, Wire::Close(f))] if *c == conn && f.code == code),
            "{text}: {wire:?}"
        );
        // Nothing more is read from it.
        s.raw(conn, "{\"op\":1}");
        assert!(s.commands().is_empty());
    }
    let mut s = Server::discord();
    let conn = s.identify("bot");
    s.json(conn, json!({"op": 2, "d": {"token": "token-bot"}}));
    assert!(s.commands().contains(&(
        conn,
        Wire::Close(CloseFrame::new(4005, "already authenticated"))
    )));
    let rejected = s.accept();
    s.json(rejected, json!({"op": 2, "d": {"token": "forged"}}));
    assert!(s.commands().contains(&(
        rejected,
        Wire::Close(CloseFrame::new(4004, "authentication failed"))
    )));

    let mut s = Server::openclaw();
    let conn = s.connect("agent");
    s.gw.handle_frame(conn, Frame::binary(vec![1, 2]), s.now);
    assert!(
        s.commands()
            .contains(&(conn, Wire::Close(CloseFrame::new(1007, "malformed frame"))))
    );
    assert_eq!(s.gw.stats().bad_frames, 1);
    assert!(
        s.events()
            .iter()
            .any(|e| matches!(e, GatewayEvent::BadFrame { .. }))
    );
}

#[test]
fn too_slow_and_shutdown_close_with_their_codes() {
    let mut s = Server::discord();
    let a = s.identify("a");
    let b = s.identify("b");
    s.commands();
    s.gw.too_slow(a);
    s.gw.shutdown();
    assert_eq!(
        s.commands(),
        [
            (
                a,
                Wire::Close(CloseFrame::new(1008, "too slow: outbound queue full"))
            ),
            (b, Wire::Close(CloseFrame::new(1001, "going away"))),
        ]
    );
    assert_eq!(s.gw.stats().too_slow, 1);
    // Sends to a closing connection are refused, never queued behind its close.
    assert_eq!(
        s.gw.send("b", Frame::text("x")),
        Err(GatewayError::NotConnected)
    );
}

#[test]
fn bad_configuration_fails_at_build() {
    assert!(
        GatewayConfig::builder(ServerProfile::Discord)
            .heartbeat_interval(Duration::ZERO)
            .build()
            .is_err()
    );
    assert!(
        GatewayConfig::builder(ServerProfile::OpenClaw)
            .handshake_timeout(Duration::ZERO)
            .build()
            .is_err()
    );
    assert!(
        GatewayConfig::builder(ServerProfile::OpenClaw)
            .max_invokes(0)
            .build()
            .is_err()
    );
}

// --- A property test over random socket histories ---------------------------------------

#[derive(Debug, Clone)]
enum Step {
    Accept,
    Identify {
        conn: usize,
        peer: usize,
    },
    Resume {
        conn: usize,
        peer: usize,
        behind: u64,
    },
    Heartbeat {
        conn: usize,
    },
    Garbage {
        conn: usize,
    },
    Close {
        conn: usize,
    },
    Dispatch {
        peer: usize,
    },
    Elapse {
        ms: u64,
    },
}

const PEERS: [&str; 3] = ["a", "b", "c"];

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => Just(Step::Accept),
        3 => (0..8usize, 0..3usize).prop_map(|(conn, peer)| Step::Identify { conn, peer }),
        2 => (0..8usize, 0..3usize, 0..6u64).prop_map(|(conn, peer, behind)| Step::Resume { conn, peer, behind }),
        2 => (0..8usize).prop_map(|conn| Step::Heartbeat { conn }),
        1 => (0..8usize).prop_map(|conn| Step::Garbage { conn }),
        3 => (0..8usize).prop_map(|conn| Step::Close { conn }),
        2 => (0..3usize).prop_map(|peer| Step::Dispatch { peer }),
        2 => (0..3000u64).prop_map(|ms| Step::Elapse { ms }),
    ]
}

/// What the model tracks to check S1, S2, S4 and replay order after every step.
#[derive(Default)]
struct Model {
    owner: HashMap<String, ConnId>,
    closed_commands: BTreeSet<ConnId>,
    socket_gone: BTreeSet<ConnId>,
    /// The last dispatch sequence written on each connection.
    last_seq: BTreeMap<ConnId, u64>,
    sessions: HashMap<String, (String, u64)>,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn gateway_histories_keep_s1_to_s4(steps in proptest::collection::vec(step(), 1..60)) {
        let mut s = Server::discord();
        let mut conns: Vec<ConnId> = Vec::new();
        let mut m = Model::default();
        for step in steps {
            let pick = |i: usize| conns.get(i % conns.len().max(1)).copied();
            match step {
                Step::Accept => conns.push(s.accept()),
                Step::Identify { conn, peer } => if let Some(c) = pick(conn) {
                    s.json(c, json!({"op": 2, "d": {"token": format!("token-{}", PEERS[peer])}}));
                },
                Step::Resume { conn, peer, behind } => if let (Some(c), Some((id, seq))) = (pick(conn), m.sessions.get(PEERS[peer]).cloned()) {
                    s.json(c, json!({"op": 6, "d": {"token": format!("token-{}", PEERS[peer]), "session_id": id, "seq": seq.saturating_sub(behind)}}));
                },
                Step::Heartbeat { conn } => if let Some(c) = pick(conn) { s.json(c, json!({"op": 1, "d": null})) },
                Step::Garbage { conn } => if let Some(c) = pick(conn) { s.raw(c, "{]") },
                Step::Close { conn } => if let Some(c) = pick(conn) {
                    if m.socket_gone.insert(c) { s.close(c) }
                },
                Step::Dispatch { peer } => { let _ = s.gw.dispatch(PEERS[peer], "X", &raw("null")); }
                Step::Elapse { ms } => s.elapse_ms(ms),
            }
            for (conn, wire) in s.commands() {
                // Nothing is written to a socket after its close, nor to one that is gone.
                prop_assert!(!m.closed_commands.contains(&conn), "{conn} written after close: {wire:?}");
                prop_assert!(!m.socket_gone.contains(&conn), "{conn} written after it ended");
                match wire {
                    Wire::Close(_) | Wire::Abort => { m.closed_commands.insert(conn); }
                    Wire::Ping => {}
                    Wire::Json(v) if v["op"] == 0 => {
                        let seq = v["s"].as_u64().unwrap();
                        if v["t"] == "READY" {
                            m.last_seq.insert(conn, seq);
                            let peer = s.gw.owner("a").filter(|o| *o == conn).map(|_| "a")
                                .or_else(|| s.gw.owner("b").filter(|o| *o == conn).map(|_| "b"))
                                .or_else(|| s.gw.owner("c").filter(|o| *o == conn).map(|_| "c"));
                            if let Some(peer) = peer {
                                m.sessions.insert(peer.to_owned(), (v["d"]["session_id"].as_str().unwrap().to_owned(), seq));
                            }
                        } else {
                            // Replay and live dispatches arrive in order, without repeats.
                            if let Some(last) = m.last_seq.get(&conn) {
                                prop_assert!(seq > *last, "{conn}: seq {seq} after {last}");
                            }
                            m.last_seq.insert(conn, seq);
                        }
                    }
                    Wire::Json(_) => {}
                }
            }
            for event in s.events() {
                if let GatewayEvent::Presence { peer, conn, presence } = event {
                    let peer = peer.to_string();
                    match presence {
                        Presence::Connected => prop_assert!(!m.owner.contains_key(&peer)),
                        Presence::Replaced { old } => prop_assert_eq!(m.owner.get(&peer), Some(&old)),
                        // S2/S4: only the owner's own end disconnects a peer.
                        Presence::Disconnected => {
                            prop_assert_eq!(m.owner.get(&peer), Some(&conn));
                            prop_assert!(m.socket_gone.contains(&conn));
                        }
                    }
                    if presence == Presence::Disconnected { m.owner.remove(&peer); } else { m.owner.insert(peer, conn); }
                }
            }
            for peer in PEERS {
                prop_assert_eq!(s.gw.owner(peer), m.owner.get(peer).copied());
            }
            prop_assert!(s.gw.poll_timeout().is_none_or(|at| at > s.now), "I7: no deadline left behind");
        }
    }
}

#[test]
fn faults_on_demand_stall_hello_stop_acks_refuse_resumes_and_cut_sockets() {
    let mut s = Server::discord();
    s.gw.set_faults(Faults {
        stall_hello: true,
        ..Faults::default()
    });
    let silent = s.accept();
    assert_eq!(s.commands(), [], "no hello");
    s.gw.set_faults(Faults {
        ack_heartbeats: Some(1),
        ..Faults::default()
    });
    let bot = s.identify("bot");
    let id = session_id(&s.commands());
    s.json(bot, json!({"op": 1, "d": 1}));
    s.json(bot, json!({"op": 1, "d": 1}));
    let acks = s
        .commands()
        .iter()
        .filter(|(_, w)| *w == Wire::Json(json!({"op": 11})))
        .count();
    assert_eq!(acks, 1, "only the first heartbeat is acked");
    s.close(bot);
    s.gw.set_faults(Faults {
        invalid_session_rate: 1.0,
        ..Faults::default()
    });
    let again = s.accept();
    s.json(
        again,
        json!({"op": 6, "d": {"token": "token-bot", "session_id": id, "seq": 1}}),
    );
    assert!(
        s.commands()
            .contains(&(again, Wire::Json(json!({"op": 9, "d": false}))))
    );
    s.gw.set_faults(Faults {
        drop_after: Some(Duration::from_millis(300)),
        ..Faults::default()
    });
    s.json(again, json!({"op": 2, "d": {"token": "token-bot"}}));
    s.commands();
    s.elapse_ms(300);
    assert_eq!(s.commands(), [(again, Wire::Abort)]);
    assert!(s.events().iter().any(|e| matches!(
        e,
        GatewayEvent::Closing {
            why: CloseWhy::Dropped,
            ..
        }
    )));
    let _ = silent;
}
