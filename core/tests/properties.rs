//! Random sequences of inputs, user calls and time steps, with the invariant checker run
//! after every step (I1 to I5, I7, I8) and nothing allowed to panic. Stale, unknown and
//! future `ConnId`s, duplicate opens and closes, random frames and every user call in
//! every state are all in the mix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use proptest::prelude::*;
use support::hello_profile::HelloProfile;
use support::*;
use tether_core::protocol::openclaw::{
    DeviceIdentity, InvokeAnswer, OpenClaw, OpenClawRequest, Role,
};
use tether_core::{
    CloseCause, CloseFrame, Frame, Input, OpenError, OpenErrorKind, Protocol, ReconnectMode,
    TransportErrorKind,
};

#[derive(Debug, Clone)]
enum Conn {
    /// The generation the machine is about now (or 0 when none).
    Current,
    /// The newest generation ever issued.
    Newest,
    /// An older generation.
    Older(u8),
    /// A generation not issued yet.
    Future(u8),
}

#[derive(Debug, Clone)]
enum Op {
    Connect,
    Reconnect(bool),
    Shutdown,
    Send(u8, Option<u16>),
    Probe,
    Opened(Conn),
    OpenFailed(Conn, u8, Option<u16>),
    Frame(Conn, u8),
    Closed(Conn, u8),
    Elapse(u32),
    Jump(u32),
    Backwards(Conn, u16),
    Request(u8, u16),
    Grant(Conn),
    /// Answer one of the calls the machine surfaced (stale, answered or not).
    Answer(u8),
}

fn conn() -> impl Strategy<Value = Conn> {
    prop_oneof![
        4 => Just(Conn::Current),
        2 => Just(Conn::Newest),
        2 => (1u8..4).prop_map(Conn::Older),
        1 => (1u8..3).prop_map(Conn::Future),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Connect),
        2 => any::<bool>().prop_map(Op::Reconnect),
        1 => Just(Op::Shutdown),
        3 => (any::<u8>(), proptest::option::of(0u16..3000)).prop_map(|(n, t)| Op::Send(n, t)),
        1 => Just(Op::Probe),
        5 => conn().prop_map(Op::Opened),
        2 => (conn(), any::<u8>(), proptest::option::of(0u16..20_000))
            .prop_map(|(c, k, r)| Op::OpenFailed(c, k, r)),
        8 => (conn(), any::<u8>()).prop_map(|(c, f)| Op::Frame(c, f)),
        3 => (conn(), any::<u8>()).prop_map(|(c, k)| Op::Closed(c, k)),
        6 => (0u32..40_000).prop_map(Op::Elapse),
        1 => (0u32..120_000).prop_map(Op::Jump),
        1 => (conn(), any::<u16>()).prop_map(|(c, d)| Op::Backwards(c, d)),
        2 => (any::<u8>(), 0u16..20_000).prop_map(|(n, t)| Op::Request(n, t)),
        1 => conn().prop_map(Op::Grant),
        2 => any::<u8>().prop_map(Op::Answer),
    ]
}

fn net() -> impl Strategy<Value = Net> {
    let delay = || proptest::option::of((0u64..3000).prop_map(Duration::from_millis));
    (delay(), delay(), delay()).prop_map(|(open_after, close_echo_after, abort_confirm_after)| {
        Net {
            open_after,
            close_echo_after,
            abort_confirm_after,
        }
    })
}

fn resolve<P: Protocol>(sim: &Sim<P>, conn: &Conn) -> tether_core::ConnId
where
    P::Message: std::fmt::Debug + Clone,
    P::Response: std::fmt::Debug + Clone,
{
    let newest = sim.newest_conn();
    let n = match conn {
        Conn::Current => sim.client.state().conn.map_or(0, |c| c.get()),
        Conn::Newest => newest,
        Conn::Older(back) => newest.saturating_sub(u64::from(*back)),
        Conn::Future(ahead) => newest + u64::from(*ahead),
    };
    c(n)
}

const HELLO_TEXTS: [&str; 13] = [
    "hello",
    "hello:700",
    "ready",
    "resumed",
    "ack",
    "beat?",
    "reconnect",
    "invalid:true",
    "invalid:false",
    "bad",
    "hello:x",
    "a message",
    "broken",
];

fn frame(selector: u8) -> Frame {
    match selector % 16 {
        0..=11 => Frame::text(HELLO_TEXTS[usize::from(selector % 13)]),
        12 => Frame::binary(vec![selector; usize::from(selector)]),
        13 => Frame::Ping(bytes::Bytes::from_static(b"peer")),
        // Pongs with low counters: some match the outstanding beat, most do not.
        _ => pong(u64::from(selector % 4)),
    }
}

fn open_error(kind: u8, retry_ms: Option<u16>) -> OpenError {
    let kind = match kind % 6 {
        0 => OpenErrorKind::Io,
        1 => OpenErrorKind::Tls,
        2 => OpenErrorKind::Http { status: 503 },
        3 => OpenErrorKind::Http { status: 401 },
        4 => OpenErrorKind::Protocol,
        _ => OpenErrorKind::Aborted,
    };
    let error = OpenError::new(kind, "generated");
    match retry_ms {
        Some(ms) => error.with_retry_after(Duration::from_millis(u64::from(ms))),
        None => error,
    }
}

fn close_cause(kind: u8) -> CloseCause {
    match kind % 8 {
        0 => CloseCause::Dropped,
        1 => CloseCause::Aborted,
        2 => CloseCause::Error {
            kind: TransportErrorKind::MessageTooBig,
            detail: "big".into(),
        },
        3 => CloseCause::Frame(CloseFrame::new(4004, "fatal for hello")),
        4 => CloseCause::Frame(CloseFrame::new(4007, "fresh for hello")),
        5 => CloseCause::Frame(CloseFrame::new(1000, "")),
        6 => CloseCause::Frame(CloseFrame::new(1001, "")),
        _ => CloseCause::Frame(CloseFrame::new(4000, "")),
    }
}

/// What a profile needs from the generator: its frames, and its requests and answers if
/// it has any.
struct Profile<P: Protocol> {
    frame: fn(u8) -> Frame,
    request: Option<fn(u8) -> P::Request>,
    answer: Option<fn(u8) -> P::Answer>,
}

fn run<P: Protocol>(mut sim: Sim<P>, ops: Vec<Op>, profile: &Profile<P>)
where
    P::Message: std::fmt::Debug + Clone,
    P::Response: std::fmt::Debug + Clone,
{
    for op in ops {
        match op {
            Op::Connect => {
                let _ = sim.connect();
            }
            Op::Reconnect(fresh) => {
                let mode = if fresh {
                    ReconnectMode::Fresh
                } else {
                    ReconnectMode::Resume
                };
                let _ = sim.reconnect(mode);
            }
            Op::Shutdown => sim.shutdown(),
            Op::Send(n, ttl) => {
                let frame = Frame::binary(vec![n; usize::from(n % 64)]);
                let sent = match ttl {
                    Some(ms) => sim.send_with_ttl(frame, Duration::from_millis(u64::from(ms))),
                    None => sim.send(frame),
                };
                if let Err(e) = sent {
                    assert_eq!(
                        e.frame.len(),
                        usize::from(n % 64),
                        "refused frames come back whole"
                    );
                }
            }
            Op::Probe => {
                let _ = sim.probe();
            }
            Op::Opened(target) => {
                let conn = resolve(&sim, &target);
                sim.input(Input::Opened { conn });
            }
            Op::OpenFailed(target, kind, retry) => {
                let conn = resolve(&sim, &target);
                sim.input(Input::OpenFailed {
                    conn,
                    error: open_error(kind, retry),
                });
            }
            Op::Frame(target, selector) => {
                let conn = resolve(&sim, &target);
                sim.input(Input::Frame {
                    conn,
                    frame: (profile.frame)(selector),
                });
            }
            Op::Closed(target, kind) => {
                let conn = resolve(&sim, &target);
                sim.input(Input::Closed {
                    conn,
                    cause: close_cause(kind),
                });
            }
            Op::Elapse(ms) => sim.elapse(Duration::from_millis(u64::from(ms))),
            Op::Jump(ms) => sim.jump(Duration::from_millis(u64::from(ms))),
            Op::Backwards(target, ms) => {
                let conn = resolve(&sim, &target);
                let at = sim.now - Duration::from_millis(u64::from(ms));
                sim.input_stamped(
                    Input::Frame {
                        conn,
                        frame: (profile.frame)(ms as u8),
                    },
                    at,
                );
                sim.timeout();
            }
            Op::Request(n, timeout_ms) => {
                if let Some(make) = profile.request {
                    let _ = sim.request(make(n), Duration::from_millis(u64::from(timeout_ms)));
                }
            }
            Op::Grant(target) => {
                let conn = resolve(&sim, &target);
                sim.input(Input::StartGranted { conn });
            }
            Op::Answer(k) => {
                let (Some(make), false) = (profile.answer, sim.calls.is_empty()) else {
                    continue;
                };
                let call = sim.calls[usize::from(k) % sim.calls.len()];
                let live = sim.client.state().conn == Some(call.conn())
                    && matches!(
                        sim.client.state().phase,
                        tether_core::Phase::Handshaking | tether_core::Phase::Ready
                    );
                // An answer is written only on the connection that carried the call.
                if sim.answer(call, make(k)) == Err(tether_core::AnswerError::Stale) {
                    assert!(!live, "a live call refused as stale");
                }
            }
        }
    }
    // Whatever happened, a shutdown always ends the machine within bounded time.
    sim.shutdown();
    sim.elapse(Duration::from_secs(30));
    assert_eq!(sim.client.state().phase, tether_core::Phase::Stopped);
    assert_eq!(sim.client.poll_timeout(), None);
}

fn small_config(seed: u64, jitter: bool) -> tether_core::Config {
    test_config()
        .seed(seed)
        .start_gate(seed % 3 == 0)
        .max_pending_requests(6)
        .backoff_jitter(if jitter { 1.0 } else { 0.0 })
        .first_retry_window(Duration::from_millis(800))
        .queue_max_frames(8)
        .queue_max_bytes(256)
        .build()
        .unwrap()
}

fn discord_frame(selector: u8) -> Frame {
    let seq = u64::from(selector % 7);
    let text = match selector % 14 {
        0 => r#"{"op":10,"d":{"heartbeat_interval":900}}"#.to_owned(),
        1 => format!(
            r#"{{"op":0,"s":{seq},"t":"READY","d":{{"session_id":"s{seq}","resume_gateway_url":"wss://r"}}}}"#
        ),
        2 => format!(r#"{{"op":0,"s":{seq},"t":"RESUMED","d":null}}"#),
        3 | 4 => format!(r#"{{"op":0,"s":{seq},"t":"MESSAGE_CREATE","d":{{"n":{selector}}}}}"#),
        5 | 6 => r#"{"op":11}"#.to_owned(),
        7 => r#"{"op":1,"d":null}"#.to_owned(),
        8 => r#"{"op":7,"d":null}"#.to_owned(),
        9 => r#"{"op":9,"d":true}"#.to_owned(),
        10 => r#"{"op":9,"d":false}"#.to_owned(),
        11 => r#"{"op":10,"d":{"heartbeat_interval":0}}"#.to_owned(),
        12 => return Frame::binary(vec![selector; 3]),
        _ => "{not json".to_owned(),
    };
    Frame::text(text)
}

fn openclaw_frame(selector: u8) -> Frame {
    let id = selector % 5;
    let text = match selector % 20 {
        0 => r#"{"type":"res","id":"connect","ok":true,"payload":{"type":"hello-ok","protocol":4,"server":{"version":"p"},"features":{"methods":[],"events":[]},"snapshot":{},"auth":{"role":"node","scopes":[]},"policy":{"maxPayload":200,"maxBufferedBytes":400,"tickIntervalMs":700}}}"#.to_owned(),
        1 => r#"{"type":"res","id":"connect","ok":true,"payload":{"type":"hello-ok","protocol":3}}"#.to_owned(),
        2 => r#"{"type":"res","id":"connect","ok":false,"error":{"code":"UNAVAILABLE","message":"starting","retryAfterMs":900}}"#.to_owned(),
        3 => r#"{"type":"res","id":"connect","ok":false,"error":{"code":"NOT_PAIRED","message":"p","details":{"code":"PAIRING_REQUIRED","requestId":"r"}}}"#.to_owned(),
        4 => r#"{"type":"res","id":"connect","ok":false,"error":{"code":"INVALID_REQUEST","message":"bad","details":{"code":"AUTH_TOKEN_MISMATCH"}}}"#.to_owned(),
        5 | 6 => format!(r#"{{"type":"res","id":"{id}","ok":true,"payload":{selector}}}"#),
        7 => format!(r#"{{"type":"res","id":"{id}","ok":false,"error":{{"code":"E","message":"m"}}}}"#),
        8 => format!(r#"{{"type":"event","event":"tick","payload":{{"ts":1}},"seq":{id}}}"#),
        9 => format!(r#"{{"type":"event","event":"e","payload":[{id}],"seq":{id}}}"#),
        10 => r#"{"type":"event","event":"connect.challenge","payload":{"nonce":"x","ts":5}}"#.to_owned(),
        11 => return Frame::Ping(bytes::Bytes::from_static(b"p")),
        12 => format!(r#"{{"type":"event","event":"node.invoke.request","payload":{{"id":"i{id}","nodeId":"n","command":"c","timeoutMs":{}}},"seq":{id}}}"#, u32::from(selector) * 40),
        13 => r#"{"type":"event","event":"shutdown","payload":{"restartExpectedMs":1500}}"#.to_owned(),
        14 => format!(r#"{{"type":"res","id":"answer-{id}","ok":false,"error":{{"code":"E","message":"m"}}}}"#),
        15 => r#"{"type":"res","id":"1"}"#.to_owned(),
        16 => return Frame::binary(vec![selector; 3]),
        _ => "]".to_owned(),
    };
    Frame::text(text)
}

fn discord_profile() -> tether_core::Discord {
    let identify = tether_core::Identify::new(tether_core::Token::new("t"), 1);
    tether_core::Discord::builder(identify).build().unwrap()
}

fn openclaw_profile(role: bool) -> OpenClaw {
    let role = if role { Role::Node } else { Role::Operator };
    OpenClaw::builder(role, DeviceIdentity::from_seed([5; 32]).unwrap())
        .token(tether_core::Token::new("t"))
        .build()
        .unwrap()
}

fn openclaw_answer(selector: u8) -> InvokeAnswer {
    if selector % 3 == 0 {
        InvokeAnswer::Error {
            code: "E".into(),
            message: "m".into(),
        }
    } else {
        let payload = "x".repeat(usize::from(selector));
        InvokeAnswer::Ok(serde_json::value::RawValue::from_string(format!("\"{payload}\"")).ok())
    }
}

const PLAIN: Profile<tether_core::Plain> = Profile {
    frame,
    request: None,
    answer: None,
};
const HELLO: Profile<HelloProfile> = Profile {
    frame,
    request: None,
    answer: None,
};
const DISCORD: Profile<tether_core::Discord> = Profile {
    frame: discord_frame,
    request: None,
    answer: None,
};
const OPENCLAW: Profile<OpenClaw> = Profile {
    frame: openclaw_frame,
    request: Some(|n| OpenClawRequest::new("m", serde_json::json!(n))),
    answer: Some(openclaw_answer),
};

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 10_000,
        max_shrink_iters: 10_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn plain_machine_keeps_its_invariants(
        seed in any::<u64>(),
        jitter in any::<bool>(),
        net in net(),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let mut sim = Sim::new(small_config(seed, jitter), plain_beating());
        sim.net = net;
        run(sim, ops, &PLAIN);
    }

    #[test]
    fn hello_machine_keeps_its_invariants(
        seed in any::<u64>(),
        jitter in any::<bool>(),
        net in net(),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let mut sim = Sim::new(small_config(seed, jitter), HelloProfile::default());
        sim.net = net;
        run(sim, ops, &HELLO);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 5_000,
        max_shrink_iters: 10_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn discord_machine_keeps_its_invariants(
        seed in any::<u64>(),
        jitter in any::<bool>(),
        net in net(),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let mut sim = Sim::new(small_config(seed, jitter), discord_profile());
        sim.net = net;
        run(sim, ops, &DISCORD);
    }

    #[test]
    fn openclaw_machine_keeps_its_invariants(
        seed in any::<u64>(),
        jitter in any::<bool>(),
        node in any::<bool>(),
        net in net(),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let mut sim = Sim::new(small_config(seed, jitter), openclaw_profile(node));
        sim.net = net;
        run(sim, ops, &OPENCLAW);
    }
}
