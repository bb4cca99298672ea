//! The conformance scenarios, c01 to c13, written once against any [`Adapter`].
//!
//! Each asserts what it promises and panics otherwise; the caller bounds each in time.
//! Intervals are tens of milliseconds so the suite runs in seconds; nothing depends on
//! luck: orders are forced by the server's script, and bounds leave room only for timer
//! resolution.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use tether_core::protocol::openclaw::{DeviceIdentity, OpenClaw, OpenClawRequest, Role};
use tether_core::{
    Config, ConfigBuilder, Discord, Event, Frame, Identify, Outcome, Phase, Plain, Protocol,
    Reason, ReconnectMode, StopReason, Token,
};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::adapter::{Adapter, EventStream};
use crate::proxy::{FaultProxy, Mode};
use crate::server::{Action, Behaviour, Kind, ScriptedServer, Seen};

/// Short intervals, so the suite runs in seconds.
pub fn fast() -> ConfigBuilder {
    Config::builder()
        .seed(7)
        .connect_timeout(Duration::from_millis(1000))
        .hello_timeout(Duration::from_millis(200))
        .ready_timeout(Duration::from_millis(400))
        .drain_timeout(Duration::from_millis(300))
        .abort_grace(Duration::from_millis(100))
        .backoff_initial(Duration::from_millis(50))
        .backoff_max(Duration::from_millis(400))
        .backoff_jitter(0.0)
        .stable_after(Duration::from_millis(300))
        .first_retry_window(Duration::from_millis(20))
        .queue_max_frames(20_000)
        .queue_max_bytes(64 << 20)
}

fn plain(heartbeat_ms: Option<u64>) -> Plain {
    Plain::builder()
        .heartbeat_interval(heartbeat_ms.map(Duration::from_millis))
        .build()
        .unwrap()
}

fn discord() -> Discord {
    Discord::builder(Identify::new(Token::new("test-token"), 1))
        .build()
        .unwrap()
}

fn openclaw() -> OpenClaw {
    let identity = DeviceIdentity::from_seed([3; 32]).unwrap();
    OpenClaw::builder(Role::Operator, identity)
        .token(Token::new("scripted"))
        .build()
        .unwrap()
}

/// Every event of a client with the time it arrived, read by a task of its own that a
/// scenario can pause (a slow consumer).
/// Events with the time each arrived.
type Timed<M, R> = Vec<(Instant, Event<M, R>)>;

pub struct Log<M, R> {
    events: Arc<Mutex<Timed<M, R>>>,
    paused: Arc<tokio::sync::watch::Sender<bool>>,
    task: JoinHandle<()>,
}

impl<M: Send + 'static, R: Send + 'static> Log<M, R> {
    pub fn start(mut stream: futures_util::stream::BoxStream<'static, Event<M, R>>) -> Self {
        let events = Arc::new(Mutex::new(Vec::new()));
        let (paused, mut gate) = tokio::sync::watch::channel(false);
        let task = {
            let events = events.clone();
            tokio::spawn(async move {
                loop {
                    while *gate.borrow() {
                        if gate.changed().await.is_err() {
                            return;
                        }
                    }
                    match stream.next().await {
                        Some(event) => events.lock().unwrap().push((Instant::now(), event)),
                        None => return,
                    }
                }
            })
        };
        Self {
            events,
            paused: Arc::new(paused),
            task,
        }
    }

    pub fn pause(&self, yes: bool) {
        let _ = self.paused.send(yes);
    }

    /// The time of the `nth` (from 0) event matching `f`, waiting up to `limit`.
    pub async fn wait_nth(
        &self,
        nth: usize,
        limit: Duration,
        f: impl Fn(&Event<M, R>) -> bool,
    ) -> Option<Instant> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(at) = self
                .events
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, e)| f(e))
                .nth(nth)
                .map(|(at, _)| *at)
            {
                return Some(at);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub async fn wait(&self, limit: Duration, f: impl Fn(&Event<M, R>) -> bool) -> Option<Instant> {
        self.wait_nth(0, limit, f).await
    }

    pub fn count(&self, f: impl Fn(&Event<M, R>) -> bool) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, e)| f(e))
            .count()
    }

    pub fn with<T>(&self, f: impl FnOnce(&[(Instant, Event<M, R>)]) -> T) -> T {
        f(&self.events.lock().unwrap())
    }
}

impl<M, R> Drop for Log<M, R> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn log<P>(stream: EventStream<P>) -> Log<P::Message, P::Response>
where
    P: Protocol,
    P::Message: Send + 'static,
    P::Response: Send + 'static,
{
    Log::start(stream)
}

fn is_ready<M, R>(e: &Event<M, R>) -> bool {
    matches!(e, Event::Ready { .. })
}

const SECOND: Duration = Duration::from_secs(1);

/// A dead peer is judged within one heartbeat interval plus one ack timeout (100 ms each
/// in the suite), +10%, counted from the moment it died.
async fn assert_zombie_within<M: Send + 'static, R: Send + 'static>(
    log: &Log<M, R>,
    died: Instant,
) {
    let zombie = log
        .wait(2 * SECOND, |e| {
            matches!(
                e,
                Event::Disconnected {
                    reason: Reason::Zombie,
                    ..
                }
            )
        })
        .await
        .expect("the dead peer is detected");
    let took = zombie.saturating_duration_since(died);
    assert!(
        took <= Duration::from_millis(220),
        "detected after {took:?}"
    );
}

/// c01: 10,000 messages echoed in order, none lost, none duplicated.
pub async fn c01_echo<A: Adapter>(a: &A) {
    let server = ScriptedServer::start(Kind::Plain, Behaviour::default()).await;
    let (client, events) = a.connect(
        &server.url(),
        fast().build().unwrap(),
        plain(Some(1000)),
        256,
    );
    let log = log::<Plain>(events);
    for i in 0..10_000 {
        client.send(Frame::text(format!("m{i}"))).await.unwrap();
    }
    let is_message = |e: &Event<Frame>| matches!(e, Event::Message { .. });
    assert!(
        log.wait_nth(9_999, 20 * SECOND, is_message).await.is_some(),
        "{}: only {} echoes",
        a.name(),
        log.count(is_message)
    );
    let texts: Vec<String> = log.with(|events| {
        events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Message {
                    message: Frame::Text(t),
                    ..
                } => Some(t.as_str().to_owned()),
                _ => None,
            })
            .collect()
    });
    let expected: Vec<String> = (0..10_000).map(|i| format!("m{i}")).collect();
    assert_eq!(texts, expected, "in order, none lost, none duplicated");
    assert_eq!(server.accepted(), 1);
    client.shutdown().await;
}

/// c02: the server restarts; the client backs off, reconnects, and what was sent during the
/// outage arrives after ready, in order.
pub async fn c02_server_restart<A: Adapter>(a: &A) {
    let mut server = ScriptedServer::start(Kind::Plain, Behaviour::default()).await;
    let (client, events) = a.connect(&server.url(), fast().build().unwrap(), plain(None), 256);
    let log = log::<Plain>(events);
    assert!(log.wait(2 * SECOND, is_ready).await.is_some());
    server.stop().await;
    let down = log
        .wait(2 * SECOND, |e| matches!(e, Event::Disconnected { .. }))
        .await;
    assert!(down.is_some(), "the drop is seen");
    for i in 0..50 {
        client
            .send(Frame::text(format!("outage-{i}")))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    server.restart().await;
    assert!(
        log.wait_nth(1, 3 * SECOND, is_ready).await.is_some(),
        "back up"
    );
    let all_in = server
        .wait_for(2 * SECOND, |r| {
            r.iter()
                .filter(|r| matches!(&r.seen, Seen::Text(t) if t.starts_with("outage-")))
                .count()
                == 50
        })
        .await;
    assert!(all_in, "every send made during the outage arrived");
    let texts: Vec<(u64, String)> = server
        .records()
        .into_iter()
        .filter_map(|r| match r.seen {
            Seen::Text(t) => Some((r.conn, t)),
            _ => None,
        })
        .collect();
    let expected: Vec<String> = (0..50).map(|i| format!("outage-{i}")).collect();
    assert_eq!(
        texts.iter().map(|(_, t)| t.clone()).collect::<Vec<_>>(),
        expected
    );
    let new_conn = texts.first().map(|(c, _)| *c).unwrap();
    assert!(new_conn > 1, "they went out on the new connection");
    // Backoff: the delays between refused attempts grow.
    let delays: Vec<Duration> = log.with(|events| {
        events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Reconnecting { delay, .. } => Some(*delay),
                _ => None,
            })
            .collect()
    });
    assert!(delays.len() >= 3, "{delays:?}");
    assert!(
        delays.windows(2).skip(1).all(|w| w[1] >= w[0]),
        "{delays:?}"
    );
    client.shutdown().await;
}

/// c03: the first connect is refused; the server comes up during the backoff: exactly one
/// connection.
pub async fn c03_connect_refused_then_up<A: Adapter>(a: &A) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let url = format!("ws://{port}/");
    let (client, events) = a.connect(&url, fast().build().unwrap(), plain(None), 256);
    let log = log::<Plain>(events);
    assert!(
        log.wait(2 * SECOND, |e| matches!(e, Event::Reconnecting { .. }))
            .await
            .is_some()
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    let server = ScriptedServer::start_on(port, Kind::Plain, Behaviour::default()).await;
    assert!(log.wait(3 * SECOND, is_ready).await.is_some());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.accepted(), 1, "exactly one connection");
    assert_eq!(log.count(is_ready), 1);
    client.shutdown().await;
}

/// c04: no hello: the connection is recycled at the hello timeout.
pub async fn c04_hello_stall<A: Adapter>(a: &A) {
    let behaviour = Behaviour {
        stall_hello: true,
        ..Behaviour::default()
    };
    let server = ScriptedServer::start(Kind::Discord, behaviour).await;
    let (client, events) = a.connect(&server.url(), fast().build().unwrap(), discord(), 256);
    let log = log::<Discord>(events);
    let opened = server
        .wait_for(2 * SECOND, |r| r.iter().any(|r| r.seen == Seen::Accepted))
        .await;
    assert!(opened);
    let accepted_at = server.records()[0].at;
    let recycled = log
        .wait(2 * SECOND, |e| {
            matches!(
                e,
                Event::Disconnected {
                    reason: Reason::HelloTimeout,
                    ..
                }
            )
        })
        .await
        .expect("recycled at the hello timeout");
    let took = recycled.saturating_duration_since(accepted_at);
    assert!(
        took >= Duration::from_millis(190) && took <= Duration::from_millis(300),
        "{took:?}"
    );
    server.behave(|b| b.stall_hello = false);
    assert!(
        log.wait(3 * SECOND, is_ready).await.is_some(),
        "ready once hellos come"
    );
    client.shutdown().await;
}

/// c05: heartbeats never acked: a zombie within interval + ack timeout (+10%), resumed with
/// the last sequence.
pub async fn c05_heartbeats_never_acked<A: Adapter>(a: &A) {
    let server = ScriptedServer::start(Kind::Discord, Behaviour::default()).await;
    let (client, events) = a.connect(&server.url(), fast().build().unwrap(), discord(), 256);
    let log = log::<Discord>(events);
    assert!(log.wait(2 * SECOND, is_ready).await.is_some());
    for i in 0..3 {
        server.act(Action::Dispatch("MESSAGE_CREATE".into(), json!({ "n": i })));
    }
    let delivered = log
        .wait_nth(3, 2 * SECOND, |e| matches!(e, Event::Message { .. }))
        .await;
    assert!(delivered.is_some(), "READY and three dispatches");
    let stopped_acking = Instant::now();
    server.behave(|b| b.ack_heartbeats = false);
    assert_zombie_within(&log, stopped_acking).await;
    server.behave(|b| b.ack_heartbeats = true);
    let resumed = server
        .wait_for(3 * SECOND, |r| {
            r.iter().any(|r| matches!(r.seen, Seen::Resume { .. }))
        })
        .await;
    assert!(resumed);
    let seq = server.records().into_iter().find_map(|r| match r.seen {
        Seen::Resume { seq, .. } => Some(seq),
        _ => None,
    });
    assert_eq!(seq, Some(Some(4)), "resumed with the last sequence");
    assert!(
        log.wait(2 * SECOND, |e| matches!(
            e,
            Event::Ready { resumed: true, .. }
        ))
        .await
        .is_some()
    );
    client.shutdown().await;
}

/// c06: a frozen peer (TCP open, silent, through the proxy's blackhole) is detected within
/// the same bound, and the session comes back once the path does.
pub async fn c06_frozen_peer<A: Adapter>(a: &A) {
    let server = ScriptedServer::start(Kind::Plain, Behaviour::default()).await;
    let proxy = FaultProxy::start(server.addr).await;
    let (client, events) = a.connect(&proxy.url(), fast().build().unwrap(), plain(Some(100)), 256);
    let log = log::<Plain>(events);
    assert!(log.wait(2 * SECOND, is_ready).await.is_some());
    // Let a few beats be answered first.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let frozen = Instant::now();
    proxy.set(Mode::Blackhole);
    assert_zombie_within(&log, frozen).await;
    proxy.set(Mode::Pass);
    assert!(
        log.wait_nth(1, 3 * SECOND, is_ready).await.is_some(),
        "back"
    );
    client.shutdown().await;
}

/// c07: a forced fresh reconnect while the old socket never completes its close: aborted
/// at the drain timeout, the server sees the old TCP connection closed before the new one
/// is accepted, and the new one identifies.
pub async fn c07_fresh_reconnect_old_socket_hangs<A: Adapter>(a: &A) {
    let server = ScriptedServer::start(Kind::Discord, Behaviour::default()).await;
    let (client, events) = a.connect(&server.url(), fast().build().unwrap(), discord(), 256);
    let log = log::<Discord>(events);
    assert!(log.wait(2 * SECOND, is_ready).await.is_some());
    server.behave(|b| b.complete_close = false);
    let asked = Instant::now();
    client.reconnect(ReconnectMode::Fresh).await.unwrap();
    let old_closed = server
        .wait_for(2 * SECOND, |r| {
            r.iter().any(|r| r.conn == 1 && r.seen == Seen::Closed)
        })
        .await;
    assert!(old_closed, "the server sees the old TCP connection closed");
    let closed_at = server
        .records()
        .into_iter()
        .find(|r| r.conn == 1 && r.seen == Seen::Closed)
        .unwrap()
        .at;
    let took = closed_at.saturating_duration_since(asked);
    assert!(
        took >= Duration::from_millis(290),
        "aborted only at the drain timeout: {took:?}"
    );
    let identified = server
        .wait_for(2 * SECOND, |r| {
            r.iter().any(|r| r.conn == 2 && r.seen == Seen::Identify)
        })
        .await;
    assert!(identified, "the new connection identifies");
    assert!(
        !server
            .records()
            .iter()
            .any(|r| matches!(r.seen, Seen::Resume { .. }))
    );
    assert_eq!(
        server.max_open(),
        1,
        "{}: the aborted socket was gone before the next was dialled",
        a.name()
    );
    client.shutdown().await;
}

/// c07b: open attempts cut short (the server takes TCP and never answers the upgrade, so
/// each attempt times out): each attempt's socket is gone before the next is dialled.
pub async fn c07b_an_open_attempt_cut_short_is_gone_before_the_next<A: Adapter>(a: &A) {
    let server = ScriptedServer::start(
        Kind::Plain,
        Behaviour {
            stall_upgrade: true,
            ..Behaviour::default()
        },
    )
    .await;
    let config = fast()
        .connect_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let (client, events) = a.connect(&server.url(), config, plain(None), 256);
    let log = log::<Plain>(events);
    let three = server
        .wait_for(5 * SECOND, |r| {
            r.iter().filter(|r| r.seen == Seen::Accepted).count() >= 3
        })
        .await;
    assert!(
        three,
        "three attempts, each cut short by the connect timeout"
    );
    server.behave(|b| b.stall_upgrade = false);
    assert!(
        log.wait(5 * SECOND, is_ready).await.is_some(),
        "the next attempt is answered and connects"
    );
    assert_eq!(
        server.max_open(),
        1,
        "{}: never two sockets of the client open at once",
        a.name()
    );
    client.shutdown().await;
}

/// c08: shutdown during a drain: no new connection in the 2 s after.
pub async fn c08_shutdown_during_drain<A: Adapter>(a: &A) {
    let server = ScriptedServer::start(Kind::Discord, Behaviour::default()).await;
    let (client, events) = a.connect(&server.url(), fast().build().unwrap(), discord(), 256);
    let log = log::<Discord>(events);
    assert!(log.wait(2 * SECOND, is_ready).await.is_some());
    server.behave(|b| b.complete_close = false);
    client.reconnect(ReconnectMode::Resume).await.unwrap();
    client.shutdown().await;
    assert!(
        log.wait(SECOND, |e| matches!(
            e,
            Event::Stopped {
                reason: StopReason::Shutdown
            }
        ))
        .await
        .is_some()
    );
    tokio::time::sleep(2 * SECOND).await;
    assert_eq!(server.accepted(), 1, "no new connection after shutdown");
}

/// c09: reconnect called from 8 tasks at once, 100 times each: the server never sees two
/// client sockets open at once.
pub async fn c09_reconnect_storm<A: Adapter>(a: &A) {
    let server = ScriptedServer::start(Kind::Plain, Behaviour::default()).await;
    let (client, events) = a.connect(&server.url(), fast().build().unwrap(), plain(None), 1024);
    let log = log::<Plain>(events);
    assert!(log.wait(2 * SECOND, is_ready).await.is_some());
    let mut tasks = Vec::new();
    for t in 0..8 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..100 {
                let mode = if (t + i) % 3 == 0 {
                    ReconnectMode::Fresh
                } else {
                    ReconnectMode::Resume
                };
                client.reconnect(mode).await.unwrap();
                tokio::task::yield_now().await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // Settle: the last reconnect completes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(client.state().await.unwrap().phase, Phase::Ready);
    assert_eq!(
        server.max_open(),
        1,
        "never two client sockets open at once"
    );
    assert!(server.accepted() >= 2);
    client.shutdown().await;
}

/// c10: invalid session, not resumable: identify again after 1 to 5 s.
pub async fn c10_invalid_session_fresh<A: Adapter>(a: &A) {
    let server = ScriptedServer::start(Kind::Discord, Behaviour::default()).await;
    let (client, events) = a.connect(&server.url(), fast().build().unwrap(), discord(), 256);
    let log = log::<Discord>(events);
    assert!(log.wait(2 * SECOND, is_ready).await.is_some());
    tokio::time::sleep(Duration::from_millis(350)).await;
    let invalidated = Instant::now();
    server.act(Action::Send(Message::text(r#"{"op":9,"d":false}"#)));
    let again = server
        .wait_for(7 * SECOND, |r| {
            r.iter().filter(|r| r.seen == Seen::Identify).count() == 2
        })
        .await;
    assert!(again, "identified again");
    let at = server
        .records()
        .into_iter()
        .filter(|r| r.seen == Seen::Identify)
        .nth(1)
        .unwrap()
        .at;
    let took = at.saturating_duration_since(invalidated);
    assert!(
        took >= SECOND && took <= Duration::from_millis(5_500),
        "{took:?}"
    );
    client.shutdown().await;
}

/// c11: a fatal close code stops the client; no connection attempt in the next 5 s.
pub async fn c11_fatal_close_code<A: Adapter>(a: &A) {
    let server = ScriptedServer::start(Kind::Discord, Behaviour::default()).await;
    let (_client, events) = a.connect(&server.url(), fast().build().unwrap(), discord(), 256);
    let log = log::<Discord>(events);
    assert!(log.wait(2 * SECOND, is_ready).await.is_some());
    server.act(Action::Close(4004));
    let stopped = log
        .wait(2 * SECOND, |e| {
            matches!(e, Event::Stopped { reason: StopReason::Fatal(cause) } if cause.code() == Some(4004))
        })
        .await;
    assert!(stopped.is_some(), "stopped with the fatal code");
    tokio::time::sleep(5 * SECOND).await;
    assert_eq!(server.accepted(), 1, "no attempt after a fatal close");
}

/// c12: requests in flight when the socket drops: exactly one outcome each (unknown if
/// written, not sent if still queued); none is answered through the new connection.
pub async fn c12_requests_across_a_drop<A: Adapter>(a: &A) {
    let behaviour = Behaviour {
        answer_requests: false,
        ..Behaviour::default()
    };
    let server = ScriptedServer::start(Kind::OpenClaw, behaviour).await;
    let (client, events) = a.connect(&server.url(), fast().build().unwrap(), openclaw(), 256);
    let log = log::<OpenClaw>(events);
    assert!(log.wait(2 * SECOND, is_ready).await.is_some());
    let ask = |n: i64| {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .request(
                    OpenClawRequest::new("slow", json!(n)),
                    Duration::from_secs(20),
                )
                .await
        })
    };
    let written: Vec<_> = (0..3).map(ask).collect();
    let all_written = server
        .wait_for(2 * SECOND, |r| {
            r.iter()
                .filter(|r| matches!(&r.seen, Seen::Request { method, .. } if method == "slow"))
                .count()
                == 3
        })
        .await;
    assert!(all_written);
    // The next connection will hang in its handshake, so what is asked meanwhile stays
    // queued until that connection ends too.
    server.behave(|b| b.stall_hello = true);
    server.act(Action::Reset);
    assert!(
        log.wait(2 * SECOND, |e| matches!(e, Event::Disconnected { .. }))
            .await
            .is_some()
    );
    let queued: Vec<_> = (10..12).map(ask).collect();
    for task in written {
        assert_eq!(task.await.unwrap().unwrap(), Outcome::Unknown);
    }
    for task in queued {
        assert_eq!(task.await.unwrap().unwrap(), Outcome::NotSent);
    }
    // The server comes back and answers the old ids on the new connection: ignored.
    server.behave(|b| {
        b.stall_hello = false;
        b.answer_requests = true;
    });
    assert!(log.wait_nth(1, 3 * SECOND, is_ready).await.is_some());
    for id in 1..=5 {
        server.act(Action::Send(Message::text(
            json!({"type": "res", "id": id.to_string(), "ok": true, "payload": "late"}).to_string(),
        )));
    }
    let fresh = client
        .request(
            OpenClawRequest::new("echo", json!("now")),
            Duration::from_secs(2),
        )
        .await
        .unwrap();
    assert!(
        matches!(fresh, Outcome::Response(ref p) if p.as_str() == "\"now\""),
        "{fresh:?}"
    );
    // The five late answers reach the client in some order with the fresh one; each is
    // dropped and counted, none completes anything.
    let deadline = Instant::now() + SECOND;
    let mut stats = client.stats().await.unwrap();
    while stats.stray_responses < 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
        stats = client.stats().await.unwrap();
    }
    assert_eq!(stats.stray_responses, 5, "{stats:?}");
    client.shutdown().await;
}

/// c13: a slow consumer under a flood: memory stays bounded, and the connection recovers
/// when the consumer resumes. Returns the growth of the process's resident memory while
/// the consumer stalled, and the bytes the server tried to push meanwhile.
pub async fn c13_slow_consumer<A: Adapter>(a: &A) -> (u64, u64) {
    const COUNT: usize = 40_000;
    const SIZE: usize = 1024;
    let server = ScriptedServer::start(Kind::Plain, Behaviour::default()).await;
    let (client, events) = a.connect(
        &server.url(),
        fast().build().unwrap(),
        plain(Some(2_000)),
        64,
    );
    let log = log::<Plain>(events);
    assert!(log.wait(2 * SECOND, is_ready).await.is_some());
    log.pause(true);
    let before = resident_bytes();
    server.act(Action::Flood {
        count: COUNT,
        size: SIZE,
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    let during = resident_bytes();
    log.pause(false);
    let is_message = |e: &Event<Frame>| matches!(e, Event::Message { .. });
    let all = log.wait_nth(COUNT - 1, 20 * SECOND, is_message).await;
    assert!(
        all.is_some(),
        "recovered: only {} of {COUNT}",
        log.count(is_message)
    );
    assert_eq!(client.state().await.unwrap().phase, Phase::Ready);
    let grew = during.saturating_sub(before);
    let offered = (COUNT * SIZE) as u64;
    assert!(
        grew < offered / 4,
        "memory grew by {grew} bytes while {offered} bytes were offered"
    );
    client.shutdown().await;
    (grew, offered)
}

/// The process's resident memory, from /proc (Linux).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}
