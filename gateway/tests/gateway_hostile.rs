//! The sans-IO gateway against hostile clients and its own stalls, on a virtual clock:
//! late liveness judgments (h02), size limits before and after ready (h03), oversized
//! tokens (h04), the replay byte budget (h05), protocol violations (h07) and reasons that
//! never quote what a client sent (h08).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use support::{auth, epoch};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use serde_json::value::RawValue;
use tether_core::{ConfigError, ConnId, Frame};
use tether_gateway::{
    CloseWhy, Credentials, Gateway, GatewayCommand, GatewayConfig, GatewayEvent, ServerProfile,
    Violation,
};

fn discord(interval_ms: u64) -> GatewayConfig {
    GatewayConfig::builder(ServerProfile::Discord)
        .heartbeat_interval(Duration::from_millis(interval_ms))
        .build()
        .unwrap()
}

fn identify(gw: &mut Gateway, peer: &str, now: Instant) -> ConnId {
    let conn = gw.accept(now);
    let frame = json!({"op": 2, "d": {"token": format!("token-{peer}"), "intents": 0}});
    gw.handle_frame(conn, Frame::text(frame.to_string()), now);
    conn
}

fn heartbeat() -> Frame {
    Frame::text(r#"{"op":1,"d":null}"#)
}

/// The close frames written so far, by connection.
fn closes(gw: &mut Gateway) -> BTreeMap<ConnId, u16> {
    std::iter::from_fn(|| gw.poll_command())
        .filter_map(|c| match c {
            GatewayCommand::Close { conn, frame } => Some((conn, frame.code)),
            _ => None,
        })
        .collect()
}

fn unresponsive(gw: &mut Gateway) -> Vec<ConnId> {
    std::iter::from_fn(|| gw.poll_event())
        .filter_map(|e| match e {
            GatewayEvent::Closing {
                conn,
                why: CloseWhy::Unresponsive,
                ..
            } => Some(conn),
            _ => None,
        })
        .collect()
}

/// Sessions that heartbeat once a second, each at its own phase, driven on a virtual
/// clock. While the gateway is stalled, what they send waits; when it comes back it is
/// driven in the worst order: its timers first, then what waited.
struct Fleet {
    gw: Gateway,
    now: Instant,
    /// Each live session's next heartbeat.
    next: BTreeMap<ConnId, Instant>,
    interval: Duration,
}

impl Fleet {
    fn new(sessions: u32) -> Self {
        let interval = Duration::from_secs(1);
        let now = epoch();
        let mut gw = Gateway::new(discord(1000), auth, 7);
        let mut next = BTreeMap::new();
        for i in 0..sessions {
            let conn = identify(&mut gw, &format!("bot{i}"), now);
            next.insert(conn, now + interval * i / sessions);
        }
        closes(&mut gw);
        std::iter::from_fn(|| gw.poll_event()).for_each(drop);
        Self {
            gw,
            now,
            next,
            interval,
        }
    }

    /// Runs for `span` with the gateway awake: every heartbeat is read when it is sent,
    /// every timer handled when it falls due.
    fn run(&mut self, span: Duration) {
        let until = self.now + span;
        loop {
            let beat = self.next.iter().map(|(&c, &at)| (at, c)).min();
            let timer = self.gw.poll_timeout();
            match (beat, timer) {
                (Some((at, conn)), timer) if at <= until && timer.is_none_or(|t| at < t) => {
                    self.now = at;
                    self.gw.handle_frame(conn, heartbeat(), at);
                    self.next.insert(conn, at + self.interval);
                }
                (_, Some(t)) if t <= until => {
                    self.now = t.max(self.now);
                    self.gw.handle_timeout(self.now);
                }
                _ => break,
            }
        }
        self.now = until;
    }

    /// The gateway does nothing for `span` while the live sessions go on beating; then it
    /// handles its overdue timers first, and the timers that fall due during the next
    /// `catch_up` too, before it reads the heartbeats that waited.
    fn stall(&mut self, span: Duration, catch_up: Duration) {
        let until = self.now + span;
        let read_at = until + catch_up;
        let mut waiting = Vec::new();
        for (&conn, at) in &mut self.next {
            while *at <= read_at {
                waiting.push(conn);
                *at += self.interval;
            }
        }
        self.now = until;
        self.gw.handle_timeout(self.now);
        while let Some(at) = self.gw.poll_timeout().filter(|at| *at <= read_at) {
            self.now = at.max(self.now);
            self.gw.handle_timeout(self.now);
        }
        self.now = read_at;
        for conn in waiting {
            self.gw.handle_frame(conn, heartbeat(), self.now);
        }
    }
}

#[test]
fn h02_a_stall_shorter_than_the_liveness_bound_drops_no_session() {
    let mut fleet = Fleet::new(2000);
    fleet.run(Duration::from_secs(3));
    assert!(unresponsive(&mut fleet.gw).is_empty());
    fleet.stall(Duration::from_millis(1000), Duration::from_millis(300));
    fleet.run(Duration::from_secs(4));
    assert_eq!(unresponsive(&mut fleet.gw), []);
    let stats = fleet.gw.stats();
    assert_eq!(stats.unresponsive, 0);
    assert!(
        stats.registry.reprieves > 0,
        "the stall was seen: {stats:?}"
    );
    assert_eq!(fleet.gw.connections(), 2000);
}

#[test]
fn h02_a_longer_stall_drops_only_the_sessions_that_went_silent() {
    let mut fleet = Fleet::new(2000);
    fleet.run(Duration::from_secs(3));
    // Every other session dies as the gateway stops.
    let dead: Vec<ConnId> = fleet.next.keys().copied().step_by(2).collect();
    for conn in &dead {
        fleet.next.remove(conn);
    }
    fleet.stall(Duration::from_millis(2000), Duration::from_millis(300));
    fleet.run(Duration::from_secs(5));
    let mut dropped = unresponsive(&mut fleet.gw);
    dropped.sort_unstable();
    assert_eq!(dropped, dead, "exactly the silent sessions are dropped");
    assert_eq!(fleet.gw.connections(), 2000, "closing, not yet closed");
}

#[test]
fn h02_a_gateway_on_time_judges_at_the_bound_and_a_reprieve_is_given_once() {
    let mut gw = Gateway::new(discord(1000), auth, 7);
    let start = epoch();
    let conn = identify(&mut gw, "bot", start);
    closes(&mut gw);
    // On time: judged at exactly 1.5 intervals.
    let due = gw.poll_timeout().unwrap();
    assert_eq!(due - start, Duration::from_millis(1500));
    gw.handle_timeout(due);
    assert_eq!(closes(&mut gw).get(&conn), Some(&4000));

    // Late by 5 s: one more bound, then the verdict even if the server is late again.
    let conn = identify(&mut gw, "bot2", start);
    closes(&mut gw);
    let late = start + Duration::from_secs(5);
    gw.handle_timeout(late);
    assert!(closes(&mut gw).is_empty());
    gw.handle_timeout(late + Duration::from_secs(5));
    assert_eq!(closes(&mut gw).get(&conn), Some(&4000));
    assert_eq!(gw.stats().registry.reprieves, 1);
}

#[test]
fn h03_messages_over_the_limit_close_with_1009_before_and_after_ready() {
    let config = GatewayConfig::builder(ServerProfile::Discord)
        .max_message_before_ready(4096)
        .max_message(64 << 10)
        .build()
        .unwrap();
    let mut gw = Gateway::new(config, auth, 7);
    let now = epoch();
    let conn = gw.accept(now);
    let limits: Vec<_> = std::iter::from_fn(|| gw.poll_command())
        .filter_map(|c| match c {
            GatewayCommand::ReadLimit { conn, max_message } => Some((conn, max_message)),
            _ => None,
        })
        .collect();
    assert_eq!(limits, [(conn, 4096)], "the socket reads 4 KiB at most");
    let padding = "x".repeat(5000);
    let big = json!({"op": 2, "d": {"token": "token-a", "pad": padding}});
    gw.handle_frame(conn, Frame::text(big.to_string()), now);
    assert_eq!(closes(&mut gw).get(&conn), Some(&1009));
    assert_eq!(gw.stats().too_big, 1);

    // Once ready the larger limit holds.
    let ready = identify(&mut gw, "b", now);
    let limits: Vec<_> = std::iter::from_fn(|| gw.poll_command())
        .filter_map(|c| match c {
            GatewayCommand::ReadLimit { conn, max_message } => Some((conn, max_message)),
            _ => None,
        })
        .collect();
    assert_eq!(limits, [(ready, 4096), (ready, 64 << 10)]);
    let presence = json!({"op": 3, "d": {"pad": padding}});
    gw.handle_frame(ready, Frame::text(presence.to_string()), now);
    assert!(closes(&mut gw).is_empty());
    gw.handle_frame(ready, Frame::text("y".repeat((64 << 10) + 1)), now);
    assert_eq!(closes(&mut gw).get(&ready), Some(&1009));
    assert_eq!(gw.stats().too_big, 2);
}

#[test]
fn h04_oversized_tokens_are_refused_before_the_authenticator_sees_them() {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let counting = move |c: &Credentials<'_>| {
        counter.fetch_add(1, Ordering::Relaxed);
        auth(c)
    };
    let config = GatewayConfig::builder(ServerProfile::Discord)
        .max_token(256)
        .build()
        .unwrap();
    let mut gw = Gateway::new(config, counting, 7);
    let now = epoch();
    let conn = gw.accept(now);
    let token = format!("token-{}", "a".repeat(300));
    let frame = json!({"op": 2, "d": {"token": token}});
    gw.handle_frame(conn, Frame::text(frame.to_string()), now);
    assert_eq!(closes(&mut gw).get(&conn), Some(&4004));
    assert_eq!(gw.stats().oversized_tokens, 1);
    assert_eq!(seen.load(Ordering::Relaxed), 0);
    identify(&mut gw, "fine", now);
    assert_eq!(seen.load(Ordering::Relaxed), 1);
    assert_eq!(gw.stats().ready, 1);
}

#[test]
fn h05_replay_is_held_within_its_byte_budgets() {
    let config = GatewayConfig::builder(ServerProfile::Discord)
        .replay_capacity(1000)
        .replay_bytes(10_000)
        .replay_bytes_total(25_000)
        .build()
        .unwrap();
    let mut gw = Gateway::new(config, auth, 7);
    let now = epoch();
    let a = identify(&mut gw, "a", now);
    let session = std::iter::from_fn(|| gw.poll_command())
        .find_map(|c| match c {
            GatewayCommand::Send {
                frame: Frame::Text(t),
                ..
            } => serde_json::from_str::<serde_json::Value>(t.as_str()).ok()?["d"]["session_id"]
                .as_str()
                .map(str::to_owned),
            _ => None,
        })
        .unwrap();
    for peer in ["b", "c"] {
        identify(&mut gw, peer, now);
    }
    let data = RawValue::from_string(format!("\"{}\"", "z".repeat(1000))).unwrap();
    for _ in 0..100 {
        for peer in ["a", "b", "c"] {
            gw.dispatch(peer, "BIG", &data).unwrap();
        }
    }
    let stats = gw.stats();
    assert!(stats.replay_bytes_peak <= 25_000, "{stats:?}");
    assert!(stats.replay_bytes <= 25_000);
    assert!(
        stats.replay_bytes >= 20_000,
        "the budget is used: {stats:?}"
    );

    // One dispatch over the per-session budget is not kept: resuming from before it is out
    // of reach.
    let huge = RawValue::from_string(format!("\"{}\"", "z".repeat(20_000))).unwrap();
    let huge_seq = gw.dispatch("a", "HUGE", &huge).unwrap().seq;
    assert!(gw.stats().replay_bytes <= 25_000);
    gw.handle_close(a, now);
    std::iter::from_fn(|| gw.poll_command()).for_each(drop);
    let resume = |seq: u64| {
        let d = json!({"token": "token-a", "session_id": session, "seq": seq});
        Frame::text(json!({"op": 6, "d": d}).to_string())
    };
    let first = gw.accept(now);
    gw.handle_frame(first, resume(huge_seq - 1), now);
    let answers: Vec<_> = std::iter::from_fn(|| gw.poll_command()).collect();
    assert!(
        answers.iter().any(|c| matches!(c,
            GatewayCommand::Send { conn, frame: Frame::Text(t) }
                if *conn == first && t.as_str() == r#"{"op":9,"d":false}"#)),
        "the oversized dispatch was not kept, so it cannot be replayed: {answers:?}"
    );
    let second = gw.accept(now);
    gw.handle_frame(second, resume(huge_seq), now);
    assert_eq!(gw.owner("a"), Some(second), "a client that saw it resumes");
}

#[test]
fn h07_protocol_violations_close_with_the_codes_rfc_6455_names() {
    let mut gw = Gateway::new(discord(1000), auth, 7);
    let now = epoch();
    let cases = [
        (Violation::Protocol, 1002),
        (Violation::InvalidUtf8, 1007),
        (Violation::TooBig, 1009),
    ];
    for (violation, code) in cases {
        let conn = gw.accept(now);
        gw.handle_violation(conn, violation);
        assert_eq!(closes(&mut gw).get(&conn), Some(&code), "{violation:?}");
        let events: Vec<_> = std::iter::from_fn(|| gw.poll_event()).collect();
        assert!(
            events
                .iter()
                .any(|e| matches!(e, GatewayEvent::BadFrame { conn: c, .. } if *c == conn)),
            "{events:?}"
        );
    }
    let stats = gw.stats();
    assert_eq!((stats.protocol_violations, stats.too_big), (2, 1));
}

#[test]
fn h08_reasons_for_bad_frames_never_quote_what_the_client_sent() {
    let secret = "SECRET-TOKEN-0123456789";
    let frames = [
        (ServerProfile::Discord, json!({"op": 2, "d": secret})),
        (ServerProfile::Discord, json!({"op": secret})),
        (
            ServerProfile::Discord,
            json!({"op": 6, "d": {"token": secret, "session_id": 5}}),
        ),
        (ServerProfile::OpenClaw, json!({"type": secret})),
        (
            ServerProfile::OpenClaw,
            json!({"type": "req", "id": 1, "method": 7, "x": secret}),
        ),
    ];
    for (profile, frame) in frames {
        let config = GatewayConfig::builder(profile).build().unwrap();
        let mut gw = Gateway::new(config, auth, 7);
        let now = epoch();
        let conn = gw.accept(now);
        gw.handle_frame(conn, Frame::text(frame.to_string()), now);
        let reasons: Vec<String> = std::iter::from_fn(|| gw.poll_event())
            .filter_map(|e| match e {
                GatewayEvent::BadFrame { reason, .. } => Some(reason),
                _ => None,
            })
            .collect();
        assert_eq!(reasons.len(), 1, "{frame}: {reasons:?}");
        assert!(!reasons[0].contains(secret), "{frame}: {}", reasons[0]);
        assert!(format!("{gw:?}").len() < 10_000);
    }
}

#[test]
fn byte_budgets_too_large_or_zero_fail_at_build() {
    let builder = || GatewayConfig::builder(ServerProfile::Discord);
    assert!(matches!(
        builder().max_message(0).build(),
        Err(ConfigError::Zero {
            field: "max_message"
        })
    ));
    assert!(matches!(
        builder().max_message(usize::MAX).build(),
        Err(ConfigError::TooLarge {
            field: "max_message",
            ..
        })
    ));
    assert!(matches!(
        builder()
            .max_message(4096)
            .max_message_before_ready(8192)
            .build(),
        Err(ConfigError::TooLarge {
            field: "max_message_before_ready",
            ..
        })
    ));
    assert!(matches!(
        builder().max_token(1 << 20).build(),
        Err(ConfigError::TooLarge {
            field: "max_token",
            ..
        })
    ));
    assert!(matches!(
        builder().replay_bytes_total(usize::MAX).build(),
        Err(ConfigError::TooLarge {
            field: "replay_bytes_total",
            ..
        })
    ));
    assert!(matches!(
        builder().handshake_timeout(Duration::MAX).build(),
        Err(ConfigError::TooLong {
            field: "handshake_timeout",
            ..
        })
    ));
}
