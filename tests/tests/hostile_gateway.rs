//! The tokio gateway against hostile peers on real sockets (127.0.0.1): each case runs
//! while a well-behaved discord session watches, and that session must have every heartbeat
//! acknowledged within its interval throughout. Memory is judged by the gateway's own byte
//! accounting (`GatewayHandle::memory`), not by the process's resident size.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use serde_json::value::RawValue;
use tether_gateway::{GatewayConfig, GatewayEvent, ServerProfile};
use tether_tests::auth::token_auth;
use tether_tests::raw::{self, RawWs, Shape};
use tether_tokio::gateway::{GatewayHandle, GatewayOptions, serve};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const LIMIT: Duration = Duration::from_secs(10);
const HEARTBEAT: Duration = Duration::from_millis(1000);

/// A running gateway whose application echoes every message back as an `ECHO` dispatch,
/// as `tether gateway` does, and keeps every event it saw, printed.
struct Served {
    handle: GatewayHandle,
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    messages: Arc<std::sync::atomic::AtomicUsize>,
}

async fn start(config: GatewayConfig, options: GatewayOptions) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (handle, mut events) = serve(listener, config, token_auth, options).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let messages = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (app, log, count) = (handle.clone(), seen.clone(), messages.clone());
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            log.lock().unwrap().push(format!("{event:?}"));
            let GatewayEvent::Message { peer, text, .. } = event else {
                continue;
            };
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
                continue;
            };
            if let Ok(data) = RawValue::from_string(frame["d"].to_string()) {
                let _ = app.dispatch(&peer, "ECHO", data).await;
            }
        }
    });
    Served {
        handle,
        addr,
        seen,
        messages,
    }
}

fn discord() -> GatewayConfig {
    GatewayConfig::builder(ServerProfile::Discord)
        .heartbeat_interval(HEARTBEAT)
        .build()
        .unwrap()
}

fn identify(token: &str) -> String {
    serde_json::json!({"op": 2, "d": {"token": token, "intents": 0}}).to_string()
}

/// Connects, reads HELLO, identifies as `peer` and reads READY.
async fn ready_session(addr: SocketAddr, peer: &str) -> RawWs {
    let mut ws = RawWs::connect(addr).await;
    let hello = ws.read_frame(LIMIT).await.expect("hello");
    assert!(hello.text().contains("\"op\":10"), "{}", hello.text());
    ws.send_text(&identify(&format!("token-{peer}")))
        .await
        .unwrap();
    loop {
        let frame = ws.read_frame(LIMIT).await.expect("ready");
        if frame.text().contains("\"READY\"") {
            return ws;
        }
    }
}

/// What the watching session saw.
#[derive(Debug)]
struct Watched {
    beats: u32,
    late: u32,
    worst: Duration,
}

/// A well-behaved discord session: it heartbeats every interval, the first at once, and
/// wants each ack before the next heartbeat is due.
struct Watcher {
    stop: oneshot::Sender<()>,
    beats: Arc<std::sync::atomic::AtomicU32>,
    done: tokio::task::JoinHandle<Watched>,
}

impl Watcher {
    async fn start(addr: SocketAddr) -> Self {
        let mut ws = ready_session(addr, "watcher").await;
        let (stop, mut stopped) = oneshot::channel();
        let beats = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = beats.clone();
        let done = tokio::spawn(async move {
            let mut seen = Watched {
                beats: 0,
                late: 0,
                worst: Duration::ZERO,
            };
            let mut next = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    _ = &mut stopped => return seen,
                    () = tokio::time::sleep_until(next) => {}
                }
                next += HEARTBEAT;
                let sent = Instant::now();
                ws.send_text(r#"{"op":1,"d":null}"#).await.unwrap();
                seen.beats += 1;
                let acked = tokio::time::timeout(HEARTBEAT, async {
                    while let Some(frame) = ws.read_frame(HEARTBEAT).await {
                        if frame.text() == r#"{"op":11}"# {
                            return true;
                        }
                    }
                    false
                })
                .await;
                if acked != Ok(true) {
                    seen.late += 1;
                }
                seen.worst = seen.worst.max(sent.elapsed());
                counter.store(seen.beats, std::sync::atomic::Ordering::Relaxed);
            }
        });
        Self { stop, beats, done }
    }

    /// Watches until `beats` heartbeats were answered, then stops; panics unless each was
    /// acknowledged in time.
    async fn finish(self, beats: u32) -> Watched {
        let enough = async {
            while self.beats.load(std::sync::atomic::Ordering::Relaxed) < beats {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let _ = tokio::time::timeout(HEARTBEAT * (beats + 5), enough).await;
        let _ = self.stop.send(());
        let seen = self.done.await.unwrap();
        assert!(seen.beats >= beats, "the watcher beat too little: {seen:?}");
        assert_eq!(seen.late, 0, "a heartbeat went unacknowledged: {seen:?}");
        seen
    }
}

/// A new socket still gets HELLO promptly.
async fn newcomer_is_greeted(addr: SocketAddr, within: Duration) {
    let started = Instant::now();
    let mut ws = tokio::time::timeout(within, RawWs::connect(addr))
        .await
        .expect("the upgrade is answered in time");
    let hello = ws.read_frame(within).await.expect("hello in time");
    assert!(hello.text().contains("\"op\":10"));
    assert!(started.elapsed() < within, "{:?}", started.elapsed());
}

async fn op3_burst(frames: usize) {
    let served = start(discord(), GatewayOptions::default()).await;
    let watcher = Watcher::start(served.addr).await;
    let presence = r#"{"op":3,"d":{"status":"online","since":null,"activities":[],"afk":false}}"#;
    let burst: Vec<u8> = (0..frames)
        .flat_map(|_| raw::text_frame(presence))
        .collect();
    // The report's burst, before identify, and the same once ready: neither reads a thing.
    let mut early = RawWs::connect(served.addr).await;
    early.read_frame(LIMIT).await.expect("hello");
    let mut ready = ready_session(served.addr, "burster").await;
    let (a, b) = (burst.clone(), burst);
    let writers = [
        tokio::spawn(async move {
            let _ = early.write(&a).await;
            early
        }),
        tokio::spawn(async move {
            let _ = ready.write(&b).await;
            ready
        }),
    ];
    tokio::time::sleep(Duration::from_millis(500)).await;
    newcomer_is_greeted(served.addr, Duration::from_secs(2)).await;
    tokio::time::timeout(Duration::from_secs(2), served.handle.stats())
        .await
        .expect("the gateway answers its application")
        .unwrap();
    tokio::time::sleep(3 * HEARTBEAT).await;
    newcomer_is_greeted(served.addr, Duration::from_secs(2)).await;
    watcher.finish(3).await;
    let memory = served.handle.memory();
    let window = GatewayOptions::default().inbound_window;
    assert!(
        memory.inbound_peak <= 4 * (window + 1024),
        "what sockets handed on stays within their credit: {memory:?}"
    );
    assert!(
        served.messages.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "the application was served"
    );
    for writer in writers {
        writer.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h01_a_burst_of_2000_frames_leaves_every_other_session_served() {
    op3_burst(2_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h01_a_burst_of_20000_frames_leaves_every_other_session_served() {
    op3_burst(20_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h03_unfinished_messages_before_authentication_hold_at_most_the_budget() {
    let served = start(discord(), GatewayOptions::default()).await;
    let watcher = Watcher::start(served.addr).await;
    let sockets = 200;
    let mut clients = Vec::new();
    for i in 0..sockets {
        let mut ws = RawWs::connect(served.addr).await;
        ws.read_frame(LIMIT).await.expect("hello");
        // Half promise one 15 MiB frame, half send a message in 4 KiB fragments that never
        // ends; each then sends 128 KiB of it.
        let chunk = vec![b'a'; 4096];
        let mut bytes = Vec::new();
        if i % 2 == 0 {
            bytes.extend(raw::frame_bytes(
                raw::TEXT,
                &vec![b'a'; 128 << 10],
                15 << 20,
                Shape::default(),
            ));
        } else {
            let more = Shape {
                fin: false,
                ..Shape::default()
            };
            bytes.extend(raw::frame_bytes(raw::TEXT, &chunk, 4096, more));
            for _ in 0..31 {
                bytes.extend(raw::frame_bytes(raw::CONTINUATION, &chunk, 4096, more));
            }
        }
        clients.push(tokio::spawn(async move {
            let _ = ws.write(&bytes).await;
            ws.close_code(LIMIT).await
        }));
    }
    for client in clients {
        assert_eq!(client.await.unwrap(), Some(1009));
    }
    watcher.finish(1).await;
    let memory = served.handle.memory();
    let config = discord();
    // The limit, its allowance for headers, and one read buffer of 8 KiB, per socket.
    let per_socket = config.max_message_before_ready() * 5 / 4 + 1024 + (8 << 10);
    assert!(
        memory.unfinished_peak <= sockets * per_socket,
        "{} bytes held for unfinished messages, budget {}: {memory:?}",
        memory.unfinished_peak,
        sockets * per_socket
    );
    assert!(memory.unfinished_peak > 0, "the accounting saw them");
    assert_eq!(served.handle.stats().await.unwrap().too_big, sockets as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h04_oversized_tokens_are_refused() {
    let served = start(discord(), GatewayOptions::default()).await;
    let watcher = Watcher::start(served.addr).await;
    // 1 MB: over the message limit before ready, closed as its bytes arrive.
    let mut huge = RawWs::connect(served.addr).await;
    huge.read_frame(LIMIT).await.expect("hello");
    let token = format!("token-{}", "x".repeat(1 << 20));
    let writer = tokio::spawn(async move {
        let _ = huge.send_text(&identify(&token)).await;
        huge.close_code(LIMIT).await
    });
    assert_eq!(writer.await.unwrap(), Some(1009));
    // 4 KiB: a message small enough, a token too long: refused unread.
    let mut long = RawWs::connect(served.addr).await;
    long.read_frame(LIMIT).await.expect("hello");
    long.send_text(&identify(&format!("token-{}", "y".repeat(4096))))
        .await
        .unwrap();
    assert_eq!(long.close_code(LIMIT).await, Some(4004));
    watcher.finish(1).await;
    let stats = served.handle.stats().await.unwrap();
    assert_eq!((stats.oversized_tokens, stats.too_big), (1, 1));
    assert_eq!(stats.ready, 1, "only the watcher got in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h05_replay_and_outbound_queues_hold_at_most_their_byte_budgets() {
    let config = GatewayConfig::builder(ServerProfile::Discord)
        .heartbeat_interval(HEARTBEAT)
        .replay_bytes(64 << 10)
        .replay_bytes_total(256 << 10)
        .build()
        .unwrap();
    let options = GatewayOptions {
        outbound_bytes: 128 << 10,
        memory_budget: 1 << 20,
        ..GatewayOptions::default()
    };
    let served = start(config, options).await;
    let watcher = Watcher::start(served.addr).await;
    let peers: Vec<String> = (0..8).map(|i| format!("reader-never-{i}")).collect();
    let mut held = Vec::new();
    for peer in &peers {
        // Identified, and never reads again (not even READY).
        let mut ws = RawWs::connect_stingy(served.addr, 4096).await;
        ws.send_text(&identify(&format!("token-{peer}")))
            .await
            .unwrap();
        held.push(ws);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let data = RawValue::from_string(format!("\"{}\"", "z".repeat(16 << 10))).unwrap();
    for _ in 0..400 {
        for peer in &peers {
            let _ = served.handle.dispatch(peer, "BIG", data.clone()).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    watcher.finish(1).await;
    let memory = served.handle.memory();
    let stats = served.handle.stats().await.unwrap();
    assert!(
        memory.outbound_socket_peak <= memory.outbound_socket_budget,
        "{memory:?}"
    );
    assert!(memory.outbound_peak <= memory.outbound_budget, "{memory:?}");
    assert!(
        memory.outbound_peak > memory.outbound_budget / 2,
        "the budget was put to the test: {memory:?} {stats:?} {:?}",
        served.handle.accept_stats()
    );
    assert!(stats.replay_bytes_peak <= 256 << 10, "{stats:?}");
    assert!(stats.replay_bytes_peak > 128 << 10, "{stats:?}");
    assert!(
        stats.too_slow + stats.over_budget >= 1,
        "clients that never read were closed: {stats:?}"
    );
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h06_half_finished_upgrades_cannot_keep_a_new_client_out() {
    let options = GatewayOptions {
        upgrade_timeout: Duration::from_secs(5),
        ..GatewayOptions::default()
    };
    let served = start(discord(), options).await;
    let watcher = Watcher::start(served.addr).await;
    let mut half = Vec::new();
    for _ in 0..5_000 {
        let mut tcp = TcpStream::connect(served.addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        half.push(tcp);
    }
    // A client that honours 503 and its Retry-After, as tether's do, is in within the
    // upgrade deadline: a slow upgrade is cut to make room for it.
    let started = Instant::now();
    let mut tries = 0;
    let mut ws = loop {
        tries += 1;
        let (mut ws, status) = RawWs::try_connect(served.addr).await.unwrap();
        if status.starts_with("HTTP/1.1 101") {
            let hello = ws.read_frame(LIMIT).await.expect("hello");
            assert!(hello.text().contains("\"op\":10"));
            break ws;
        }
        assert!(status.starts_with("HTTP/1.1 503"), "{status}");
        assert!(started.elapsed() < Duration::from_secs(5), "{tries} tries");
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    ws.send_text(&identify("token-newcomer")).await.unwrap();
    let accepted = served.handle.accept_stats();
    let bound = GatewayOptions::default().max_pending_upgrades;
    assert!(accepted.pending_upgrades <= bound, "{accepted:?}");
    assert!(accepted.evicted >= 1, "{accepted:?}");
    assert!(
        accepted.busy + accepted.evicted >= (5_000 - bound) as u64,
        "over the bound, a newcomer hears 503 or a slow upgrade is cut: {accepted:?}"
    );
    watcher.finish(1).await;
    drop(half);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h07_protocol_violations_are_closed_with_the_rfc_6455_codes() {
    let served = start(discord(), GatewayOptions::default()).await;
    let watcher = Watcher::start(served.addr).await;
    let cases: [(&str, Vec<u8>, u16); 4] = [
        (
            "invalid UTF-8 in a text frame",
            raw::frame_bytes(raw::TEXT, &[0x7b, 0xff, 0xfe, 0x7d], 4, Shape::default()),
            1007,
        ),
        (
            "a reserved bit",
            raw::frame_bytes(
                raw::TEXT,
                b"{}",
                2,
                Shape {
                    rsv: 0b100,
                    ..Shape::default()
                },
            ),
            1002,
        ),
        (
            "a reserved opcode",
            raw::frame_bytes(0x3, b"{}", 2, Shape::default()),
            1002,
        ),
        (
            "an unmasked client frame",
            raw::frame_bytes(
                raw::TEXT,
                b"{}",
                2,
                Shape {
                    masked: false,
                    ..Shape::default()
                },
            ),
            1002,
        ),
    ];
    for (what, bytes, code) in cases {
        let mut ws = ready_session(served.addr, "violator").await;
        ws.write(&bytes).await.unwrap();
        assert_eq!(ws.close_code(LIMIT).await, Some(code), "{what}");
    }
    watcher.finish(1).await;
    assert_eq!(served.handle.stats().await.unwrap().protocol_violations, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h08_no_token_reaches_the_gateway_events() {
    let served = start(discord(), GatewayOptions::default()).await;
    let secret = "SECRET-0f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let frames = [
        serde_json::json!({"op": 2, "d": secret}).to_string(),
        serde_json::json!({"op": secret}).to_string(),
        serde_json::json!({"op": 6, "d": {"token": secret, "session_id": 7}}).to_string(),
        serde_json::json!({"op": 2, "d": {"token": secret}}).to_string(),
        serde_json::json!({"op": 2, "d": {"token": format!("{secret}{}", "x".repeat(3000))}})
            .to_string(),
    ];
    for frame in frames {
        let mut ws = RawWs::connect(served.addr).await;
        ws.read_frame(LIMIT).await.expect("hello");
        ws.send_text(&frame).await.unwrap();
        assert!(ws.close_code(LIMIT).await.is_some(), "{frame}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let seen = served.seen.lock().unwrap().join("\n");
    assert!(
        seen.contains("BadFrame"),
        "the bad frames were reported: {seen}"
    );
    assert!(!seen.contains(secret), "a token leaked: {seen}");
    assert!(
        !seen.contains(&hex(secret)),
        "a token leaked in hex: {seen}"
    );
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}
