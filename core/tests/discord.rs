//! The discord profile on the machine: a virtual clock, frames written by hand.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;
use tether_core::protocol::CloseClass;
use tether_core::protocol::discord::{CLOSE_CODES, close_class};
use tether_core::{
    CloseCause, Command, Config, Discord, DiscordSession, Dispatch, Endpoint, Event, Frame,
    Identify, Phase, ProtocolError, RateLimit, Reason, ReturnReason, SendOptions, StopReason,
    Token,
};

type E = Event<Dispatch>;
type Out = support::Out<Dispatch>;

const TOKEN: &str = "Bot sekrit.t0ken.value";

fn identify() -> Identify {
    Identify::new(Token::new(TOKEN), 513).shard(0, 1)
}

fn discord() -> Discord {
    Discord::builder(identify()).build().unwrap()
}

fn sim_with(config: Config, profile: Discord) -> Sim<Discord> {
    Sim::new(config, profile)
}

fn sim() -> Sim<Discord> {
    sim_with(test_config().build().unwrap(), discord())
}

fn hello(ms: u64) -> Frame {
    Frame::text(json!({"op": 10, "d": {"heartbeat_interval": ms}}).to_string())
}

fn dispatch(seq: u64, name: &str, d: Value) -> Frame {
    Frame::text(json!({"op": 0, "s": seq, "t": name, "d": d}).to_string())
}

fn ready_frame(seq: u64) -> Frame {
    dispatch(
        seq,
        "READY",
        json!({"v": 10, "session_id": "sess-1", "resume_gateway_url": "wss://resume.example"}),
    )
}

fn op(op: u64, d: Value) -> Frame {
    Frame::text(json!({"op": op, "d": d}).to_string())
}

/// The reasons of every protocol error reported, in order.
fn protocol_errors(out: &[Out]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            support::Out::Ev(E::ProtocolError { error, .. }) => Some(error.reason.to_string()),
            _ => None,
        })
        .collect()
}

/// The JSON of every frame sent, in order.
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

fn opens(out: &[Out]) -> Vec<Endpoint> {
    out.iter()
        .filter_map(|o| match o {
            support::Out::Cmd(Command::Open { endpoint, .. }) => Some(endpoint.clone()),
            _ => None,
        })
        .collect()
}

/// A client ready on conn 1, session `sess-1`, sequence 1; output taken.
fn ready_sim() -> Sim<Discord> {
    let mut sim = sim();
    sim.connect().unwrap();
    sim.opened(1);
    sim.frame(1, hello(45_000));
    sim.frame(1, ready_frame(1));
    sim.take();
    sim
}

/// Drops conn `n` with `cause` after it has been ready a while, and opens the next.
fn drop_and_reopen(sim: &mut Sim<Discord>, n: u64) -> Vec<Out> {
    sim.elapse(secs(11));
    sim.closed(n, CloseCause::Dropped);
    sim.opened(n + 1);
    sim.frame(n + 1, hello(45_000));
    sim.take()
}

#[test]
fn d01_identify_then_ready() {
    let mut sim = sim();
    sim.connect().unwrap();
    sim.opened(1);
    // Nothing is written before the hello.
    assert_eq!(
        sim.take(),
        [
            open(1),
            ev(E::Connecting {
                conn: c(1),
                attempt: 1
            })
        ]
    );
    sim.frame(1, hello(41_250));
    let out = sim.take();
    let identify = &sent(&out)[0];
    assert_eq!(identify["op"], 2);
    assert_eq!(identify["d"]["token"], TOKEN);
    assert_eq!(identify["d"]["intents"], 513);
    assert_eq!(identify["d"]["shard"], json!([0, 1]));
    assert_eq!(identify["d"]["properties"]["browser"], "tether");

    sim.frame(1, ready_frame(1));
    let out = sim.take();
    assert_eq!(
        out[0],
        ev(E::Ready {
            conn: c(1),
            resumed: false
        })
    );
    let support::Out::Ev(E::Message { message, .. }) = &out[1] else {
        panic!("{out:?}");
    };
    assert_eq!(message.name.as_str(), "READY");
    assert_eq!(message.seq, 1);
    #[derive(serde::Deserialize)]
    struct Ready {
        session_id: String,
    }
    assert_eq!(message.deserialize::<Ready>().unwrap().session_id, "sess-1");
    assert_eq!(
        sim.client.profile().session(),
        Some(DiscordSession {
            session_id: "sess-1".into(),
            sequence: Some(1),
            resume_url: Some("wss://resume.example".into())
        })
    );
}

#[test]
fn d02_resume_after_zombie() {
    let mut sim = ready_sim();
    sim.frame(1, dispatch(2, "MESSAGE_CREATE", json!({"content": "hi"})));
    sim.elapse(secs(11));
    // Beats until one goes unacknowledged.
    sim.next_deadline();
    let beat = sent(&sim.take());
    assert_eq!(beat, [json!({"op": 1, "d": 2})]);
    sim.elapse(secs(45));
    let out = sim.take();
    assert!(out.contains(&abort(1)));
    assert!(out.contains(&ev(E::Disconnected {
        conn: c(1),
        reason: Reason::Zombie
    })));
    sim.closed(1, CloseCause::Aborted);
    let out = sim.take();
    assert_eq!(opens(&out), [Endpoint::Url("wss://resume.example".into())]);
    assert!(out.contains(&ev(E::Reconnecting {
        delay: Duration::ZERO,
        attempt: 1,
        resume: true,
        reason: Reason::Zombie
    })));
    sim.opened(2);
    sim.frame(2, hello(45_000));
    assert_eq!(
        sent(&sim.take()),
        [json!({"op": 6, "d": {"token": TOKEN, "session_id": "sess-1", "seq": 2}})]
    );
    sim.frame(2, dispatch(3, "RESUMED", json!(null)));
    assert_eq!(
        sim.take()[0],
        ev(E::Ready {
            conn: c(2),
            resumed: true
        })
    );
    assert_eq!(sim.client.stats().resumed, 1);
}

#[test]
fn f12_discord_zombie_resumes_with_last_seq() {
    let mut sim = ready_sim();
    for seq in 2..=5 {
        sim.frame(1, dispatch(seq, "TYPING_START", json!({})));
    }
    sim.take();
    sim.next_deadline();
    assert_eq!(sent(&sim.take()), [json!({"op": 1, "d": 5})]);
    sim.next_deadline();
    assert_eq!(sim.take()[0], abort(1));
    assert_eq!(sim.client.stats().zombies, 1);
    sim.closed(1, CloseCause::Aborted);
    sim.elapse(secs(2));
    sim.opened(2);
    sim.frame(2, hello(45_000));
    let resume = sent(&sim.take());
    assert_eq!(resume[0]["op"], 6);
    assert_eq!(resume[0]["d"]["seq"], 5);
}

#[test]
fn d03_invalid_session_fresh_after_wait() {
    let mut sim = ready_sim();
    sim.elapse(secs(11));
    sim.frame(1, op(9, json!(false)));
    let out = sim.take();
    assert_eq!(out[0], close(1, 1000, "new session"));
    assert_eq!(sim.client.profile().session(), None);
    sim.peer_closes(1, 1000);
    let out = sim.take();
    let support::Out::Ev(E::Reconnecting { delay, resume, .. }) = &out[0] else {
        panic!("{out:?}");
    };
    assert!((secs(1)..=secs(5)).contains(delay), "{delay:?}");
    assert!(!resume);
    sim.elapse(*delay);
    assert_eq!(opens(&sim.take()), [Endpoint::Primary]);
    sim.opened(2);
    sim.frame(2, hello(45_000));
    assert_eq!(sent(&sim.take())[0]["op"], 2);
}

#[test]
fn d04_invalid_session_resumable() {
    let mut sim = ready_sim();
    sim.elapse(secs(11));
    sim.frame(1, op(9, json!(true)));
    assert_eq!(sim.take()[0], close(1, 4000, "resuming"));
    assert!(sim.client.profile().session().is_some());
    sim.peer_closes(1, 4000);
    sim.elapse(secs(1));
    sim.opened(2);
    sim.frame(2, hello(45_000));
    assert_eq!(sent(&sim.take())[0]["op"], 6);
}

#[test]
fn d05_reconnect_opcode() {
    let mut sim = ready_sim();
    sim.elapse(secs(11));
    sim.frame(1, op(7, json!(null)));
    // The close that means to resume never uses 1000 or 1001.
    assert_eq!(
        sim.take(),
        [
            close(1, 4000, "resuming"),
            ev(E::Disconnected {
                conn: c(1),
                reason: Reason::ServerReconnect
            })
        ]
    );
    sim.peer_closes(1, 4000);
    let out = sim.take();
    assert_eq!(opens(&out), [Endpoint::Url("wss://resume.example".into())]);
    sim.opened(2);
    sim.frame(2, hello(45_000));
    assert_eq!(sent(&sim.take())[0]["op"], 6);
}

#[test]
fn d06_fatal_close_codes_stop() {
    for code in [4004, 4010, 4011, 4012, 4013, 4014] {
        let mut sim = ready_sim();
        sim.peer_closes(1, code);
        let cause = CloseCause::Frame(tether_core::CloseFrame::new(code, ""));
        assert_eq!(
            sim.take(),
            [
                ev(E::Disconnected {
                    conn: c(1),
                    reason: Reason::Closed(cause.clone())
                }),
                ev(E::Stopped {
                    reason: StopReason::Fatal(cause)
                })
            ],
            "{code}"
        );
        sim.elapse(secs(120));
        sim.assert_quiet();
    }
}

#[test]
fn d07_fresh_close_codes_clear_session() {
    for code in [4007, 4009] {
        let mut sim = ready_sim();
        sim.elapse(secs(11));
        sim.peer_closes(1, code);
        assert_eq!(sim.client.profile().session(), None, "{code}");
        sim.opened(2);
        sim.frame(2, hello(45_000));
        assert_eq!(sent(&sim.take())[0]["op"], 2, "{code} identifies afresh");
    }
    // 1000 and 1001 from the server, a drop, and the other 4000-range codes resume.
    for code in [1000, 1001, 4000, 4001, 4002, 4003, 4005, 4008] {
        let mut sim = ready_sim();
        sim.elapse(secs(11));
        sim.peer_closes(1, code);
        sim.opened(2);
        sim.frame(2, hello(45_000));
        assert_eq!(sent(&sim.take())[0]["op"], 6, "{code} resumes");
    }
    let mut sim = ready_sim();
    let out = drop_and_reopen(&mut sim, 1);
    assert_eq!(sent(&out)[0]["op"], 6);
}

#[test]
fn close_code_table_has_one_class_per_code() {
    for (code, name, class) in CLOSE_CODES {
        assert_eq!(close_class(code), class, "{code} {name}");
    }
    assert_eq!(close_class(1000), CloseClass::Resume);
    assert_eq!(close_class(4999), CloseClass::Resume);
}

#[test]
fn d08_server_heartbeat_request() {
    let mut sim = ready_sim();
    sim.frame(1, dispatch(2, "GUILD_CREATE", json!({})));
    sim.take();
    sim.frame(1, op(1, json!(null)));
    assert_eq!(sent(&sim.take()), [json!({"op": 1, "d": 2})]);
    sim.frame(1, op(11, json!(null)));
    sim.assert_quiet();
}

#[test]
fn d09_rate_limit_reserves_heartbeats() {
    let config = test_config().queue_max_frames(512).build().unwrap();
    let mut sim = sim_with(config, discord());
    sim.connect().unwrap();
    sim.opened(1);
    sim.frame(1, hello(20_000));
    sim.frame(1, ready_frame(1));
    sim.take();
    let start = sim.now;
    let mut log: Vec<(Duration, bool)> = Vec::new();
    let record = |sim: &mut Sim<Discord>, log: &mut Vec<(Duration, bool)>| {
        for frame in sent(&sim.take()) {
            log.push((sim.now - start, frame["op"] == 1));
        }
    };
    for i in 0..300 {
        sim.send(Frame::text(format!("{{\"op\":3,\"d\":{i}}}")))
            .unwrap();
        sim.frame(1, op(11, json!(null)));
    }
    record(&mut sim, &mut log);
    // The identify counted against the window: 115 application slots minus it.
    assert_eq!(
        log.len(),
        114,
        "only the application's share goes out at once"
    );
    for _ in 0..180 {
        sim.elapse(secs(1));
        sim.frame(1, op(11, json!(null)));
        record(&mut sim, &mut log);
    }
    let heartbeats = log.iter().filter(|(_, hb)| *hb).count();
    assert!(heartbeats >= 8, "heartbeats kept going: {heartbeats}");
    assert_eq!(
        log.len() - heartbeats,
        300,
        "every send went out eventually"
    );
    assert_eq!(sim.client.state().phase, Phase::Ready);
    // No window of 60 s ever held more than 120 frames (identify included).
    let times: Vec<Duration> = log.iter().map(|(t, _)| *t).collect();
    for (i, &t) in times.iter().enumerate() {
        let in_window = times[i..].iter().take_while(|&&u| u < t + secs(60)).count();
        assert!(in_window < 120, "{in_window} frames in the 60 s from {t:?}");
    }
    assert!(sim.client.stats().rate_limited > 0);
}

#[test]
fn d10_sequence_tracking() {
    let mut sim = ready_sim();
    sim.frame(1, dispatch(2, "A", json!(1)));
    sim.frame(1, dispatch(4, "B", json!(2)));
    sim.frame(1, dispatch(3, "C", json!(3)));
    sim.frame(1, dispatch(4, "D", json!(4)));
    let out = sim.take();
    let names: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            support::Out::Ev(E::Message { message, .. }) => Some(message.name.as_str().to_owned()),
            _ => None,
        })
        .collect();
    // The gap is delivered and reported; what goes backwards or repeats is dropped and reported.
    assert_eq!(names, ["A", "B"]);
    let errors = protocol_errors(&out);
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors[0].contains("gap"));
    assert!(errors[1].contains("3 after 4"));
    assert!(errors[2].contains("4 after 4"));
    assert_eq!(sim.client.profile().sequence(), Some(4));
    assert_eq!(sim.client.stats().protocol_errors, 3);
}

#[test]
fn d11_token_never_in_debug() {
    let mut sim = sim();
    sim.connect().unwrap();
    sim.opened(1);
    sim.frame(1, hello(45_000));
    sim.frame(1, ready_frame(1));
    sim.elapse(secs(11));
    sim.frame(1, op(7, json!(null)));
    sim.peer_closes(1, 4000);
    sim.opened(2);
    sim.frame(2, hello(45_000));
    let out = sim.take_all();
    assert!(sent(&out).iter().any(|f| f["op"] == 6), "a resume was sent");
    let printed = format!(
        "{out:?} {:?} {:?} {:?} {}",
        sim.client,
        identify(),
        Token::new(TOKEN),
        Token::new(TOKEN)
    );
    assert!(!printed.contains("sekrit"), "{printed}");
}

#[test]
fn d12_start_gate() {
    let config = test_config().start_gate(true).build().unwrap();
    let mut sim = sim_with(config, discord());
    sim.connect().unwrap();
    sim.opened(1);
    sim.take();
    sim.frame(1, hello(45_000));
    assert_eq!(
        sim.take(),
        [support::Out::Cmd(Command::RequestStart { conn: c(1) })]
    );
    sim.elapse(secs(3));
    // A grant for another generation is stale.
    sim.grant_start(7);
    sim.assert_quiet();
    sim.grant_start(1);
    assert_eq!(sent(&sim.take())[0]["op"], 2);
    sim.frame(1, ready_frame(1));
    sim.take();

    // A resume needs no permission.
    let out = drop_and_reopen(&mut sim, 1);
    assert_eq!(sent(&out)[0]["op"], 6);
    assert!(
        !out.iter()
            .any(|o| matches!(o, support::Out::Cmd(Command::RequestStart { .. })))
    );

    // A grant that never comes recycles the connection at the gate's deadline.
    let config = test_config()
        .start_gate(true)
        .start_gate_timeout(secs(30))
        .build()
        .unwrap();
    let mut sim = sim_with(config, discord());
    sim.connect().unwrap();
    sim.opened(1);
    sim.frame(1, hello(45_000));
    sim.take();
    sim.elapse(secs(30));
    let out = sim.take();
    assert!(out.contains(&ev(E::Disconnected {
        conn: c(1),
        reason: Reason::StartTimeout
    })));
}

#[test]
fn d13_resume_circuit_breaker() {
    let mut sim = ready_sim();
    sim.elapse(secs(11));
    sim.closed(1, CloseCause::Dropped);
    let out = sim.take();
    assert_eq!(opens(&out), [Endpoint::Url("wss://resume.example".into())]);
    // The resume URL does not answer: the next attempt goes to the main URL, still resuming.
    sim.open_failed(
        2,
        tether_core::OpenError::new(tether_core::OpenErrorKind::Io, "refused"),
    );
    sim.net.open_after = Some(ms(10));
    sim.elapse(ms(1010));
    assert_eq!(opens(&sim.take()), [Endpoint::Primary]);
    // Two resumes fail in a row (three failures with the connect): identify afresh.
    for (conn, backoff) in [(3, 2), (4, 4)] {
        sim.frame(conn, hello(45_000));
        assert_eq!(sent(&sim.take())[0]["op"], 6, "conn {conn} resumes");
        sim.peer_closes(conn, 4000);
        sim.elapse(secs(backoff) + ms(10));
    }
    assert_eq!(sim.client.profile().session(), None);
    sim.take();
    sim.frame(5, hello(45_000));
    assert_eq!(sent(&sim.take())[0]["op"], 2);
}

#[test]
fn d14_session_export_import() {
    let mut sim = ready_sim();
    sim.frame(1, dispatch(2, "X", json!({})));
    let exported = sim.client.profile().session().unwrap();
    let json = serde_json::to_string(&exported).unwrap();

    // Another process imports it and resumes where the first left off.
    let imported: DiscordSession = serde_json::from_str(&json).unwrap();
    let profile = Discord::builder(identify())
        .session(imported)
        .build()
        .unwrap();
    let mut sim = sim_with(test_config().build().unwrap(), profile);
    sim.connect().unwrap();
    assert_eq!(
        opens(&sim.take()),
        [Endpoint::Url("wss://resume.example".into())]
    );
    sim.opened(1);
    sim.frame(1, hello(45_000));
    assert_eq!(
        sent(&sim.take()),
        [json!({"op": 6, "d": {"token": TOKEN, "session_id": "sess-1", "seq": 2}})]
    );
}

#[test]
fn d15_outbound_coalescing() {
    let mut sim = sim();
    let presence =
        |status: &str| Frame::text(json!({"op": 3, "d": {"status": status}}).to_string());
    let first = sim
        .send_with(presence("idle"), SendOptions::new().key("presence"))
        .unwrap();
    let chat = sim.send(Frame::text("{\"op\":8,\"d\":{}}")).unwrap();
    let second = sim
        .send_with(presence("dnd"), SendOptions::new().key("presence"))
        .unwrap();
    sim.send_with(presence("online"), SendOptions::new().key("presence"))
        .unwrap();
    let out = sim.take();
    assert_eq!(
        out,
        [
            ev(E::Returned {
                id: first,
                frame: presence("idle"),
                reason: ReturnReason::Replaced
            }),
            ev(E::Returned {
                id: second,
                frame: presence("dnd"),
                reason: ReturnReason::Replaced
            })
        ]
    );
    assert!(chat > first);
    sim.connect().unwrap();
    sim.opened(1);
    sim.frame(1, hello(45_000));
    sim.frame(1, ready_frame(1));
    let frames = sent(&sim.take());
    assert_eq!(
        frames.len(),
        3,
        "identify, the chat frame and the latest presence"
    );
    assert_eq!(frames[1]["op"], 8);
    assert_eq!(frames[2]["d"]["status"], "online");
}

#[test]
fn d16_resumed_deadline() {
    let mut sim = ready_sim();
    let out = drop_and_reopen(&mut sim, 1);
    assert_eq!(sent(&out)[0]["op"], 6);
    // The server never says RESUMED: the resume has a deadline of its own.
    sim.elapse(secs(5));
    let out = sim.take();
    assert_eq!(out[0], close(2, 4000, "resuming"));
    assert!(out.contains(&ev(E::Disconnected {
        conn: c(2),
        reason: Reason::ReadyTimeout
    })));
}

#[test]
fn f11_hello_stall_recycles() {
    let mut sim = sim();
    sim.connect().unwrap();
    sim.opened(1);
    sim.take();
    sim.elapse(secs(5));
    assert_eq!(
        sim.take(),
        [
            close(1, 4000, "resuming"),
            ev(E::Disconnected {
                conn: c(1),
                reason: Reason::HelloTimeout
            })
        ]
    );
}

#[test]
fn f11_ready_timeout_recycles() {
    let mut sim = sim();
    sim.connect().unwrap();
    sim.opened(1);
    sim.frame(1, hello(45_000));
    sim.take();
    sim.elapse(secs(5));
    let out = sim.take();
    assert_eq!(out[0], close(1, 4000, "resuming"));
    assert!(out.contains(&ev(E::Disconnected {
        conn: c(1),
        reason: Reason::ReadyTimeout
    })));
}

#[test]
fn bad_frames_are_counted_and_reported_never_fatal() {
    let mut sim = ready_sim();
    for bad in [
        "not json",
        "{\"op\":99}",
        "{\"op\":0,\"d\":{}}",
        "{\"op\":0,\"s\":184467440737095516150,\"t\":\"X\"}",
        "{\"op\":\"zero\"}",
        "[]",
    ] {
        sim.frame(1, Frame::text(bad.to_owned()));
    }
    sim.frame(1, Frame::binary(vec![0x78, 0x9c]));
    let out = sim.take();
    assert_eq!(
        out.iter()
            .filter(|o| matches!(o, support::Out::Ev(E::ProtocolError { .. })))
            .count(),
        7
    );
    assert_eq!(sim.client.stats().protocol_errors, 7);
    assert_eq!(sim.client.state().phase, Phase::Ready);
    // A hello that cannot set a heartbeat is fatal to the connection, not to the process.
    let mut sim = self::sim();
    sim.connect().unwrap();
    sim.opened(1);
    sim.frame(1, op(10, json!({"heartbeat_interval": 0})));
    let out = sim.take();
    assert!(out.iter().any(|o| matches!(
        o,
        support::Out::Ev(E::ProtocolError {
            error: ProtocolError { fatal: true, .. },
            ..
        })
    )));
    assert_eq!(sim.client.state().phase, Phase::Draining);
}

#[test]
fn discord_settings_are_checked() {
    assert!(
        Discord::builder(identify())
            .max_resume_failures(0)
            .build()
            .is_err()
    );
    assert!(
        Discord::builder(identify())
            .rate_limit(RateLimit {
                max: 10,
                per: secs(60),
                reserved: 10
            })
            .build()
            .is_err()
    );
}

#[test]
fn any_frame_can_count_as_the_ack_when_asked() {
    let profile = Discord::builder(identify())
        .any_frame_is_ack(true)
        .build()
        .unwrap();
    let mut lenient = sim_with(test_config().build().unwrap(), profile);
    let mut strict = sim();
    for sim in [&mut lenient, &mut strict] {
        sim.connect().unwrap();
        sim.opened(1);
        sim.frame(1, hello(10_000));
        sim.frame(1, ready_frame(1));
        // The gateway is busy: dispatches flow, but no op 11 comes for a while.
        for seq in 2..40 {
            sim.elapse(secs(1));
            sim.frame(1, dispatch(seq, "PRESENCE_UPDATE", json!({})));
        }
    }
    assert_eq!(lenient.client.stats().zombies, 0);
    assert_eq!(lenient.client.state().phase, Phase::Ready);
    assert_eq!(
        strict.client.stats().zombies,
        1,
        "by default only op 11 acks"
    );
}

#[test]
fn d17_refused_resume_identifies_afresh_on_the_same_socket() {
    let mut sim = ready_sim();
    let out = drop_and_reopen(&mut sim, 1);
    assert_eq!(sent(&out)[0]["op"], 6, "a resume goes out on conn 2");
    // The server cannot resume the session and keeps the socket.
    sim.frame(2, op(9, json!(false)));
    let out = sim.take_all();
    assert!(
        !out.iter().any(|o| matches!(
            o,
            support::Out::Cmd(Command::Close { .. } | Command::Abort { .. } | Command::Open { .. })
        )),
        "the socket is kept: {out:?}"
    );
    assert!(
        !out.iter()
            .any(|o| matches!(o, support::Out::Ev(E::Disconnected { .. })))
    );
    let wait = out
        .iter()
        .find_map(|o| match o {
            support::Out::Ev(E::Transition(t))
                if t.reason == (Reason::InvalidSession { resumable: false }) =>
            {
                t.next_delay
            }
            _ => None,
        })
        .expect("the wait is told");
    assert!((secs(1)..=secs(5)).contains(&wait), "{wait:?}");
    assert_eq!(
        sim.client.profile().session(),
        None,
        "the old session is forgotten"
    );
    // Nothing is written until the wait is over; then a fresh identify on conn 2.
    sim.elapse(wait - Duration::from_millis(1));
    assert!(!sent(&sim.take()).iter().any(|f| f["op"] == 2));
    sim.elapse(Duration::from_millis(1));
    let identify = sent(&sim.take());
    assert_eq!(
        identify.iter().filter(|f| f["op"] == 2).count(),
        1,
        "{identify:?}"
    );
    sim.frame(2, ready_frame(1));
    assert!(sim.take().contains(&ev(E::Ready {
        conn: c(2),
        resumed: false
    })));
    assert_eq!(
        sim.client.stats().opens,
        2,
        "no second socket for the new session"
    );
}

#[test]
fn d18_refused_resume_then_the_socket_drops_reconnects_fresh() {
    let mut sim = ready_sim();
    drop_and_reopen(&mut sim, 1);
    sim.frame(2, op(9, json!(false)));
    sim.take();
    // The socket dies during the wait: the next socket identifies, it does not resume.
    sim.closed(2, CloseCause::Dropped);
    let out = sim.take();
    assert!(
        out.iter()
            .any(|o| matches!(o, support::Out::Ev(E::Reconnecting { resume: false, .. }))),
        "{out:?}"
    );
    sim.next_deadline();
    sim.opened(3);
    sim.frame(3, hello(45_000));
    assert_eq!(sent(&sim.take())[0]["op"], 2);
}

#[test]
fn k01_a_flood_of_heartbeat_requests_is_answered_by_one_beat_until_acked() {
    let mut sim = ready_sim();
    for _ in 0..10_000 {
        sim.frame(1, op(1, Value::Null));
    }
    let beats = sent(&sim.take())
        .into_iter()
        .filter(|f| f["op"] == 1)
        .count();
    assert_eq!(
        beats, 1,
        "one beat answers them all until it is acknowledged"
    );
    assert_eq!(sim.client.stats().heartbeat_requests_coalesced, 9_999);
    // Acknowledged: the next request is answered again.
    sim.frame(1, op(11, Value::Null));
    sim.frame(1, op(1, Value::Null));
    let beats = sent(&sim.take())
        .into_iter()
        .filter(|f| f["op"] == 1)
        .count();
    assert_eq!(beats, 1);
    // Acked at once, every time, requests still stay within the rate limit (120 per 60 s).
    for _ in 0..1_000 {
        sim.frame(1, op(1, Value::Null));
        sim.frame(1, op(11, Value::Null));
    }
    let beats = sent(&sim.take())
        .into_iter()
        .filter(|f| f["op"] == 1)
        .count();
    assert!(beats <= 120, "{beats} beats in one window");
}

#[test]
fn k03_an_unreadable_ready_then_a_good_one_is_ready_within_one_backoff() {
    let mut sim = sim();
    sim.connect().unwrap();
    sim.opened(1);
    sim.frame(1, hello(45_000));
    // READY without a session id: the connection is replaced, afresh.
    sim.frame(
        1,
        dispatch(
            1,
            "READY",
            json!({"v": 10, "session_id": ["not", "a", "string"]}),
        ),
    );
    let out = sim.take();
    assert!(
        out.iter()
            .any(|o| matches!(o, support::Out::Ev(Event::Disconnected { .. }))),
        "{out:?}"
    );
    sim.closed(1, CloseCause::Dropped);
    sim.elapse(secs(2));
    let conn = sim.newest_conn();
    sim.opened(conn);
    sim.frame(conn, hello(45_000));
    let sent_now = sent(&sim.take());
    assert_eq!(
        sent_now.last().map(|f| f["op"].clone()),
        Some(json!(2)),
        "a fresh identify"
    );
    // The new READY starts the count afresh: it is not taken for a stale repeat.
    sim.frame(conn, ready_frame(1));
    let out = sim.take();
    assert!(
        out.iter()
            .any(|o| matches!(o, support::Out::Ev(Event::Ready { .. }))),
        "{out:?}"
    );
    assert_eq!(sim.client.state().phase, Phase::Ready);
}

#[test]
fn k04_hello_intervals_are_clamped_to_the_configured_bounds() {
    let cases: [(Value, Option<Duration>); 6] = [
        (json!(45_000), Some(Duration::from_millis(45_000))),
        (
            json!(9_223_372_036_854_775_808u64),
            Some(Duration::from_secs(600)),
        ),
        (json!(u64::MAX), Some(Duration::from_secs(600))),
        (json!(41_250.5), Some(Duration::from_micros(41_250_500))),
        (json!(1), Some(Duration::from_millis(10))),
        (json!(0), None),
    ];
    for (interval, expected) in cases {
        let mut sim = sim();
        sim.connect().unwrap();
        sim.opened(1);
        sim.frame(
            1,
            Frame::text(json!({"op": 10, "d": {"heartbeat_interval": interval}}).to_string()),
        );
        let out = sim.take();
        let identified = sent(&out).iter().any(|f| f["op"] == 2);
        match expected {
            Some(expected) => {
                assert!(identified, "{interval}: {out:?}");
                sim.frame(1, ready_frame(1));
                sim.take();
                // The first beat falls within one interval; the next exactly one after it.
                sim.elapse(expected);
                let first = sent(&sim.take()).iter().filter(|f| f["op"] == 1).count();
                assert_eq!(first, 1, "{interval}");
                sim.frame(1, op(11, Value::Null));
                sim.elapse(expected);
                let second = sent(&sim.take()).iter().filter(|f| f["op"] == 1).count();
                assert_eq!(second, 1, "{interval}: liveness is on, at {expected:?}");
                let clamped = expected != Duration::from_millis(45_000)
                    && expected != Duration::from_micros(41_250_500);
                let reported = out.iter().any(|o| {
                    matches!(o, support::Out::Ev(Event::ProtocolError { error, .. }) if error.reason.contains("outside"))
                });
                assert_eq!(reported, clamped, "{interval}: {out:?}");
            }
            None => assert!(!identified, "{interval}: a hello that cannot work: {out:?}"),
        }
    }
}

#[test]
fn k08_ready_is_only_taken_once_the_handshake_was_sent() {
    let mut sim = sim_with(test_config().start_gate(true).build().unwrap(), discord());
    sim.connect().unwrap();
    sim.opened(1);
    sim.frame(1, hello(45_000));
    // The gate has not granted the start: identify is not out, so READY cannot be.
    sim.frame(1, ready_frame(1));
    let out = sim.take();
    assert!(
        !out.iter()
            .any(|o| matches!(o, support::Out::Ev(Event::Ready { .. }))),
        "{out:?}"
    );
    assert!(
        out.iter()
            .any(|o| matches!(o, support::Out::Ev(Event::Disconnected { .. }))),
        "the connection is replaced: {out:?}"
    );
}

/// Compressed frames as a gateway writes them on one connection (zlib-stream).
fn zlib_frames(frames: &[Frame]) -> Vec<Frame> {
    let mut z = flate2::Compress::new(flate2::Compression::default(), true);
    frames
        .iter()
        .map(|frame| {
            let Frame::Text(text) = frame else {
                panic!("text")
            };
            let mut out = Vec::with_capacity(text.len() + 1024);
            z.compress_vec(
                text.as_str().as_bytes(),
                &mut out,
                flate2::FlushCompress::Sync,
            )
            .unwrap();
            Frame::Binary(out.into())
        })
        .collect()
}

/// d17: transport compression: the URL asks for it; each connection inflates with a
/// context of its own, fresh on the next socket; a corrupt stream is a protocol error
/// that ends the connection (counted), and the session resumes on a new one.
#[test]
fn d17_zlib_stream_inflates_per_connection_and_a_corrupt_stream_reconnects() {
    let profile = Discord::builder(identify())
        .compression(tether_core::protocol::discord::Compression::ZlibStream)
        .build()
        .unwrap();
    assert_eq!(
        tether_core::Protocol::query_defaults(&profile),
        [
            ("v", "10"),
            ("encoding", "json"),
            ("compress", "zlib-stream")
        ]
    );
    let mut sim = sim_with(test_config().build().unwrap(), profile);
    sim.connect().unwrap();
    sim.opened(1);
    for frame in zlib_frames(&[hello(45_000), ready_frame(1)]) {
        sim.frame(1, frame);
    }
    let out = sim.take();
    assert_eq!(sent(&out)[0]["op"], 2, "identified after an inflated hello");
    assert!(out.contains(&ev(E::Ready {
        conn: c(1),
        resumed: false
    })));
    // Garbage in the stream: the connection cannot go on.
    sim.frame(1, Frame::Binary(vec![9, 9, 9, 9, 0, 0, 0xff, 0xff].into()));
    let out = sim.take();
    let errors = protocol_errors(&out);
    assert_eq!(errors.len(), 1, "{out:?}");
    assert!(errors[0].contains("corrupt zlib"), "{errors:?}");
    assert!(
        out.iter()
            .any(|o| matches!(o, support::Out::Ev(E::Disconnected { conn, .. }) if *conn == c(1))),
        "{out:?}"
    );
    sim.closed(1, CloseCause::Aborted);
    sim.elapse(secs(5));
    let out = sim.take();
    assert_eq!(opens(&out), [Endpoint::Url("wss://resume.example".into())]);
    // The new socket's stream starts afresh: a new context reads it from its header.
    sim.opened(2);
    let resumed = dispatch(2, "RESUMED", json!({}));
    for frame in zlib_frames(&[hello(45_000), resumed]) {
        sim.frame(2, frame);
    }
    let out = sim.take();
    assert_eq!(sent(&out)[0]["op"], 6, "resumed");
    assert!(out.contains(&ev(E::Ready {
        conn: c(2),
        resumed: true
    })));
    assert_eq!(sim.client.stats().protocol_errors, 1);
}
