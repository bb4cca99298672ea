//! The OpenClaw profile on the machine: the signed handshake, `hello-ok`, ticks and their
//! sequence, requests bound to their connection (F14), the table of refusals and closes,
//! and a node's invokes bound to theirs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use support::*;
use tether_core::protocol::openclaw::{
    ClientInfo, DeviceIdentity, InvokeAnswer, OpenClaw, OpenClawMessage, OpenClawRequest, Role,
};
use tether_core::{
    AnswerError, CloseCause, Command, Config, Event, Frame, Outcome, Phase, Reason, RemoteError,
    RequestErrorKind, SendErrorKind, StopReason, Token, Utf8Bytes,
};

type E = Event<OpenClawMessage, Utf8Bytes>;
type Out = support::Out<OpenClawMessage, Utf8Bytes>;

const TOKEN: &str = "shared-secret-token";
const NONCE: &str = "nonce-42";
const TS: u64 = 1_737_264_000_000;

fn identity() -> DeviceIdentity {
    DeviceIdentity::from_seed([9; 32]).unwrap()
}

fn node() -> OpenClaw {
    OpenClaw::builder(Role::Node, identity())
        .token(Token::new(TOKEN))
        .commands(["tether.echo"])
        .build()
        .unwrap()
}

fn operator() -> OpenClaw {
    OpenClaw::builder(Role::Operator, identity())
        .token(Token::new(TOKEN))
        .build()
        .unwrap()
}

fn sim_with(config: Config, profile: OpenClaw) -> Sim<OpenClaw> {
    Sim::new(config, profile)
}

fn text(v: Value) -> Frame {
    Frame::text(v.to_string())
}

fn challenge(nonce: &str) -> Frame {
    text(
        json!({"type": "event", "event": "connect.challenge", "payload": {"nonce": nonce, "ts": TS}}),
    )
}

fn hello_ok(tick_ms: u64, device_token: Option<&str>) -> Frame {
    let mut auth = json!({"role": "node", "scopes": []});
    if let Some(token) = device_token {
        auth["deviceToken"] = json!(token);
    }
    text(
        json!({"type": "res", "id": "connect", "ok": true, "payload": {
            "type": "hello-ok", "protocol": 4,
            "server": {"version": "2026.9.6", "connId": "c-1"},
            "features": {"methods": ["health", "status"], "events": ["tick"]},
            "snapshot": {},
            "auth": auth,
            "policy": {"maxPayload": 1024, "maxBufferedBytes": 2048, "tickIntervalMs": tick_ms},
        }}),
    )
}

fn refused(error: Value) -> Frame {
    text(json!({"type": "res", "id": "connect", "ok": false, "error": error}))
}

fn tick(seq: u64) -> Frame {
    text(json!({"type": "event", "event": "tick", "payload": {"ts": TS}, "seq": seq}))
}

fn sent(out: &[Out]) -> Vec<Value> {
    out.iter()
        .filter_map(|o| match o {
            support::Out::Cmd(Command::Send {
                frame: Frame::Text(t),
                ..
            }) => Some(serde_json::from_str(t.as_str()).unwrap()),
            _ => None,
        })
        .collect()
}

fn outcomes(out: &[Out]) -> Vec<(u64, Outcome<Utf8Bytes>)> {
    out.iter()
        .filter_map(|o| match o {
            support::Out::Ev(E::Response { id, outcome }) => Some((id.get(), outcome.clone())),
            _ => None,
        })
        .collect()
}

fn protocol_errors(out: &[Out]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            support::Out::Ev(E::ProtocolError { error, .. }) => Some(error.reason.to_string()),
            _ => None,
        })
        .collect()
}

/// Connects on `conn` through the challenge to `hello-ok`; output taken.
fn handshake(sim: &mut Sim<OpenClaw>, conn: u64, tick_ms: u64) {
    sim.opened(conn);
    sim.frame(conn, challenge(NONCE));
    sim.frame(conn, hello_ok(tick_ms, None));
    sim.take();
}

fn ready(profile: OpenClaw, tick_ms: u64) -> Sim<OpenClaw> {
    let mut sim = sim_with(test_config().build().unwrap(), profile);
    sim.connect().unwrap();
    handshake(&mut sim, 1, tick_ms);
    sim
}

fn health() -> OpenClawRequest {
    OpenClawRequest::new("health", Value::Null)
}

#[test]
fn o_connect_waits_for_the_challenge_and_signs_it_v3() {
    let mut sim = sim_with(test_config().build().unwrap(), node());
    sim.connect().unwrap();
    sim.opened(1);
    // Nothing goes out before the challenge.
    assert!(sent(&sim.take()).is_empty());
    sim.frame(1, challenge(NONCE));
    let out = sim.take();
    let connect = sent(&out);
    assert_eq!(connect.len(), 1, "{out:?}");
    let connect = &connect[0];
    assert_eq!(connect["type"], "req");
    assert_eq!(connect["method"], "connect");
    assert!(connect["id"].is_string(), "ids are strings");
    let params = &connect["params"];
    assert_eq!(params["minProtocol"], 3);
    assert_eq!(params["maxProtocol"], 4);
    assert_eq!(params["client"]["id"], "node-host");
    assert_eq!(params["client"]["mode"], "node");
    assert_eq!(params["role"], "node");
    assert_eq!(params["scopes"], json!([]));
    assert_eq!(params["commands"], json!(["tether.echo"]));
    assert_eq!(params["caps"], json!([]));
    assert_eq!(params["permissions"], json!({}));
    assert_eq!(params["auth"], json!({"token": TOKEN}));
    let device = &params["device"];
    let id = identity();
    assert_eq!(device["id"], id.id());
    assert_eq!(device["publicKey"], id.public_key());
    assert_eq!(device["signedAt"], TS, "signedAt is the challenge's ts");
    assert_eq!(device["nonce"], NONCE);
    // The signature is over the v3 text and verifies with the public key.
    let platform = std::env::consts::OS.to_ascii_lowercase();
    let signed = format!(
        "v3|{}|node-host|node|node||{TS}|{TOKEN}|{NONCE}|{platform}|",
        id.id()
    );
    let key = URL_SAFE_NO_PAD.decode(id.public_key()).unwrap();
    let signature = URL_SAFE_NO_PAD
        .decode(device["signature"].as_str().unwrap())
        .unwrap();
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
        .verify(signed.as_bytes(), &signature)
        .expect("the v3 signature verifies");
    // The token never prints: not in the commands' Debug, not in the profile's.
    assert!(!format!("{out:?}").contains(TOKEN));
    assert!(!format!("{:?}", sim.client.profile()).contains(TOKEN));
}

#[test]
fn o_hello_ok_is_ready_and_reaches_the_application() {
    let mut sim = sim_with(test_config().build().unwrap(), node());
    sim.connect().unwrap();
    sim.opened(1);
    sim.frame(1, challenge(NONCE));
    sim.take();
    sim.frame(1, hello_ok(30_000, Some("device-token-xyz")));
    let out = sim.take();
    assert!(matches!(
        &out[0],
        support::Out::Ev(E::Ready { resumed: false, .. })
    ));
    let support::Out::Ev(E::Message {
        message: OpenClawMessage::Hello(hello),
        ..
    }) = &out[1]
    else {
        panic!("{out:?}");
    };
    assert_eq!(hello.protocol, 4);
    assert_eq!(hello.server_version, "2026.9.6");
    assert_eq!(hello.methods, ["health", "status"]);
    assert_eq!(hello.policy.tick_interval, secs(30));
    assert_eq!(hello.policy.max_payload, Some(1024));
    assert_eq!(hello.policy.max_buffered_bytes, Some(2048));
    // The device token is kept for the next connect, and never printed.
    assert_eq!(
        sim.client.profile().device_token().map(Token::expose),
        Some("device-token-xyz")
    );
    assert!(!format!("{out:?}").contains("device-token-xyz"));
}

#[test]
fn o_a_kept_device_token_is_the_credential_without_a_shared_token() {
    let profile = OpenClaw::builder(Role::Node, identity())
        .device_token(Token::new("kept-device-token"))
        .build()
        .unwrap();
    let mut sim = sim_with(test_config().build().unwrap(), profile);
    sim.connect().unwrap();
    sim.opened(1);
    sim.frame(1, challenge(NONCE));
    let connect = &sent(&sim.take())[0];
    assert_eq!(
        connect["params"]["auth"],
        json!({"deviceToken": "kept-device-token"})
    );
}

#[test]
fn o_ticks_are_sequenced_per_connection_and_silence_is_a_dead_peer() {
    let mut sim = ready(node(), 1_000);
    for seq in 1..=10 {
        sim.elapse(ms(900));
        sim.frame(1, tick(seq));
    }
    let out = sim.take();
    assert!(protocol_errors(&out).is_empty(), "{out:?}");
    assert_eq!(
        out.iter()
            .filter(|o| matches!(o, support::Out::Ev(E::Message { message: OpenClawMessage::Event(e), .. }) if e.name.as_str() == "tick"))
            .count(),
        10,
        "ticks reach the application with their sequence"
    );
    // A tick that skips one is a real gap.
    sim.frame(1, tick(12));
    assert_eq!(
        protocol_errors(&sim.take()),
        ["event sequence gap: 1 missing before 12"]
    );
    // Ticks stop: two intervals of silence make a dead peer, left with 4000 tick timeout.
    sim.elapse(ms(1999));
    sim.assert_quiet();
    sim.elapse(ms(1));
    assert_eq!(
        sim.take(),
        [
            close(1, 4000, "tick timeout"),
            ev(E::Disconnected {
                conn: c(1),
                reason: Reason::Silent
            })
        ]
    );
    // The next connection starts its sequence afresh.
    sim.closed(1, CloseCause::Dropped);
    sim.next_deadline();
    sim.take();
    handshake(&mut sim, 2, 1_000);
    sim.frame(2, tick(1));
    assert!(protocol_errors(&sim.take()).is_empty());
}

#[test]
fn o_websocket_pings_are_transport_never_protocol_errors() {
    let mut sim = ready(operator(), 1_000);
    sim.elapse(ms(1_500));
    sim.frame(1, Frame::Ping(bytes::Bytes::from_static(b"x")));
    sim.elapse(ms(1_500));
    // The ping showed the peer alive: no dead peer at 2 s.
    assert_eq!(sim.client.state().phase, Phase::Ready);
    assert_eq!(sim.client.stats().protocol_errors, 0);
}

#[test]
fn f06_no_heartbeat_is_sent_the_ticks_are_the_liveness() {
    let mut sim = ready(operator(), 30_000);
    for seq in 1..=10 {
        sim.elapse(secs(30));
        sim.frame(1, tick(seq));
    }
    sim.take();
    assert_eq!(sim.client.stats().heartbeats, 0);
    assert_eq!(sim.client.state().phase, Phase::Ready);
    assert_eq!(
        sim.client.probe(sim.at(0)),
        Err(tether_core::CallError::NoHeartbeat)
    );
}

#[test]
fn o_requests_have_string_ids_and_typed_outcomes() {
    let mut sim = ready(operator(), 30_000);
    let id = sim.request(health(), secs(5)).unwrap();
    assert_eq!(
        sent(&sim.take()),
        [json!({"type": "req", "id": id.get().to_string(), "method": "health", "params": {}})]
    );
    sim.frame(
        1,
        text(
            json!({"type": "res", "id": id.get().to_string(), "ok": false,
                    "error": {"code": "FORBIDDEN", "message": "missing scope",
                              "details": {"code": "MISSING_SCOPE"}}}),
        ),
    );
    assert_eq!(
        outcomes(&sim.take()),
        [(
            id.get(),
            Outcome::Remote(RemoteError {
                code: "FORBIDDEN/MISSING_SCOPE".into(),
                message: "missing scope".into()
            })
        )]
    );
    let ok = sim.request(health(), secs(5)).unwrap();
    sim.frame(
        1,
        text(
            json!({"type": "res", "id": ok.get().to_string(), "ok": true, "payload": {"ok": true}}),
        ),
    );
    assert_eq!(
        outcomes(&sim.take()),
        [(
            ok.get(),
            Outcome::Response(Utf8Bytes::from_static("{\"ok\":true}"))
        )]
    );
    // Timed out, then answered late: one outcome, the late answer counted.
    let late = sim.request(health(), secs(3)).unwrap();
    sim.take();
    sim.elapse(secs(3));
    assert_eq!(outcomes(&sim.take()), [(late.get(), Outcome::TimedOut)]);
    sim.frame(
        1,
        text(json!({"type": "res", "id": late.get().to_string(), "ok": true})),
    );
    assert_eq!(sim.client.stats().stray_responses, 1);
}

#[test]
fn f14_requests_belong_to_their_connection() {
    let mut sim = ready(operator(), 30_000);
    let written = sim.request(health(), secs(60)).unwrap();
    sim.take();
    sim.elapse(secs(11));
    sim.closed(1, CloseCause::Dropped);
    assert_eq!(outcomes(&sim.take()), [(written.get(), Outcome::Unknown)]);
    // Made while reconnecting (at once: the session was stable): queued, written once the
    // next connection is ready.
    assert_eq!(sim.client.state().phase, Phase::Connecting);
    let queued = sim.request(health(), secs(60)).unwrap();
    sim.opened(2);
    sim.frame(2, challenge("n2"));
    assert_eq!(sent(&sim.take())[0]["method"], "connect");
    sim.frame(2, hello_ok(30_000, None));
    assert_eq!(sent(&sim.take())[0]["id"], queued.get().to_string());
    // The old connection's answer arrives on the new one: dropped.
    sim.frame(
        2,
        text(json!({"type": "res", "id": written.get().to_string(), "ok": true})),
    );
    sim.assert_quiet();
    assert_eq!(sim.client.stats().stray_responses, 1);
    // A fast answer on the right connection is never missed.
    sim.frame(
        2,
        text(json!({"type": "res", "id": queued.get().to_string(), "ok": true, "payload": 4})),
    );
    assert_eq!(
        outcomes(&sim.take()),
        [(queued.get(), Outcome::Response(Utf8Bytes::from_static("4")))]
    );
    let last = sim.request(health(), secs(60)).unwrap();
    sim.shutdown();
    let out = sim.take();
    assert_eq!(outcomes(&out), [(last.get(), Outcome::Stopped)]);
}

#[test]
fn o_frames_larger_than_max_payload_are_refused_before_they_are_sent() {
    let mut sim = ready(operator(), 30_000);
    let big = "x".repeat(2_000);
    let refused = sim.send(Frame::text(big.clone())).unwrap_err();
    assert_eq!(refused.kind, SendErrorKind::OverPeerLimit);
    assert_eq!(
        refused.frame,
        Frame::text(big.clone()),
        "the frame comes back"
    );
    let refused = sim
        .request(
            OpenClawRequest::new("chat.send", json!({"text": big})),
            secs(5),
        )
        .unwrap_err();
    assert_eq!(refused.kind, RequestErrorKind::OverPeerLimit);
    assert!(sent(&sim.take()).is_empty(), "nothing was written");
    assert!(sim.request(health(), secs(5)).is_ok());
}

// ---- the table of refused connects, an entry each

fn refused_once(error: Value) -> (Sim<OpenClaw>, Vec<Out>) {
    let mut sim = sim_with(test_config().build().unwrap(), node());
    sim.connect().unwrap();
    sim.opened(1);
    sim.frame(1, challenge(NONCE));
    sim.take();
    sim.frame(1, refused(error));
    let out = sim.take();
    (sim, out)
}

fn reconnect_delay(out: &[Out]) -> Option<Duration> {
    out.iter().find_map(|o| match o {
        support::Out::Ev(E::Reconnecting { delay, .. }) => Some(*delay),
        _ => None,
    })
}

fn drained_after(sim: &mut Sim<OpenClaw>, code: u16) -> Vec<Out> {
    sim.peer_closes(1, code);
    sim.take()
}

#[test]
fn refusal_unavailable_retries_at_the_gateways_hint() {
    let (mut sim, out) = refused_once(json!({"code": "UNAVAILABLE",
        "message": "gateway starting; retry shortly", "retryable": true,
        "retryAfterMs": 4_500, "details": {"reason": "startup-sidecars"}}));
    assert!(
        matches!(&out[0], support::Out::Cmd(Command::Close { .. })),
        "{out:?}"
    );
    // The gateway closes 1013 after it: the drain ends, and the wait is its hint.
    let out = drained_after(&mut sim, 1013);
    assert_eq!(reconnect_delay(&out), Some(ms(4_500)), "{out:?}");
    assert_eq!(sim.client.state().phase, Phase::Backoff);
}

#[test]
fn refusal_pairing_required_is_reported_once_and_retried_slowly() {
    let pairing = json!({"code": "NOT_PAIRED", "message": "pairing required",
        "details": {"code": "PAIRING_REQUIRED", "reason": "not-paired", "requestId": "req-1"}});
    let (mut sim, out) = refused_once(pairing.clone());
    let reported: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            support::Out::Ev(E::Message {
                message: OpenClawMessage::PairingRequired(p),
                ..
            }) => Some(p.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0].request_id.as_deref(), Some("req-1"));
    assert_eq!(reported[0].reason.as_deref(), Some("not-paired"));
    let out = drained_after(&mut sim, 1008);
    let delay = reconnect_delay(&out).unwrap();
    assert!(delay >= secs(10) && delay <= secs(20), "{delay:?}");
    // The same pending request again: not reported again, still slow.
    sim.next_deadline();
    sim.opened(2);
    sim.frame(2, challenge("n2"));
    sim.frame(2, refused(pairing));
    let out = sim.take();
    assert!(
        !out.iter()
            .any(|o| matches!(o, support::Out::Ev(E::Message { .. }))),
        "{out:?}"
    );
    sim.peer_closes(2, 1008);
    assert!(reconnect_delay(&sim.take()).unwrap() >= secs(10));
}

#[test]
fn refusal_bad_credentials_stop_typed() {
    let error = json!({"code": "INVALID_REQUEST", "message": "unauthorized: gateway token mismatch",
        "details": {"code": "AUTH_TOKEN_MISMATCH"}});
    let (mut sim, _) = refused_once(error);
    let out = drained_after(&mut sim, 1008);
    let stopped = out.iter().find_map(|o| match o {
        support::Out::Ev(E::Stopped { reason }) => Some(reason.clone()),
        _ => None,
    });
    assert_eq!(
        stopped,
        Some(StopReason::Refused(RemoteError {
            code: "INVALID_REQUEST/AUTH_TOKEN_MISMATCH".into(),
            message: "unauthorized: gateway token mismatch".into(),
        }))
    );
    assert!(!format!("{out:?}").contains(TOKEN));
}

#[test]
fn refusal_malformed_connect_stops() {
    let (mut sim, _) = refused_once(json!({"code": "INVALID_REQUEST",
        "message": "invalid connect params: must have required property 'minProtocol'"}));
    let out = drained_after(&mut sim, 1008);
    assert!(out.iter().any(|o| matches!(
        o,
        support::Out::Ev(E::Stopped {
            reason: StopReason::Refused(_)
        })
    )));
}

#[test]
fn refusal_stale_nonce_retries_with_a_fresh_challenge() {
    let (mut sim, _) = refused_once(json!({"code": "INVALID_REQUEST",
        "message": "device nonce mismatch", "details": {"code": "DEVICE_AUTH_NONCE_MISMATCH"}}));
    let out = drained_after(&mut sim, 1008);
    assert_eq!(
        reconnect_delay(&out),
        Some(secs(1)),
        "the backoff, not a stop"
    );
}

/// `profile` connects with a device token the gateway refuses; what came out after.
fn device_token_refused(profile: OpenClaw) -> (Sim<OpenClaw>, Vec<Out>) {
    let mut sim = sim_with(test_config().build().unwrap(), profile);
    sim.connect().unwrap();
    sim.opened(1);
    sim.frame(1, challenge(NONCE));
    sim.frame(
        1,
        refused(
            json!({"code": "INVALID_REQUEST", "message": "device token mismatch",
            "details": {"code": "AUTH_DEVICE_TOKEN_MISMATCH"}}),
        ),
    );
    sim.peer_closes(1, 1008);
    let out = sim.take();
    (sim, out)
}

#[test]
fn refusal_of_the_device_token_forgets_it_and_uses_the_shared_token() {
    let builder = || OpenClaw::builder(Role::Node, identity()).device_token(Token::new("revoked"));
    let (sim, out) = device_token_refused(builder().token(Token::new(TOKEN)).build().unwrap());
    assert!(reconnect_delay(&out).is_some());
    assert!(sim.client.profile().device_token().is_none());
    // With nothing else to present, it stops.
    let (_, out) = device_token_refused(builder().build().unwrap());
    assert!(out.iter().any(|o| matches!(
        o,
        support::Out::Ev(E::Stopped {
            reason: StopReason::Refused(_)
        })
    )));
}

// ---- the table of closes, an entry each

fn closed_when_ready(code: u16) -> (Sim<OpenClaw>, Vec<Out>) {
    let mut sim = ready(operator(), 30_000);
    sim.elapse(secs(20));
    sim.peer_closes(1, code);
    let out = sim.take();
    (sim, out)
}

#[test]
fn close_1002_protocol_mismatch_stops() {
    let (_, out) = closed_when_ready(1002);
    assert!(out.iter().any(|o| matches!(
        o,
        support::Out::Ev(E::Stopped { reason: StopReason::Fatal(cause) }) if cause.code() == Some(1002)
    )));
}

#[test]
fn close_1012_restart_waits_for_the_announced_restart() {
    let mut sim = ready(operator(), 30_000);
    sim.elapse(secs(20));
    sim.frame(
        1,
        text(json!({"type": "event", "event": "shutdown",
                    "payload": {"reason": "gateway restarting", "restartExpectedMs": 7_000}, "seq": 1})),
    );
    let out = sim.take();
    assert!(
        matches!(&out[..], [support::Out::Ev(E::Message { message: OpenClawMessage::Event(e), .. })] if e.name.as_str() == "shutdown"),
        "the shutdown event reaches the application: {out:?}"
    );
    sim.peer_closes(1, 1012);
    assert_eq!(reconnect_delay(&sim.take()), Some(secs(7)));
}

#[test]
fn close_1013_1008_and_4001_reconnect() {
    for code in [1013, 1008, 4001, 1006, 1000] {
        let (sim, out) = closed_when_ready(code);
        assert!(reconnect_delay(&out).is_some(), "{code}: {out:?}");
        assert_ne!(sim.client.state().phase, Phase::Stopped, "{code}");
    }
}

// ---- a node's invokes

fn invoke(id: &str, timeout_ms: u64, seq: u64) -> Frame {
    text(
        json!({"type": "event", "event": "node.invoke.request", "seq": seq, "payload": {
        "id": id, "nodeId": "node-a", "command": "tether.echo",
        "paramsJSON": "{\"x\":1}", "timeoutMs": timeout_ms, "idempotencyKey": "k-1"}}),
    )
}

fn calls(
    out: &[Out],
) -> Vec<(
    tether_core::CallId,
    tether_core::protocol::openclaw::NodeInvoke,
)> {
    out.iter()
        .filter_map(|o| match o {
            support::Out::Ev(E::Call {
                id,
                message: OpenClawMessage::Invoke(invoke),
            }) => Some((*id, invoke.clone())),
            _ => None,
        })
        .collect()
}

fn ok(json: &str) -> InvokeAnswer {
    InvokeAnswer::Ok(Some(
        serde_json::value::RawValue::from_string(json.into()).unwrap(),
    ))
}

#[test]
fn o_invokes_reach_the_application_and_are_answered_on_their_connection() {
    let mut sim = ready(node(), 30_000);
    sim.frame(1, invoke("inv-1", 30_000, 1));
    let out = sim.take();
    let invokes = calls(&out);
    assert_eq!(invokes.len(), 1, "{out:?}");
    let (call, request) = &invokes[0];
    assert_eq!(call.conn(), c(1));
    assert_eq!(request.command, "tether.echo");
    assert_eq!(request.params_json.as_deref(), Some("{\"x\":1}"));
    assert_eq!(request.timeout, secs(30));
    assert_eq!(request.idempotency_key.as_deref(), Some("k-1"));
    sim.answer(*call, ok("{\"echo\":1}")).unwrap();
    let written = sent(&sim.take());
    assert_eq!(written.len(), 1);
    assert_eq!(written[0]["method"], "node.invoke.result");
    assert_eq!(
        written[0]["params"],
        json!({"id": "inv-1", "nodeId": "node-a", "ok": true, "payloadJSON": "{\"echo\":1}"})
    );
    // Exactly once.
    assert_eq!(sim.answer(*call, ok("2")), Err(AnswerError::NotPending));
    // The gateway's receipt is consumed quietly; its refusal is reported.
    let answer_id = written[0]["id"].as_str().unwrap().to_owned();
    sim.frame(1, text(json!({"type": "res", "id": answer_id, "ok": true})));
    sim.assert_quiet();
    // An error answer.
    sim.frame(1, invoke("inv-2", 30_000, 2));
    let (call, _) = calls(&sim.take())[0].clone();
    sim.answer(
        call,
        InvokeAnswer::Error {
            code: "UNAVAILABLE".into(),
            message: "camera busy".into(),
        },
    )
    .unwrap();
    let written = sent(&sim.take());
    assert_eq!(
        written[0]["params"],
        json!({"id": "inv-2", "nodeId": "node-a", "ok": false,
               "error": {"code": "UNAVAILABLE", "message": "camera busy"}})
    );
}

#[test]
fn o_an_answer_for_an_ended_connection_is_refused_and_never_written_to_the_next() {
    let mut sim = ready(node(), 30_000);
    sim.frame(1, invoke("inv-1", 30_000, 1));
    let (call, _) = calls(&sim.take())[0].clone();
    sim.elapse(secs(11));
    sim.closed(1, CloseCause::Dropped);
    sim.next_deadline();
    sim.take();
    handshake(&mut sim, 2, 30_000);
    assert_eq!(sim.answer(call, ok("1")), Err(AnswerError::Stale));
    assert!(sent(&sim.take()).is_empty(), "nothing written to conn 2");
    assert_eq!(sim.client.pending_calls(), 0);
    assert_eq!(sim.client.stats().calls_unanswered, 1);
}

#[test]
fn o_an_unanswered_invoke_is_answered_before_the_gateway_gives_up() {
    let mut sim = ready(node(), 30_000);
    sim.frame(1, invoke("inv-9", 5_000, 1));
    let (call, _) = calls(&sim.take())[0].clone();
    // A tenth of the timeout (at most a second) before the gateway's deadline.
    sim.elapse(ms(4_499));
    sim.assert_quiet();
    sim.elapse(ms(1));
    let written = sent(&sim.take());
    assert_eq!(written.len(), 1);
    assert_eq!(written[0]["method"], "node.invoke.result");
    assert_eq!(written[0]["params"]["id"], "inv-9");
    assert_eq!(written[0]["params"]["ok"], false);
    assert_eq!(written[0]["params"]["error"]["code"], "TIMEOUT");
    assert_eq!(sim.answer(call, ok("1")), Err(AnswerError::NotPending));
    assert_eq!(sim.client.stats().calls_unanswered, 1);
}

#[test]
fn o_bad_frames_are_counted_and_reported_never_fatal() {
    let mut sim = ready(operator(), 30_000);
    for bad in [
        "{",
        "{\"type\":\"mystery\"}",
        "{\"type\":\"res\",\"ok\":true}",
        "{\"type\":\"res\",\"id\":7,\"ok\":true}",
        "{\"type\":\"res\",\"id\":\"nobody\",\"ok\":true}",
        "{\"type\":\"event\"}",
        "{\"type\":\"event\",\"event\":\"node.invoke.request\",\"payload\":{}}",
        "{\"type\":\"req\",\"id\":\"1\",\"method\":\"x\"}",
        "{\"type\":\"event\",\"event\":\"connect.challenge\",\"payload\":{\"nonce\":\"again\",\"ts\":1}}",
    ] {
        sim.frame(1, Frame::text(bad.to_owned()));
    }
    sim.frame(1, Frame::binary(vec![1, 2, 3]));
    assert_eq!(sim.client.stats().protocol_errors, 10);
    assert_eq!(sim.client.state().phase, Phase::Ready);
}

#[test]
fn o_a_challenge_without_a_nonce_or_ts_ends_the_connection() {
    let mut sim = sim_with(test_config().build().unwrap(), node());
    sim.connect().unwrap();
    sim.opened(1);
    sim.frame(
        1,
        text(json!({"type": "event", "event": "connect.challenge", "payload": {"nonce": "n"}})),
    );
    let out = sim.take();
    assert!(
        out.iter()
            .any(|o| matches!(o, support::Out::Ev(E::ProtocolError { error, .. }) if error.fatal))
    );
    assert_eq!(sim.client.state().phase, Phase::Draining);
}

#[test]
fn o_the_builder_refuses_what_cannot_work() {
    let refused = |b: tether_core::protocol::openclaw::OpenClawBuilder| b.build().is_err();
    let b = || OpenClaw::builder(Role::Operator, identity());
    assert!(refused(b().protocols(5, 4)));
    assert!(refused(b().protocols(0, 4)));
    assert!(refused(b().pairing_retry(Duration::ZERO, secs(1))));
    assert!(refused(b().pairing_retry(secs(2), secs(1))));
    assert!(refused(b().pairing_retry(secs(1), Duration::MAX)));
    let mut client = ClientInfo::for_role(Role::Operator);
    client.id.clear();
    assert!(refused(b().client(client)));
    assert!(!refused(b()));
}

#[test]
fn f11_no_challenge_within_the_hello_deadline_replaces_the_connection() {
    let mut sim = sim_with(test_config().build().unwrap(), node());
    sim.connect().unwrap();
    sim.opened(1);
    sim.take();
    // The gateway accepted the socket and never challenged: nothing was written, and the
    // hello deadline (5 s here) replaces the connection.
    sim.elapse(ms(4_999));
    sim.assert_quiet();
    sim.elapse(ms(1));
    let out = sim.take();
    assert!(
        out.iter().any(|o| matches!(
            o,
            support::Out::Ev(E::Disconnected {
                reason: Reason::HelloTimeout,
                ..
            })
        )),
        "{out:?}"
    );
    assert!(sent(&out).is_empty(), "no connect without a challenge");
}

#[test]
fn o_calls_beyond_the_bound_are_answered_unanswered_at_once() {
    let config = test_config().max_pending_requests(2).build().unwrap();
    let mut sim = sim_with(config, node());
    sim.connect().unwrap();
    handshake(&mut sim, 1, 30_000);
    for n in 0..5 {
        sim.frame(1, invoke(&format!("inv-{n}"), 30_000, n + 1));
    }
    let out = sim.take();
    assert_eq!(calls(&out).len(), 2, "two wait for the application");
    let refused = sent(&out);
    assert_eq!(refused.len(), 3, "the rest hear at once: {refused:?}");
    assert!(refused.iter().all(|f| f["params"]["ok"] == false));
    assert_eq!(sim.client.pending_calls(), 2);
    assert_eq!(sim.client.stats().calls_unanswered, 3);
}
