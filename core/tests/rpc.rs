//! The rpc profile on the machine, and requests bound to their connection (F14).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Map, Value, json};
use support::*;
use tether_core::{
    CloseCause, Command, Config, Event, Frame, Outcome, Phase, Reason, RemoteError,
    RequestErrorKind, Rpc, RpcMessage, RpcRequest, Utf8Bytes,
};

type E = Event<RpcMessage, Utf8Bytes>;
type Out = support::Out<RpcMessage, Utf8Bytes>;

fn params() -> Map<String, Value> {
    let mut p = Map::new();
    p.insert("client".into(), json!("tests"));
    p.insert("secret".into(), json!("hunter2"));
    p
}

fn rpc() -> Rpc {
    Rpc::builder(params()).build().unwrap()
}

fn sim_with(config: Config, profile: Rpc) -> Sim<Rpc> {
    Sim::new(config, profile)
}

fn sim() -> Sim<Rpc> {
    sim_with(test_config().build().unwrap(), rpc())
}

fn text(v: Value) -> Frame {
    Frame::text(v.to_string())
}

fn welcome(methods: &[&str], tick_ms: Option<u64>) -> Frame {
    let mut payload = json!({ "methods": methods });
    if let Some(ms) = tick_ms {
        payload["tick_interval_ms"] = json!(ms);
    }
    text(json!({"type": "res", "id": "connect", "ok": true, "payload": payload}))
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

/// A client ready on conn 1 whose server advertised `methods`; output taken.
fn ready_sim(methods: &[&str], tick_ms: Option<u64>) -> Sim<Rpc> {
    let mut sim = sim();
    sim.connect().unwrap();
    sim.opened(1);
    sim.frame(1, welcome(methods, tick_ms));
    sim.take();
    sim
}

fn res_ok(id: u64, payload: Value) -> Frame {
    text(json!({"type": "res", "id": id, "ok": true, "payload": payload}))
}

fn sum(a: i64, b: i64) -> RpcRequest {
    RpcRequest::new("sum", json!([a, b]))
}

#[test]
fn r01_challenge_connect_ready() {
    let profile = Rpc::builder(params())
        .expect_challenge(true)
        .build()
        .unwrap();
    let mut sim = sim_with(test_config().build().unwrap(), profile);
    sim.connect().unwrap();
    sim.opened(1);
    sim.take();
    // Nothing goes out before the challenge.
    sim.frame(
        1,
        text(json!({"type": "event", "event": "connect.challenge", "payload": {"nonce": "n-42"}})),
    );
    let out = sim.take();
    assert_eq!(
        sent(&out),
        [json!({"type": "req", "id": "connect", "method": "connect",
                "params": {"client": "tests", "secret": "hunter2", "nonce": "n-42"}})]
    );
    // Credentials never print.
    assert!(!format!("{out:?}").contains("hunter2"));
    sim.frame(1, welcome(&["sum", "ping"], Some(15_000)));
    assert_eq!(
        sim.take(),
        [ev(E::Ready {
            conn: c(1),
            resumed: false
        })]
    );
}

#[test]
fn r01_connect_without_challenge_goes_first() {
    let mut sim = sim();
    sim.connect().unwrap();
    sim.opened(1);
    assert_eq!(sent(&sim.take())[0]["method"], "connect");
    sim.frame(
        1,
        text(json!({"type": "res", "id": "connect", "ok": false,
                    "error": {"code": "UNAUTHORIZED", "message": "bad secret"}})),
    );
    let out = sim.take();
    assert!(
        out.iter()
            .any(|o| matches!(o, support::Out::Ev(E::ProtocolError { error, .. }) if error.fatal))
    );
    assert_eq!(sim.client.state().phase, Phase::Draining);
}

#[test]
fn r02_tick_liveness() {
    let mut sim = ready_sim(&[], Some(1_000));
    for _ in 0..10 {
        sim.elapse(ms(900));
        sim.frame(1, text(json!({"type": "event", "event": "tick"})));
    }
    // Ticks are consumed, not delivered.
    sim.assert_quiet();
    // Ticks stop: two intervals of silence make a zombie.
    sim.elapse(ms(1999));
    sim.assert_quiet();
    sim.elapse(ms(1));
    assert_eq!(
        sim.take(),
        [
            abort(1),
            ev(E::Disconnected {
                conn: c(1),
                reason: Reason::Silent
            })
        ]
    );
    assert_eq!(sim.client.stats().zombies, 1);
}

#[test]
fn r03_remote_error() {
    let mut sim = ready_sim(&["sum"], None);
    let id = sim.request(sum(1, 2), secs(5)).unwrap();
    assert_eq!(
        sent(&sim.take()),
        [json!({"type": "req", "id": id.get(), "method": "sum", "params": [1, 2]})]
    );
    sim.frame(
        1,
        text(json!({"type": "res", "id": id.get(), "ok": false,
                    "error": {"code": 400, "message": "overflow"}})),
    );
    assert_eq!(
        outcomes(&sim.take()),
        [(
            id.get(),
            Outcome::Remote(RemoteError {
                code: "400".into(),
                message: "overflow".into()
            })
        )]
    );
    let ok = sim.request(sum(2, 3), secs(5)).unwrap();
    sim.frame(1, res_ok(ok.get(), json!(5)));
    assert_eq!(
        outcomes(&sim.take()),
        [(ok.get(), Outcome::Response(Utf8Bytes::from_static("5")))]
    );
}

#[test]
fn r04_request_timeout() {
    let mut sim = ready_sim(&["sum"], None);
    let id = sim.request(sum(1, 2), secs(3)).unwrap();
    sim.take();
    sim.elapse(ms(2999));
    sim.assert_quiet();
    sim.elapse(ms(1));
    assert_eq!(outcomes(&sim.take()), [(id.get(), Outcome::TimedOut)]);
    // The answer after the timeout is dropped and counted: exactly one outcome.
    sim.frame(1, res_ok(id.get(), json!(3)));
    sim.assert_quiet();
    assert_eq!(sim.client.stats().stray_responses, 1);
    assert_eq!(sim.client.pending_requests(), 0);
}

#[test]
fn f06_app_ping_only_when_advertised() {
    // The server did not advertise ping: none is ever sent, and nobody is judged by it.
    let mut sim = ready_sim(&["sum"], None);
    sim.elapse(secs(300));
    sim.assert_quiet();
    assert_eq!(sim.client.state().phase, Phase::Ready);
    assert_eq!(sim.client.stats().heartbeats, 0);

    // Advertised: pings go out and their answers keep the connection.
    let mut sim = ready_sim(&["sum", "ping"], None);
    sim.next_deadline();
    let ping = sent(&sim.take());
    assert_eq!(
        ping,
        [json!({"type": "req", "id": "ping-1", "method": "ping"})]
    );
    sim.frame(1, text(json!({"type": "res", "id": "ping-1", "ok": true})));
    sim.elapse(secs(30));
    assert_eq!(sent(&sim.take())[0]["id"], "ping-2");
    assert_eq!(sim.client.stats().zombies, 0);

    // Demanded by the application: sent even though not advertised.
    let profile = Rpc::builder(params()).force_ping(true).build().unwrap();
    let mut sim = sim_with(test_config().build().unwrap(), profile);
    sim.connect().unwrap();
    sim.opened(1);
    sim.frame(1, welcome(&[], None));
    sim.take();
    sim.next_deadline();
    assert_eq!(sent(&sim.take())[0]["method"], "ping");
}

#[test]
fn f14_requests_belong_to_their_connection() {
    let mut sim = ready_sim(&["sum"], None);
    // Written on conn 1, then conn 1 drops: outcome unknown.
    let written = sim.request(sum(1, 1), secs(30)).unwrap();
    sim.take();
    sim.elapse(secs(11));
    sim.closed(1, CloseCause::Dropped);
    let out = sim.take();
    assert_eq!(outcomes(&out), [(written.get(), Outcome::Unknown)]);

    // Made while connecting: registered and queued, written after ready.
    let queued = sim.request(sum(2, 2), secs(30)).unwrap();
    sim.opened(2);
    assert_eq!(sent(&sim.take())[0]["method"], "connect");
    sim.frame(2, welcome(&["sum"], None));
    let out = sim.take();
    assert_eq!(sent(&out)[0]["id"], queued.get());

    // The old connection's answer to the first request arrives on the new one: dropped.
    sim.frame(2, res_ok(written.get(), json!(2)));
    sim.assert_quiet();
    assert_eq!(sim.client.stats().stray_responses, 1);
    // A fast answer on the right connection is never missed.
    sim.frame(2, res_ok(queued.get(), json!(4)));
    assert_eq!(
        outcomes(&sim.take()),
        [(queued.get(), Outcome::Response(Utf8Bytes::from_static("4")))]
    );

    // Made before ready, and the connection ends before ready: it was never sent.
    sim.elapse(secs(11));
    sim.closed(2, CloseCause::Dropped);
    let never = sim.request(sum(3, 3), secs(30)).unwrap();
    sim.opened(3);
    sim.take();
    sim.peer_closes(3, 1011);
    assert_eq!(outcomes(&sim.take()), [(never.get(), Outcome::NotSent)]);

    // At shutdown, what is still pending ends Stopped.
    let last = sim.request(sum(4, 4), secs(30)).unwrap();
    sim.shutdown();
    assert_eq!(outcomes(&sim.take()), [(last.get(), Outcome::Stopped)]);
    assert_eq!(sim.client.pending_requests(), 0);
}

#[test]
fn f14_requests_can_be_refused_before_ready() {
    let config = test_config()
        .requests_wait_for_ready(false)
        .max_pending_requests(1)
        .build()
        .unwrap();
    let mut sim = sim_with(config, rpc());
    sim.connect().unwrap();
    let refused = sim.request(sum(1, 1), secs(1)).unwrap_err();
    assert_eq!(refused.kind, RequestErrorKind::NotReady);
    sim.opened(1);
    sim.frame(1, welcome(&[], None));
    sim.request(sum(1, 1), secs(1)).unwrap();
    let too_many = sim.request(sum(1, 1), secs(1)).unwrap_err();
    assert_eq!(too_many.kind, RequestErrorKind::TooMany);
}

#[test]
fn events_are_delivered_with_raw_payloads_and_sequence_checked() {
    let mut sim = ready_sim(&[], None);
    sim.frame(
        1,
        text(json!({"type": "event", "event": "price", "payload": {"px": 101.5}, "seq": 1})),
    );
    sim.frame(
        1,
        text(json!({"type": "event", "event": "price", "payload": {"px": 101.7}, "seq": 1})),
    );
    let out = sim.take();
    let support::Out::Ev(E::Message {
        message: RpcMessage::Event(message),
        ..
    }) = &out[0]
    else {
        panic!("{out:?}");
    };
    assert_eq!(message.name.as_str(), "price");
    assert_eq!(message.payload.as_str(), "{\"px\":101.5}");
    assert!(matches!(&out[1], support::Out::Ev(E::ProtocolError { .. })));
    assert_eq!(out.len(), 2);
}

#[test]
fn bad_frames_are_counted_and_reported() {
    let mut sim = ready_sim(&[], None);
    for bad in [
        "{",
        "{\"type\":\"mystery\"}",
        "{\"type\":\"res\",\"ok\":true}",
        "{\"type\":\"res\",\"id\":\"nobody\",\"ok\":true}",
        "{\"type\":\"event\"}",
        "{\"type\":\"res\",\"id\":99999999999999999999999,\"ok\":true}",
    ] {
        sim.frame(1, Frame::text(bad.to_owned()));
    }
    sim.frame(1, Frame::binary(vec![1, 2, 3]));
    assert_eq!(sim.client.stats().protocol_errors, 7);
    assert_eq!(sim.client.state().phase, Phase::Ready);
}

#[test]
fn server_calls_reach_the_application_and_are_answered_on_their_connection() {
    let mut sim = ready_sim(&[], None);
    sim.frame(
        1,
        text(json!({"type": "req", "id": 7, "method": "status", "params": {"verbose": true}})),
    );
    let out = sim.take();
    let support::Out::Ev(E::Message {
        message: RpcMessage::Call(call),
        ..
    }) = &out[0]
    else {
        panic!("{out:?}");
    };
    assert_eq!(call.method.as_str(), "status");
    assert_eq!(call.params.as_str(), "{\"verbose\":true}");
    let payload = serde_json::value::RawValue::from_string("{\"up\":true}".into()).unwrap();
    let Frame::Text(reply) = call.reply(&payload) else {
        panic!("a reply is text");
    };
    let reply: Value = serde_json::from_str(reply.as_str()).unwrap();
    assert_eq!(
        reply,
        json!({"type": "res", "id": 7, "ok": true, "payload": {"up": true}})
    );
    let Frame::Text(error) = call.reply_error("BUSY", "later") else {
        panic!("an error reply is text");
    };
    let error: Value = serde_json::from_str(error.as_str()).unwrap();
    assert_eq!(error["error"], json!({"code": "BUSY", "message": "later"}));
    // A call without a method is a protocol error, not a message.
    sim.frame(1, text(json!({"type": "req", "id": 8})));
    let out = sim.take();
    assert!(
        matches!(&out[..], [support::Out::Ev(E::ProtocolError { .. })]),
        "{out:?}"
    );
}
