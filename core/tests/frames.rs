//! Arbitrary text and bytes as frames into a ready machine of each profile: nothing
//! panics, the invariants hold, and every frame that is not even JSON is counted and
//! reported as a protocol error, exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use proptest::prelude::*;
use serde_json::json;
use support::*;
use tether_core::protocol::openclaw::{DeviceIdentity, OpenClaw, Role};
use tether_core::{Discord, Event, Frame, Identify, Phase, Protocol, Token};

#[derive(Debug, Clone)]
enum Garbage {
    Text(String),
    Json(String),
    Binary(Vec<u8>),
}

fn garbage() -> impl Strategy<Value = Garbage> {
    // Envelope-shaped fragments, so the generator reaches past the JSON parser.
    let fields = prop_oneof![
        Just("\"op\":0".to_owned()),
        Just("\"op\":10".to_owned()),
        Just("\"op\":-1".to_owned()),
        Just("\"s\":18446744073709551616".to_owned()),
        Just("\"s\":3".to_owned()),
        Just("\"t\":\"READY\"".to_owned()),
        Just("\"t\":7".to_owned()),
        Just("\"d\":{}".to_owned()),
        Just("\"d\":{\"heartbeat_interval\":1e400}".to_owned()),
        Just("\"type\":\"res\"".to_owned()),
        Just("\"type\":\"event\"".to_owned()),
        Just("\"id\":\"connect\"".to_owned()),
        Just("\"id\":1".to_owned()),
        Just("\"ok\":\"yes\"".to_owned()),
        Just("\"error\":{\"code\":[],\"message\":1}".to_owned()),
        Just("\"event\":\"tick\"".to_owned()),
        Just("\"seq\":-5".to_owned()),
        "\"[a-z]{1,4}\":[0-9]{1,25}".prop_map(|s| s),
    ];
    prop_oneof![
        any::<String>().prop_map(Garbage::Text),
        proptest::collection::vec(fields, 0..6)
            .prop_map(|f| Garbage::Json(format!("{{{}}}", f.join(",")))),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Garbage::Binary),
    ]
}

fn frame_of(g: &Garbage) -> (Frame, bool) {
    match g {
        Garbage::Text(s) | Garbage::Json(s) => (
            Frame::text(s.clone()),
            // Syntax only: a number out of f64's range is still JSON.
            serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok(),
        ),
        Garbage::Binary(b) => (Frame::binary(b.clone()), false),
    }
}

/// Feeds every frame to `sim` on conn 1 (or the current one) and checks the counting.
fn feed<P: Protocol>(mut sim: Sim<P>, frames: &[Garbage], json_only: bool)
where
    P::Message: std::fmt::Debug + Clone,
    P::Response: std::fmt::Debug + Clone,
{
    for g in frames {
        // A fatal error ends the connection; what follows on it is stale, not an error.
        let state = sim.client.state();
        let (Phase::Ready | Phase::Handshaking, Some(conn)) = (state.phase, state.conn) else {
            break;
        };
        let before = sim.client.stats().protocol_errors;
        let (frame, is_json) = frame_of(g);
        sim.frame(conn.get(), frame);
        let reported = sim
            .take()
            .iter()
            .filter(|o| matches!(o, Out::Ev(Event::ProtocolError { .. })))
            .count() as u64;
        let counted = sim.client.stats().protocol_errors - before;
        assert_eq!(counted, reported, "every error counted is reported");
        if json_only && !is_json {
            assert_eq!(counted, 1, "{g:?} must be counted once");
        }
    }
}

fn discord_ready() -> Sim<Discord> {
    let profile = Discord::builder(Identify::new(Token::new("t"), 1))
        .build()
        .unwrap();
    let mut sim = Sim::new(test_config().build().unwrap(), profile);
    sim.connect().unwrap();
    sim.opened(1);
    sim.frame(
        1,
        Frame::text(json!({"op": 10, "d": {"heartbeat_interval": 40_000}}).to_string()),
    );
    sim.frame(
        1,
        Frame::text(json!({"op": 0, "s": 1, "t": "READY", "d": {"session_id": "s"}}).to_string()),
    );
    sim.take();
    sim
}

fn openclaw_ready() -> Sim<OpenClaw> {
    let identity = DeviceIdentity::from_seed([4; 32]).unwrap();
    let profile = OpenClaw::builder(Role::Node, identity).build().unwrap();
    let mut sim = Sim::new(test_config().build().unwrap(), profile);
    sim.connect().unwrap();
    sim.opened(1);
    sim.frame(
        1,
        Frame::text(
            r#"{"type":"event","event":"connect.challenge","payload":{"nonce":"n","ts":1}}"#,
        ),
    );
    sim.frame(
        1,
        Frame::text(
            r#"{"type":"res","id":"connect","ok":true,"payload":{"type":"hello-ok","protocol":4}}"#,
        ),
    );
    sim.take();
    assert_eq!(sim.client.state().phase, Phase::Ready);
    sim
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn discord_survives_any_frame(frames in proptest::collection::vec(garbage(), 1..20)) {
        feed(discord_ready(), &frames, true);
    }

    #[test]
    fn openclaw_survives_any_frame(frames in proptest::collection::vec(garbage(), 1..20)) {
        feed(openclaw_ready(), &frames, true);
    }

    #[test]
    fn plain_passes_any_data_frame_through(frames in proptest::collection::vec(garbage(), 1..20)) {
        let mut sim = Sim::ready_plain();
        let before = sim.client.stats().frames_received;
        feed(Sim::ready_plain(), &frames, false);
        for g in &frames {
            sim.frame(1, frame_of(g).0);
        }
        let messages = sim
            .take()
            .iter()
            .filter(|o| matches!(o, Out::Ev(Event::Message { .. })))
            .count();
        prop_assert_eq!(messages, frames.len());
        prop_assert_eq!(sim.client.stats().frames_received - before, frames.len() as u64);
    }
}
