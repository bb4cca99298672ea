//! The client against a hostile or unlucky server and its own misuse, on real sockets
//! (127.0.0.1), written once for every adapter: `hostile_client!(adapter)` makes the tests.
//!
//! - k02: a close code that races the client's writes still decides how the session goes
//!   on (4004 stops, 4007 starts fresh), 50 times of 50;
//! - k08: `shutdown()`, `state()` and `stats()` answer while a peer that never reads holds
//!   the writes back; shutdown within the drain timeout;
//! - k09: a driver that dies mid-session (a start gate that panics) still ends the stream
//!   with `Stopped`, answers every call, and hands the caller's frame back;
//! - k06: 301 and 302 on the upgrade stop the client, typed, with where they point;
//! - open failures say which kind they are: refused, TLS against a plain server;
//! - k01: a server flooding heartbeat requests and never reading gets one answer per ack and
//!   a typed end (the zombie check), not a growing client;
//! - k03: an unreadable READY, then a good one: ready within one backoff;
//! - k04: HELLO intervals out of bounds are clamped and said, and the session goes on;
//! - k05: a 503 whose `Retry-After` is an HTTP date is waited out.

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
        $crate::hostile_client!(@one $adapter, k06_redirects_stop_with_their_location, 30);
        $crate::hostile_client!(@one $adapter, open_failures_say_which_kind_they_are, 30);
        $crate::hostile_client!(@one $adapter, k01_a_flood_of_heartbeat_requests_is_no_growth, 30);
        $crate::hostile_client!(@one $adapter, k03_an_unreadable_ready_then_a_good_one, 30);
        $crate::hostile_client!(@one $adapter, k04_hello_intervals_out_of_bounds_are_clamped, 30);
        $crate::hostile_client!(@one $adapter, k05_retry_after_as_a_date_is_honoured, 30);
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

/// A server that answers every upgrade with `status` and a `Location`, counting requests.
async fn redirecting(
    status: &'static str,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (listener, url) = listen().await;
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = tcp.read(&mut buf).await;
            let answer = format!(
                "HTTP/1.1 {status}\r\nLocation: ws://127.0.0.1:9/elsewhere\r\nContent-Length: 0\r\n\r\n"
            );
            let _ = tcp.write_all(answer.as_bytes()).await;
        }
    });
    (url, seen)
}

/// k06: a redirect is never followed (it could lead from wss to ws) nor retried blindly:
/// the client stops, and the error says where it pointed.
pub async fn k06_redirects_stop_with_their_location<A: Adapter>(a: &A) {
    for (status, code) in [("301 Moved Permanently", 301), ("302 Found", 302)] {
        let (url, seen) = redirecting(status).await;
        let options = tether_adapter::Options::builder().build().unwrap();
        let plain = Plain::builder().heartbeat_interval(None).build().unwrap();
        let (_client, mut events) = a.start(&url, fast().build().unwrap(), plain, options);
        let mut stopped = None;
        while let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_secs(5), events.next()).await
        {
            if let Event::Stopped { reason } = event {
                stopped = Some(reason);
                break;
            }
        }
        match &stopped {
            Some(StopReason::Rejected(error)) => {
                assert_eq!(
                    error.kind,
                    tether_core::OpenErrorKind::Http { status: code }
                );
                assert!(
                    error.detail.contains("ws://127.0.0.1:9/elsewhere"),
                    "{}: {error}",
                    a.name()
                );
            }
            other => panic!("{}: {status}: {other:?}", a.name()),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            seen.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "asked once"
        );
    }
}

/// The first failure of each kind, as the client reports it while it backs off.
async fn first_failure<A: Adapter>(a: &A, url: &str) -> tether_core::OpenErrorKind {
    let options = tether_adapter::Options::builder().build().unwrap();
    let plain = Plain::builder().heartbeat_interval(None).build().unwrap();
    let (client, mut events) = a.start(url, fast().build().unwrap(), plain, options);
    let kind = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(event) = events.next().await {
            if let Event::Reconnecting {
                reason: tether_core::Reason::OpenFailed(error),
                ..
            } = event
            {
                return Some(error.kind);
            }
        }
        None
    })
    .await;
    let _ = client.shutdown().await;
    kind.ok().flatten().expect("a failed open, retried")
}

/// Open failures say which kind they are, and the ones that can heal are retried.
pub async fn open_failures_say_which_kind_they_are<A: Adapter>(a: &A) {
    let (listener, url) = listen().await;
    drop(listener);
    assert_eq!(
        first_failure(a, &url).await,
        tether_core::OpenErrorKind::Refused,
        "{}",
        a.name()
    );
    // A plain server behind a wss:// URL: the TLS handshake fails, typed as such.
    let (listener, url) = listen().await;
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = tcp.read(&mut buf).await;
            let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        }
    });
    let wss = url.replace("ws://", "wss://");
    assert_eq!(
        first_failure(a, &wss).await,
        tether_core::OpenErrorKind::Tls,
        "{}",
        a.name()
    );
}

/// k01: the server asks for heartbeats 20,000 times in one go and never reads a thing.
pub async fn k01_a_flood_of_heartbeat_requests_is_no_growth<A: Adapter>(a: &A) {
    let (listener, url) = listen().await;
    let server = tokio::spawn(async move {
        let mut ws = accept(&listener).await;
        // Two seconds a beat: the zombie check comes after the client has read the whole
        // flood, even on a loaded machine (at 500 ms a busy debug build read only part).
        let hello = r#"{"op":10,"d":{"heartbeat_interval":2000}}"#;
        ws.send(Message::text(hello)).await.unwrap();
        let _ = next_text(&mut ws).await;
        let ready = r#"{"op":0,"s":1,"t":"READY","d":{"v":10,"session_id":"s1"}}"#;
        ws.send(Message::text(ready)).await.unwrap();
        for _ in 0..20_000 {
            if ws
                .feed(Message::text(r#"{"op":1,"d":null}"#))
                .await
                .is_err()
            {
                break;
            }
        }
        let _ = ws.flush().await;
        // Never reads again, never acknowledges.
        tokio::time::sleep(Duration::from_secs(20)).await;
        drop(ws);
    });
    let options = tether_adapter::Options::builder().build().unwrap();
    let (client, mut events) = a.start(&url, fast().build().unwrap(), discord(), options);
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(event) = events.next().await {
            if let Event::Disconnected { reason, .. } = event {
                return Some(reason);
            }
        }
        None
    })
    .await;
    let stats = client.stats().await.unwrap();
    assert!(
        matches!(ended, Ok(Some(tether_core::Reason::Zombie))),
        "{}: a typed end, the zombie check: {ended:?}",
        a.name()
    );
    assert!(
        stats.heartbeats <= 3,
        "{}: one beat answers the flood until acked: {stats:?}",
        a.name()
    );
    assert!(stats.heartbeat_requests_coalesced >= 19_000, "{stats:?}");
    let _ = client.shutdown().await;
    server.abort();
}

/// k03: the first READY has no usable session id; the client starts afresh once and the
/// next READY, numbered from 1 again, makes it ready.
pub async fn k03_an_unreadable_ready_then_a_good_one<A: Adapter>(a: &A) {
    let (listener, url) = listen().await;
    let server = tokio::spawn(async move {
        let mut first = accept(&listener).await;
        let hello = r#"{"op":10,"d":{"heartbeat_interval":45000}}"#;
        first.send(Message::text(hello)).await.unwrap();
        let _ = next_text(&mut first).await;
        let bad = r#"{"op":0,"s":1,"t":"READY","d":{"v":10,"session_id":["not","a","string"]}}"#;
        first.send(Message::text(bad)).await.unwrap();
        let mut second = accept(&listener).await;
        let opened = handshake(&mut second).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(first);
        opened
    });
    let options = tether_adapter::Options::builder().build().unwrap();
    let (client, mut events) = a.start(&url, fast().build().unwrap(), discord(), options);
    let readies = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(event) = events.next().await {
            if let Event::Ready { conn, .. } = event {
                return Some(conn);
            }
        }
        None
    })
    .await;
    assert!(
        matches!(readies, Ok(Some(conn)) if conn.get() == 2),
        "{}: ready on the second socket within one backoff: {readies:?}",
        a.name()
    );
    let _ = client.shutdown().await;
    server.abort();
}

/// k04: HELLO intervals of 0, 2^63, u64::MAX and a float: the impossible one is a protocol
/// error and a retry, the others are clamped to the profile's bounds (and said) or taken.
pub async fn k04_hello_intervals_out_of_bounds_are_clamped<A: Adapter>(a: &A) {
    let cases = [
        ("9223372036854775808", true, true),
        ("18446744073709551615", true, true),
        ("41250.5", true, false),
        ("0", false, false),
    ];
    for (interval, identifies, clamped) in cases {
        let (listener, url) = listen().await;
        let (saw, mut seen) = mpsc::unbounded_channel();
        let server = tokio::spawn(async move {
            let mut ws = accept(&listener).await;
            let hello = format!(r#"{{"op":10,"d":{{"heartbeat_interval":{interval}}}}}"#);
            ws.send(Message::text(hello)).await.unwrap();
            let first = tokio::time::timeout(Duration::from_secs(1), next_text(&mut ws)).await;
            let _ = saw.send(first.ok().flatten().map(|t| op(&t)));
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let options = tether_adapter::Options::builder().build().unwrap();
        let (client, mut events) = a.start(&url, fast().build().unwrap(), discord(), options);
        let said = tokio::time::timeout(Duration::from_secs(1), async {
            while let Some(event) = events.next().await {
                if let Event::ProtocolError { error, .. } = &event {
                    return Some(error.reason.to_string());
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        let first = seen.recv().await.flatten();
        assert_eq!(
            first == Some(2),
            identifies,
            "{}: {interval}: {first:?}",
            a.name()
        );
        assert_eq!(
            said.as_deref().is_some_and(|s| s.contains("outside")),
            clamped,
            "{}: {interval}: {said:?}",
            a.name()
        );
        let _ = client.shutdown().await;
        server.abort();
    }
}

/// k05: the upgrade is refused with 503 and a `Retry-After` that is an HTTP date two
/// seconds ahead: the next attempt waits that long.
pub async fn k05_retry_after_as_a_date_is_honoured<A: Adapter>(a: &A) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (listener, url) = listen().await;
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = tcp.read(&mut buf).await;
        // Whole seconds: the date ahead is between 2 and 3 s away.
        let at = std::time::SystemTime::now() + Duration::from_secs(3);
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\nRetry-After: {}\r\nContent-Length: 0\r\n\r\n",
            httpdate::fmt_http_date(at)
        );
        let _ = tcp.write_all(answer.as_bytes()).await;
        drop(tcp);
        let _again = listener.accept().await;
        Instant::now()
    });
    let config = fast()
        .retry_after_max(Duration::from_secs(10))
        .build()
        .unwrap();
    let plain = Plain::builder().heartbeat_interval(None).build().unwrap();
    let options = tether_adapter::Options::builder().build().unwrap();
    let started = Instant::now();
    let (client, mut events) = a.start(&url, config, plain, options);
    let delay = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(event) = events.next().await {
            if let Event::Reconnecting { delay, .. } = event {
                return Some(delay);
            }
        }
        None
    })
    .await;
    let delay = delay.ok().flatten().expect("a retry after the 503");
    assert!(
        delay >= Duration::from_millis(1500) && delay <= Duration::from_secs(3),
        "{}: waits as the date says: {delay:?}",
        a.name()
    );
    let second = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the second attempt comes")
        .unwrap();
    assert!(second.duration_since(started) >= Duration::from_millis(1500));
    let _ = client.shutdown().await;
}
