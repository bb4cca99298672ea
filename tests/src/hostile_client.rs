//! The client against a hostile or unlucky server and its own misuse, on real sockets
//! (127.0.0.1), written once for every adapter: `hostile_client!(adapter)` makes the tests.
//!
//! - k02: a close code that races the client's writes still decides how the session goes
//!   on (4004 stops, 4007 starts fresh), 50 times of 50;
//! - k08: `shutdown()`, `state()` and `stats()` answer while a peer that never reads holds
//!   the writes back; shutdown within the drain timeout;
//! - k09: a driver that dies mid-session (a start gate that panics) still ends the stream
//!   with `Stopped`, answers every call, and hands the caller's frame back.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tether_core::{
    Config, Discord, Event, Frame, Identify, Plain, SendErrorKind, StopReason, Token,
};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::adapter::Adapter;
use crate::scenarios::fast;

/// Generates the hostile-server tests for an adapter.
#[macro_export]
macro_rules! hostile_client {
    ($adapter:expr) => {
        $crate::hostile_client!(@one $adapter, k02_a_close_code_racing_writes_decides, 120);
        $crate::hostile_client!(@one $adapter, k08_control_calls_pass_a_peer_that_never_reads, 30);
        $crate::hostile_client!(@one $adapter, k09_a_driver_that_dies_still_stops_and_answers, 30);
    };
    (@one $adapter:expr, $name:ident, $secs:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            tokio::time::timeout(
                std::time::Duration::from_secs($secs),
                $crate::hostile_client::$name(&$adapter),
            )
            .await
            .expect(concat!(stringify!($name), " ran past its bound"));
        }
    };
}

fn discord() -> Discord {
    Discord::builder(Identify::new(Token::new("test-token"), 0))
        .build()
        .unwrap()
}

async fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    (listener, url)
}

type ServerWs = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn accept(listener: &TcpListener) -> ServerWs {
    let (tcp, _) = listener.accept().await.unwrap();
    tokio_tungstenite::accept_async(tcp).await.unwrap()
}

async fn next_text(ws: &mut ServerWs) -> Option<String> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => return Some(t.to_string()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

fn op(text: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v["op"].as_u64())
        .unwrap_or(u64::MAX)
}

/// HELLO, the client's identify or resume (its opcode is returned), and for an identify a
/// READY.
async fn handshake(ws: &mut ServerWs) -> u64 {
    let hello = r#"{"op":10,"d":{"heartbeat_interval":45000}}"#;
    ws.send(Message::text(hello)).await.unwrap();
    let first = next_text(ws).await.expect("identify or resume");
    let first_op = op(&first);
    if first_op == 2 {
        let ready = r#"{"op":0,"s":1,"t":"READY","d":{"v":10,"session_id":"s1","resume_gateway_url":null}}"#;
        ws.send(Message::text(ready)).await.unwrap();
    }
    first_op
}

/// One trial of k02: the server closes with `code` while the client writes as fast as it
/// can, and holds the socket (reading nothing) so the close frame is all the client gets.
/// Returns the client's stop, if it stopped, and the opcode of its next handshake, if it
/// made one (looked for within 300 ms of a stop).
async fn race_once<A: Adapter>(a: &A, code: u16) -> (Option<StopReason>, Option<u64>) {
    let (listener, url) = listen().await;
    let (handshakes, mut seen) = mpsc::unbounded_channel();
    let server = tokio::spawn(async move {
        let mut ws = accept(&listener).await;
        handshake(&mut ws).await;
        // Some of the client's writes are in: it is writing now.
        for _ in 0..3 {
            next_text(&mut ws).await;
        }
        let close = CloseFrame {
            code: CloseCode::from(code),
            reason: "closing".into(),
        };
        let _ = ws.send(Message::Close(Some(close))).await;
        let mut again = accept(&listener).await;
        let _ = handshakes.send(handshake(&mut again).await);
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(ws);
    });
    let options = tether_adapter::Options::builder().build().unwrap();
    let (client, mut events) = a.start(&url, fast().build().unwrap(), discord(), options);
    // Writes start once the session is ready: sends before it would only queue.
    let ready = tokio::time::timeout(Duration::from_secs(5), async {
        while !matches!(events.next().await, Some(Event::Ready { .. }) | None) {}
    })
    .await;
    assert!(ready.is_ok(), "{}: the session is ready", a.name());
    let writer = client.clone();
    let writing = tokio::spawn(async move {
        loop {
            if writer
                .feed(Frame::text(r#"{"op":3,"d":{"status":"online"}}"#))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let mut stopped = None;
    let mut next = None;
    let until = Instant::now() + Duration::from_secs(3);
    loop {
        let left = until.saturating_duration_since(Instant::now());
        tokio::select! {
            event = tokio::time::timeout(left, events.next()) => match event {
                Ok(Some(Event::Stopped { reason })) => {
                    stopped = Some(reason);
                    break;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            },
            op = seen.recv() => {
                next = op;
                break;
            }
        }
    }
    if stopped.is_some() {
        next = tokio::time::timeout(Duration::from_millis(300), seen.recv())
            .await
            .ok()
            .flatten();
    }
    writing.abort();
    let _ = client.shutdown().await;
    server.abort();
    (stopped, next)
}

/// k02: the received close frame is the truth about how a connection ended, whatever the
/// write path saw meanwhile.
pub async fn k02_a_close_code_racing_writes_decides<A: Adapter>(a: &A) {
    for trial in 0..50 {
        let (stopped, next) = race_once(a, 4004).await;
        assert!(
            matches!(&stopped, Some(StopReason::Fatal(cause)) if cause.code() == Some(4004)),
            "{}: trial {trial}: 4004 must stop the client, got {stopped:?}",
            a.name()
        );
        assert_eq!(next, None, "no handshake after a fatal close");
    }
    for trial in 0..50 {
        let (stopped, next) = race_once(a, 4007).await;
        assert!(stopped.is_none(), "trial {trial}: {stopped:?}");
        assert_eq!(
            next,
            Some(2),
            "{}: trial {trial}: 4007 must start a fresh session (identify, op 2)",
            a.name()
        );
    }
}

/// k08: a peer that never reads backs the client's writes up; control calls still pass,
/// and shutdown ends within the drain timeout (and its abort grace).
pub async fn k08_control_calls_pass_a_peer_that_never_reads<A: Adapter>(a: &A) {
    let (listener, url) = listen().await;
    let server = tokio::spawn(async move {
        let ws = accept(&listener).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(ws);
    });
    let config = fast()
        .drain_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let plain = Plain::builder().heartbeat_interval(None).build().unwrap();
    let options = tether_adapter::Options::builder().build().unwrap();
    let (client, mut events) = a.start(&url, config, plain, options);
    let ready = tokio::time::timeout(Duration::from_secs(5), async {
        while !matches!(events.next().await, Some(Event::Ready { .. }) | None) {}
    })
    .await;
    assert!(ready.is_ok(), "{}: the session is ready", a.name());
    // The events are read on, so the stream never holds the reads back.
    let draining = tokio::spawn(async move { while events.next().await.is_some() {} });
    let writer = client.clone();
    let writing = tokio::spawn(async move {
        let big = Frame::binary(vec![7u8; 256 << 10]);
        while writer.feed(big.clone()).await.is_ok() {}
    });
    // Long enough for the socket's buffers and the writer's queue to fill.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let quick = Duration::from_millis(500);
    tokio::time::timeout(quick, client.state())
        .await
        .expect("state() answers while writes are held back")
        .unwrap();
    tokio::time::timeout(quick, client.stats())
        .await
        .expect("stats() answers while writes are held back")
        .unwrap();
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(3), client.shutdown())
        .await
        .expect("shutdown() ends within the drain timeout");
    assert!(
        started.elapsed() < Duration::from_millis(1000 + 100 + 500),
        "{}: shutdown took {:?}",
        a.name(),
        started.elapsed()
    );
    writing.abort();
    draining.abort();
    server.abort();
}

/// k09: code the driver runs panics (here, the start gate on the second session start);
/// the stream still ends with `Stopped`, saying why, and every call is answered, the
/// caller's frame handed back.
pub async fn k09_a_driver_that_dies_still_stops_and_answers<A: Adapter>(a: &A) {
    let (listener, url) = listen().await;
    let server = tokio::spawn(async move {
        let mut ws = accept(&listener).await;
        handshake(&mut ws).await;
        // Not resumable: the client starts afresh, and asks its gate first.
        let close = CloseFrame {
            code: CloseCode::from(4007),
            reason: "invalid seq".into(),
        };
        let _ = ws.send(Message::Close(Some(close))).await;
        // Greet the next socket: the client asks its gate before identifying on it.
        let mut again = accept(&listener).await;
        let hello = r#"{"op":10,"d":{"heartbeat_interval":45000}}"#;
        let _ = again.send(Message::text(hello)).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    let starts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let options = tether_adapter::Options::builder()
        .start_gate(move |_conn| {
            let n = starts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            assert!(n == 0, "the test's start gate panics on the second start");
            async {}
        })
        .build()
        .unwrap();
    let config: Config = fast().start_gate(true).build().unwrap();
    let (client, mut events) = a.start(&url, config, discord(), options);
    let mut last = None;
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_secs(10), events.next()).await {
        last = Some(event);
    }
    assert!(
        matches!(
            last,
            Some(Event::Stopped {
                reason: StopReason::DriverGone
            })
        ),
        "{}: the stream ends with a stop saying why, got {last:?}",
        a.name()
    );
    let mine = Frame::text(r#"{"op":3,"d":{"mine":true}}"#);
    let refused = client.send(mine.clone()).await.expect_err("refused");
    assert_eq!(refused.kind, SendErrorKind::Stopped);
    assert_eq!(refused.frame, mine, "the caller's own frame comes back");
    assert_eq!(client.feed(mine.clone()).await, Err(mine));
    assert!(client.state().await.is_err());
    assert!(client.stats().await.is_err());
    assert!(
        client
            .reconnect(tether_core::ReconnectMode::Fresh)
            .await
            .is_err()
    );
    assert!(client.shutdown().await.is_empty());
    server.abort();
}
