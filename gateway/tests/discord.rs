//! The discord server side as real clients meet it, on a virtual clock: READY as Discord
//! sends it, RESUMED as an object, a bot's shards as sessions side by side, the URL's
//! version, encoding and compression, and a client's own 1000 or 1001 ending its session.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use support::auth;

use std::io::Read;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tether_core::{ConnId, Frame};
use tether_gateway::registry::Presence;
use tether_gateway::{
    AcceptedPeer, Gateway, GatewayCommand, GatewayConfig, GatewayEvent, ServerProfile,
};

#[derive(Debug, PartialEq)]
enum Wire {
    Json(Value),
    /// Compressed bytes, as written.
    Binary(Vec<u8>),
    Close(u16),
}

struct Server {
    gw: Gateway,
    now: Instant,
}

impl Server {
    fn new(builder: tether_gateway::GatewayConfigBuilder) -> Self {
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        Self {
            gw: Gateway::new(builder.build().unwrap(), auth, 7),
            now,
        }
    }

    fn discord() -> Self {
        Self::new(
            GatewayConfig::builder(ServerProfile::Discord)
                .resume_url("ws://gateway.test/resume")
                .guilds([41_771_983_423_143_937, 41_771_983_423_143_938]),
        )
    }

    fn accept(&mut self, query: &str) -> ConnId {
        let peer = AcceptedPeer {
            query: Some(query.to_owned()),
            ..AcceptedPeer::default()
        };
        self.gw.accept_peer(self.now, peer)
    }

    fn send(&mut self, conn: ConnId, v: Value) {
        self.gw
            .handle_frame(conn, Frame::text(v.to_string()), self.now);
    }

    fn wire(&mut self) -> Vec<(ConnId, Wire)> {
        std::iter::from_fn(|| self.gw.poll_command())
            .filter_map(|c| match c {
                GatewayCommand::Send {
                    conn,
                    frame: Frame::Text(t),
                } => Some((conn, Wire::Json(serde_json::from_str(t.as_str()).unwrap()))),
                GatewayCommand::Send {
                    conn,
                    frame: Frame::Binary(b),
                } => Some((conn, Wire::Binary(b.to_vec()))),
                GatewayCommand::Close { conn, frame } => Some((conn, Wire::Close(frame.code))),
                _ => None,
            })
            .collect()
    }

    fn events(&mut self) -> Vec<GatewayEvent> {
        std::iter::from_fn(|| self.gw.poll_event()).collect()
    }

    /// Connects and identifies as `peer` with `extra` identify fields; READY's data.
    fn identify(&mut self, peer: &str, extra: Value) -> (ConnId, Value) {
        let conn = self.accept("v=10&encoding=json");
        let mut d = json!({"token": format!("token-{peer}"), "intents": 0});
        if let (Some(d), Some(extra)) = (d.as_object_mut(), extra.as_object()) {
            d.extend(extra.clone());
        }
        self.send(conn, json!({"op": 2, "d": d}));
        let ready = self
            .wire()
            .into_iter()
            .find_map(|(c, w)| match w {
                Wire::Json(v) if c == conn && v["t"] == "READY" => Some(v["d"].clone()),
                _ => None,
            })
            .expect("READY");
        (conn, ready)
    }
}

#[test]
fn ready_carries_what_discord_clients_read() {
    let mut s = Server::discord();
    let (_, ready) = s.identify("bot", json!({"shard": [1, 2]}));
    assert_eq!(ready["v"], 10);
    assert_eq!(ready["resume_gateway_url"], "ws://gateway.test/resume");
    assert_eq!(
        ready["shard"],
        json!([1, 2]),
        "the identify's shard, echoed"
    );
    let session = ready["session_id"].as_str().unwrap();
    assert_eq!(session.len(), 32);
    let user = &ready["user"];
    let id = user["id"].as_str().unwrap();
    assert!(id.parse::<u64>().unwrap() > 0, "a snowflake: {id}");
    assert_eq!(user["username"], "bot");
    assert_eq!(user["bot"], true);
    assert_eq!(user["discriminator"], "0");
    assert_eq!(user["mfa_enabled"], false);
    assert_eq!(ready["application"], json!({"id": id, "flags": 0}));
    assert_eq!(
        ready["guilds"],
        json!([
            {"id": "41771983423143937", "unavailable": true},
            {"id": "41771983423143938", "unavailable": true},
        ])
    );
    // The same bot is the same user in every session.
    let (_, again) = s.identify("bot", json!({}));
    assert_eq!(again["user"]["id"], user["id"]);
    assert!(again.get("shard").is_none(), "no shard asked, none echoed");
}

#[test]
fn a_resume_is_answered_with_a_resumed_object() {
    let mut s = Server::discord();
    let (conn, ready) = s.identify("bot", json!({}));
    let session = ready["session_id"].as_str().unwrap().to_owned();
    s.gw.handle_close(conn, s.now);
    let again = s.accept("v=10&encoding=json");
    s.send(
        again,
        json!({"op": 6, "d": {"token": "token-bot", "session_id": session, "seq": 1}}),
    );
    let resumed = s
        .wire()
        .into_iter()
        .find_map(|(_, w)| match w {
            Wire::Json(v) if v["t"] == "RESUMED" => Some(v),
            _ => None,
        })
        .expect("RESUMED");
    assert_eq!(resumed["d"], json!({}), "an object, as Discord sends it");
}

#[test]
fn two_shards_of_one_bot_are_two_sessions_side_by_side() {
    let mut s = Server::discord();
    let (first, _) = s.identify("bot", json!({"shard": [0, 2]}));
    let (second, _) = s.identify("bot", json!({"shard": [1, 2]}));
    let events = s.events();
    let connected: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            GatewayEvent::Presence {
                peer,
                conn,
                presence: Presence::Connected,
            } => Some((peer.to_string(), *conn)),
            _ => None,
        })
        .collect();
    assert_eq!(
        connected,
        [
            ("bot/shard-0-of-2".to_owned(), first),
            ("bot/shard-1-of-2".to_owned(), second)
        ]
    );
    assert!(
        !events.iter().any(|e| matches!(
            e,
            GatewayEvent::Presence {
                presence: Presence::Replaced { .. },
                ..
            }
        )),
        "neither takes the other's session: {events:?}"
    );
    assert!(!s.wire().iter().any(|(_, w)| matches!(w, Wire::Close(_))));
    // The same shard again is the same session key: it replaces.
    let (third, _) = s.identify("bot", json!({"shard": [0, 2]}));
    assert!(s.events().iter().any(|e| matches!(
        e,
        GatewayEvent::Presence { peer, conn, presence: Presence::Replaced { old } }
            if &**peer == "bot/shard-0-of-2" && *conn == third && *old == first
    )));
}

#[test]
fn a_shard_outside_its_count_is_closed_4010() {
    for shard in [json!([2, 2]), json!([0, 0]), json!("zero")] {
        let mut s = Server::discord();
        let conn = s.accept("v=10");
        s.send(
            conn,
            json!({"op": 2, "d": {"token": "token-bot", "intents": 0, "shard": shard}}),
        );
        assert!(
            s.wire().contains(&(conn, Wire::Close(4010))),
            "shard {shard}"
        );
    }
}

#[test]
fn the_url_chooses_version_and_encoding_before_any_hello() {
    for (query, code) in [
        ("v=6&encoding=json", 4012),
        ("v=99", 4012),
        ("v=10&encoding=etf", 1003),
        ("v=10&encoding=bogus", 1003),
        ("v=10&compress=gzip", 1003),
    ] {
        let mut s = Server::discord();
        let conn = s.accept(query);
        assert_eq!(s.wire(), [(conn, Wire::Close(code))], "{query}");
    }
    for query in ["v=10&encoding=json", "v=9", ""] {
        let mut s = Server::discord();
        let conn = s.accept(query);
        let wire = s.wire();
        assert!(
            matches!(&wire[..], [(c, Wire::Json(hello))] if *c == conn && hello["op"] == 10),
            "{query}: {wire:?}"
        );
    }
}

/// Every frame a compressed connection was written, decompressed in order.
fn inflate_zlib(frames: &[Vec<u8>]) -> Vec<Value> {
    let mut inflater = flate2::Decompress::new(true);
    frames
        .iter()
        .map(|bytes| {
            assert!(bytes.ends_with(&[0, 0, 0xff, 0xff]));
            let mut out = Vec::with_capacity(1 << 20);
            inflater
                .decompress_vec(bytes, &mut out, flate2::FlushDecompress::Sync)
                .unwrap();
            serde_json::from_slice(&out).unwrap()
        })
        .collect()
}

fn binaries(wire: Vec<(ConnId, Wire)>) -> Vec<Vec<u8>> {
    wire.into_iter()
        .map(|(_, w)| match w {
            Wire::Binary(b) => b,
            other => panic!("compressed, not {other:?}"),
        })
        .collect()
}

#[test]
fn zlib_stream_connections_get_one_compressed_stream() {
    let mut s = Server::discord();
    let conn = s.accept("v=10&encoding=json&compress=zlib-stream");
    s.send(
        conn,
        json!({"op": 2, "d": {"token": "token-bot", "intents": 0}}),
    );
    s.send(conn, json!({"op": 1, "d": 1}));
    let frames = inflate_zlib(&binaries(s.wire()));
    let ops: Vec<_> = frames.iter().map(|f| f["op"].as_u64().unwrap()).collect();
    assert_eq!(ops, [10, 0, 11], "hello, READY, ack: {frames:?}");
    assert_eq!(frames[1]["t"], "READY");
}

#[test]
fn zstd_stream_connections_get_one_compressed_stream() {
    let mut s = Server::discord();
    let conn = s.accept("v=10&encoding=json&compress=zstd-stream");
    s.send(
        conn,
        json!({"op": 2, "d": {"token": "token-bot", "intents": 0}}),
    );
    let stream = binaries(s.wire()).concat();
    let mut decoder = zstd::stream::read::Decoder::new(&stream[..]).unwrap();
    let mut text = Vec::new();
    let _ = decoder.read_to_end(&mut text);
    let text = String::from_utf8(text).unwrap();
    let hello_end = text.find("}}").unwrap() + 2;
    let hello: Value = serde_json::from_str(&text[..hello_end]).unwrap();
    let ready: Value = serde_json::from_str(&text[hello_end..]).unwrap();
    assert_eq!(
        (hello["op"].clone(), ready["t"].clone()),
        (json!(10), json!("READY"))
    );
}

#[test]
fn a_client_closing_with_1000_or_1001_ends_its_session_any_other_close_keeps_it() {
    for (code, resumable) in [
        (Some(1000), false),
        (Some(1001), false),
        (Some(4000), true),
        (None, true),
    ] {
        let mut s = Server::discord();
        let (conn, ready) = s.identify("bot", json!({}));
        let session = ready["session_id"].as_str().unwrap().to_owned();
        if let Some(code) = code {
            s.gw.handle_close_frame(conn, Some(code));
        }
        s.gw.handle_close(conn, s.now);
        s.now += Duration::from_millis(10);
        let again = s.accept("v=10");
        s.send(
            again,
            json!({"op": 6, "d": {"token": "token-bot", "session_id": session, "seq": 1}}),
        );
        let wire = s.wire();
        let resumed = wire
            .iter()
            .any(|(_, w)| matches!(w, Wire::Json(v) if v["t"] == "RESUMED"));
        let refused = wire
            .iter()
            .any(|(_, w)| matches!(w, Wire::Json(v) if v["op"] == 9 && v["d"] == false));
        assert_eq!(
            (resumed, refused),
            (resumable, !resumable),
            "closed with {code:?}: {wire:?}"
        );
    }
}

#[test]
fn identifies_are_limited_per_bucket_and_per_window_as_discord_does() {
    let limit = tether_gateway::IdentifyLimit {
        max_concurrency: 2,
        spacing: Duration::from_secs(5),
        per_window: 3,
        window: Duration::from_secs(3600),
    };
    let mut s = Server::new(GatewayConfig::builder(ServerProfile::Discord).identify_limit(limit));
    let identify = |s: &mut Server, shard: u32| {
        let conn = s.accept("v=10");
        s.send(
            conn,
            json!({"op": 2, "d": {"token": "token-bot", "intents": 0, "shard": [shard, 4]}}),
        );
        (conn, s.wire())
    };
    let ready = |wire: &[(ConnId, Wire)]| {
        wire.iter()
            .any(|(_, w)| matches!(w, Wire::Json(v) if v["t"] == "READY"))
    };
    // Buckets 0 and 1 start at once.
    assert!(ready(&identify(&mut s, 0).1));
    assert!(ready(&identify(&mut s, 1).1));
    // Shard 2 is bucket 0 again, too soon: an invalid session, not resumable.
    let (_, wire) = identify(&mut s, 2);
    assert!(!ready(&wire));
    assert!(
        wire.iter()
            .any(|(_, w)| matches!(w, Wire::Json(v) if v["op"] == 9 && v["d"] == false)),
        "{wire:?}"
    );
    assert_eq!(s.gw.stats().identifies_limited, 1);
    // Its spacing passed, it starts: the third session of the window.
    s.now += Duration::from_secs(5);
    assert!(ready(&identify(&mut s, 2).1));
    // A fourth start in the window: closed as Discord closes a bot past its limit.
    s.now += Duration::from_secs(5);
    let (conn, wire) = identify(&mut s, 3);
    assert!(wire.contains(&(conn, Wire::Close(4004))), "{wire:?}");
    assert_eq!(s.gw.stats().identifies_limited, 2);
    // A new window, a new budget.
    s.now += Duration::from_secs(3600);
    assert!(ready(&identify(&mut s, 3).1));
}

#[test]
fn an_identify_limit_of_zero_is_refused_at_build() {
    let mut limit = tether_gateway::IdentifyLimit::discord(1);
    limit.per_window = 0;
    assert!(
        GatewayConfig::builder(ServerProfile::Discord)
            .identify_limit(limit)
            .build()
            .is_err()
    );
    let mut limit = tether_gateway::IdentifyLimit::discord(0);
    limit.per_window = 10;
    assert!(
        GatewayConfig::builder(ServerProfile::Discord)
            .identify_limit(limit)
            .build()
            .is_err()
    );
}

#[test]
fn an_invalidated_session_is_resumed_or_started_again_on_the_same_socket() {
    let mut s = Server::discord();
    let (conn, ready) = s.identify("bot", json!({}));
    let session = ready["session_id"].as_str().unwrap().to_owned();
    s.events();
    // Resumable: the client resumes on the very socket (as @discordjs/ws does).
    s.gw.invalidate_session("bot", true, s.now).unwrap();
    assert!(
        s.wire()
            .contains(&(conn, Wire::Json(json!({"op": 9, "d": true}))))
    );
    s.send(
        conn,
        json!({"op": 6, "d": {"token": "token-bot", "session_id": session, "seq": 1}}),
    );
    assert!(
        s.wire()
            .iter()
            .any(|(c, w)| *c == conn && matches!(w, Wire::Json(v) if v["t"] == "RESUMED"))
    );
    // Not resumable: the old session is gone; an identify on the same socket starts anew.
    s.gw.invalidate_session("bot", false, s.now).unwrap();
    s.send(
        conn,
        json!({"op": 2, "d": {"token": "token-bot", "intents": 0}}),
    );
    let wire = s.wire();
    let fresh = wire
        .iter()
        .find_map(|(_, w)| match w {
            Wire::Json(v) if v["t"] == "READY" => Some(v["d"]["session_id"].clone()),
            _ => None,
        })
        .expect("a new READY");
    assert_ne!(fresh, json!(session));
    let presence: Vec<_> = s
        .events()
        .into_iter()
        .filter(|e| matches!(e, GatewayEvent::Presence { .. }))
        .collect();
    assert!(
        presence.is_empty(),
        "the same socket, no presence change: {presence:?}"
    );
}

#[test]
fn op_1_and_op_7_come_on_a_schedule_when_asked_for() {
    let mut s = Server::discord();
    s.gw.set_faults(tether_gateway::Faults {
        heartbeat_request_after: Some(Duration::from_secs(1)),
        reconnect_after: Some(Duration::from_secs(2)),
        ..Default::default()
    });
    let (conn, _) = s.identify("bot", json!({}));
    let mut seen = Vec::new();
    let until = s.now + Duration::from_secs(3);
    while let Some(at) = s.gw.poll_timeout().filter(|at| *at <= until) {
        s.now = at;
        s.gw.handle_timeout(at);
        for (c, w) in s.wire() {
            if let (true, Wire::Json(v)) = (c == conn, w) {
                seen.push(v["op"].as_u64().unwrap());
            }
        }
    }
    assert_eq!(seen, [1, 7], "op 1 at 1 s, op 7 at 2 s");
    // A connection that ends takes its schedule with it.
    let (other, _) = s.identify("bot2", json!({}));
    s.gw.handle_close(other, s.now);
    assert!(
        s.gw.poll_timeout()
            .is_none_or(|at| at > s.now + Duration::from_secs(3))
    );
}
