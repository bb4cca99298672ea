//! The tokio gateway server on loopback with real tether-tokio clients: a replaced session
//! whose old socket closes late, resume with replay, slow clients, the connection limit and
//! bad frames.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use serde_json::value::RawValue;
use tether_core::protocol::openclaw::{DeviceIdentity, InvokeAnswer, OpenClaw, Role};
use tether_core::{Discord, Event, Frame, Identify, Token};
use tether_gateway::registry::{InvokeOutcome, Presence};
use tether_gateway::{CloseWhy, GatewayConfig, GatewayEvent, ServerProfile};
use tether_tests::auth::token_auth;
use tether_tests::proxy::{FaultProxy, Mode};
use tether_tests::scenarios::fast;
use tether_tokio::gateway::{GatewayEvents, GatewayHandle, GatewayOptions, serve};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

const LIMIT: Duration = Duration::from_secs(10);

async fn gateway(
    config: GatewayConfig,
    options: GatewayOptions,
) -> (GatewayHandle, GatewayEvents, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let (handle, events) = serve(listener, config, token_auth, options).unwrap();
    (handle, events, url)
}

fn raw(s: &str) -> Box<RawValue> {
    RawValue::from_string(s.to_owned()).unwrap()
}

/// Waits for the gateway event `f` picks, keeping every event seen in `log`.
async fn until(
    events: &mut GatewayEvents,
    log: &mut Vec<GatewayEvent>,
    f: impl Fn(&GatewayEvent) -> bool,
) -> GatewayEvent {
    let found = tokio::time::timeout(LIMIT, async {
        loop {
            let event = events.recv().await.expect("gateway running");
            log.push(event.clone());
            if f(&event) {
                return event;
            }
        }
    })
    .await;
    match found {
        Ok(event) => event,
        Err(_) => panic!("the awaited gateway event did not come; saw {log:#?}"),
    }
}

/// Sends peer `bot` one `N` dispatch per number, in order.
async fn dispatch_numbers(
    gateway: &GatewayHandle,
    numbers: std::ops::Range<u32>,
) -> Vec<tether_gateway::Delivered> {
    let mut delivered = Vec::new();
    for n in numbers {
        delivered.push(
            gateway
                .dispatch("bot", "N", raw(&n.to_string()))
                .await
                .unwrap(),
        );
    }
    delivered
}

/// The socket dies under the session and the way back stays shut: returns once the
/// gateway has seen the drop, so what it sends next waits for the resume.
async fn cut_and_hold(proxy: &FaultProxy, events: &mut GatewayEvents, log: &mut Vec<GatewayEvent>) {
    proxy.set(Mode::Blackhole);
    proxy.reset_all();
    until(events, log, |e| {
        matches!(
            e,
            GatewayEvent::Presence {
                presence: Presence::Disconnected,
                ..
            }
        )
    })
    .await;
}

/// Opens the way back and waits for the session's resume; how many dispatches it replayed.
async fn reopen_until_resumed(
    proxy: &FaultProxy,
    events: &mut GatewayEvents,
    log: &mut Vec<GatewayEvent>,
) -> usize {
    proxy.set(Mode::Pass);
    match until(events, log, |e| matches!(e, GatewayEvent::Resumed { .. })).await {
        GatewayEvent::Resumed { replayed, .. } => replayed,
        other => panic!("{other:?}"),
    }
}

/// A node of device `identity` (the gateway knows a node by its device id) that answers
/// every invoke with its `name`.
fn node_client(
    url: &str,
    name: &'static str,
    identity: &DeviceIdentity,
) -> tether_tokio::Handle<OpenClaw> {
    let profile = OpenClaw::builder(Role::Node, identity.clone())
        .token(Token::new("token-agent"))
        .commands(["whoami"])
        .build()
        .unwrap();
    let (client, mut events) =
        tether_tokio::connect(url, fast().build().unwrap(), profile).unwrap();
    let answering = client.clone();
    // The application: answers every invoke with its own name.
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if let Event::Call { id, .. } = event {
                let answer = InvokeAnswer::Ok(Some(raw(&format!("\"{name}\""))));
                let _ = answering.answer(id, answer).await;
            }
        }
    });
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_replaced_session_survives_the_late_close_of_its_old_socket() {
    let config = GatewayConfig::builder(ServerProfile::OpenClaw)
        .heartbeat_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let options = GatewayOptions {
        close_timeout: Duration::from_millis(300),
        ..GatewayOptions::default()
    };
    let (gateway, mut events, url) = gateway(config, options).await;
    let mut log = Vec::new();
    // The first client reaches the gateway through a proxy we can stall.
    let proxy = FaultProxy::start(gateway.local_addr().unwrap()).await;
    let identity = DeviceIdentity::generate().unwrap();
    let agent = identity.id().to_owned();
    let first = node_client(&proxy.url(), "first", &identity);
    let GatewayEvent::Presence { conn: old, .. } = until(&mut events, &mut log, |e| {
        matches!(
            e,
            GatewayEvent::Presence {
                presence: Presence::Connected,
                ..
            }
        )
    })
    .await
    else {
        unreachable!()
    };
    // Its path goes silent: the gateway's close of the old socket cannot get through, so
    // the socket ends late, after the second client has taken the session over.
    proxy.set(Mode::Blackhole);
    let second = node_client(&url, "second", &identity);
    let GatewayEvent::Presence {
        conn: new,
        presence,
        ..
    } = until(&mut events, &mut log, |e| {
        matches!(e, GatewayEvent::Presence { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert_eq!(presence, Presence::Replaced { old });
    // The old socket's late end: a stale close.
    tokio::time::timeout(LIMIT, async {
        while gateway.stats().await.unwrap().registry.stale_closes == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the old socket ends");
    assert_eq!(
        gateway.owner(&agent).await.unwrap(),
        Some(new),
        "still connected, on the new socket"
    );
    let (_, outcome) = gateway
        .invoke(&agent, "whoami", raw("null"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(outcome, InvokeOutcome::Result(Ok("\"second\"".into())));
    drop(proxy);
    let _ = first.shutdown().await;
    let _ = second.shutdown().await;
    while let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_millis(100), events.recv()).await
    {
        log.push(event);
    }
    let presences: Vec<_> = log
        .iter()
        .filter_map(|e| match e {
            GatewayEvent::Presence { conn, presence, .. } => Some((*conn, presence.clone())),
            _ => None,
        })
        .collect();
    // Presence never showed disconnected until the owner itself shut down.
    assert_eq!(
        &presences[..2],
        [
            (old, Presence::Connected),
            (new, Presence::Replaced { old })
        ],
        "{log:?}"
    );
    assert!(
        presences[2..]
            .iter()
            .all(|(conn, p)| *p != Presence::Disconnected || *conn == new),
        "{log:?}"
    );
    assert!(log.iter().any(
        |e| matches!(e, GatewayEvent::Closing { conn, why: CloseWhy::Replaced, .. } if *conn == old)
    ));
}

fn discord_client(url: &str) -> (tether_tokio::Handle<Discord>, tether_tokio::Events<Discord>) {
    let profile = Discord::builder(Identify::new(Token::new("token-bot"), 0))
        .build()
        .unwrap();
    tether_tokio::connect(url, fast().build().unwrap(), profile).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_discord_resume_replays_missed_dispatches_in_order() {
    let config = GatewayConfig::builder(ServerProfile::Discord)
        .heartbeat_interval(Duration::from_millis(200))
        .resume_window(Duration::from_secs(5))
        .build()
        .unwrap();
    let (gateway, mut events, url) = gateway(config, GatewayOptions::default()).await;
    let mut log = Vec::new();
    let proxy = FaultProxy::start(gateway.local_addr().unwrap()).await;
    let (client, mut client_events) = discord_client(&proxy.url());
    until(&mut events, &mut log, |e| {
        matches!(
            e,
            GatewayEvent::Presence {
                presence: Presence::Connected,
                ..
            }
        )
    })
    .await;
    let mut seen = Vec::new();
    let mut read_until = async |seen: &mut Vec<u32>, count: usize| {
        tokio::time::timeout(LIMIT, async {
            while seen.len() < count {
                match client_events.next().await.unwrap() {
                    Event::Message { message, .. } if message.name.as_str() == "N" => {
                        seen.push(message.data.as_str().parse::<u32>().unwrap());
                    }
                    Event::ProtocolError { error, .. } => panic!("{error:?}"),
                    _ => {}
                }
            }
        })
        .await
        .expect("dispatches arrive");
    };
    dispatch_numbers(&gateway, 0..3).await;
    read_until(&mut seen, 3).await;
    // The socket dies under the session and the way back stays shut for a while: the
    // gateway notices, and dispatches wait for the resume.
    cut_and_hold(&proxy, &mut events, &mut log).await;
    for delivered in dispatch_numbers(&gateway, 3..5).await {
        assert_eq!(delivered.conn, None, "held for replay");
    }
    let replayed = reopen_until_resumed(&proxy, &mut events, &mut log).await;
    assert_eq!(replayed, 2);
    // The client saw 0..5 once each, in order, and no protocol error.
    read_until(&mut seen, 5).await;
    assert_eq!(seen, [0, 1, 2, 3, 4]);
    assert_eq!(client.stats().await.unwrap().resumed, 1);
    let _ = client.shutdown().await;
    let stats = gateway.stats().await.unwrap();
    assert_eq!((stats.resumes, stats.replayed), (1, 2));
    drop(url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_not_buffered() {
    let config = GatewayConfig::builder(ServerProfile::Discord)
        .build()
        .unwrap();
    let options = GatewayOptions {
        outbound_bytes: 1024,
        ..GatewayOptions::default()
    };
    let (gateway, mut events, url) = gateway(config, options).await;
    let mut log = Vec::new();
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    ws.next().await.unwrap().unwrap(); // hello
    ws.send(Message::text(
        json!({"op": 2, "d": {"token": "token-slow"}}).to_string(),
    ))
    .await
    .unwrap();
    until(&mut events, &mut log, |e| {
        matches!(e, GatewayEvent::Presence { .. })
    })
    .await;
    // It never reads again; the gateway keeps dispatching 256 KiB events.
    let big = raw(&format!("\"{}\"", "x".repeat(256 << 10)));
    let mut sent = 0;
    let closed = tokio::time::timeout(LIMIT, async {
        loop {
            if gateway.dispatch("slow", "BIG", big.clone()).await.is_err() {
                return;
            }
            sent += 1;
            if let Ok(Some(event)) =
                tokio::time::timeout(Duration::from_millis(1), events.recv()).await
            {
                if matches!(
                    event,
                    GatewayEvent::Closing {
                        why: CloseWhy::TooSlow,
                        ..
                    }
                ) {
                    return;
                }
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "closed after {sent} dispatches");
    assert_eq!(gateway.stats().await.unwrap().too_slow, 1);
    drop(ws);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_limit_upgrades_get_503_with_retry_after() {
    let config = GatewayConfig::builder(ServerProfile::Discord)
        .build()
        .unwrap();
    let options = GatewayOptions {
        max_connections: 1,
        retry_after_secs: 3,
        ..GatewayOptions::default()
    };
    let (_gateway, _events, url) = gateway(config, options).await;
    let (_held, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let refused = tokio_tungstenite::connect_async(&url).await.unwrap_err();
    let tokio_tungstenite::tungstenite::Error::Http(response) = refused else {
        panic!("{refused:?}")
    };
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_are_answered_with_the_profile_close_code() {
    let config = GatewayConfig::builder(ServerProfile::Discord)
        .handshake_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let (gateway, _events, url) = gateway(config, GatewayOptions::default()).await;
    let close_code = |mut ws: tokio_tungstenite::WebSocketStream<_>| async move {
        tokio::time::timeout(LIMIT, async {
            while let Some(Ok(message)) = ws.next().await {
                if let Message::Close(frame) = message {
                    return frame.map(|f| u16::from(f.code));
                }
            }
            None
        })
        .await
        .unwrap()
    };
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    ws.send(Message::text("{not json")).await.unwrap();
    assert_eq!(close_code(ws).await, Some(4002));
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    ws.send(Message::Binary(vec![0u8; 4].into())).await.unwrap();
    assert_eq!(close_code(ws).await, Some(4002));
    // Never identifies: closed when the handshake time runs out.
    let (ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    assert_eq!(close_code(ws).await, Some(4009));
    let stats = gateway.stats().await.unwrap();
    assert_eq!((stats.bad_frames, stats.handshake_timeouts), (2, 1));
    let _ = Frame::text("");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_serves_wss_with_rustls() {
    use std::sync::Arc;
    let (server_config, cert_der) = support::localhost_tls();
    let config = GatewayConfig::builder(ServerProfile::Discord)
        .heartbeat_interval(Duration::from_millis(200))
        .build()
        .unwrap();
    let options = GatewayOptions {
        tls: Some(Arc::new(server_config)),
        ..GatewayOptions::default()
    };
    let (gateway, mut events, url) = gateway(config, options).await;
    let url = url.replace("ws://127.0.0.1", "wss://localhost");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert_der).unwrap();
    let tls = Arc::new(tether_tokio::client_config(roots).unwrap());
    let profile = Discord::builder(Identify::new(Token::new("token-secure"), 0))
        .build()
        .unwrap();
    let options = tether_tokio::Options::builder().tls(tls).build().unwrap();
    let (client, mut client_events) =
        tether_tokio::connect_with(url.as_str(), fast().build().unwrap(), profile, options)
            .unwrap();
    let mut log = Vec::new();
    until(&mut events, &mut log, |e| {
        matches!(e, GatewayEvent::Presence { presence: Presence::Connected, peer, .. } if &**peer == "secure")
    })
    .await;
    gateway
        .dispatch("secure", "OVER_TLS", raw("true"))
        .await
        .unwrap();
    tokio::time::timeout(LIMIT, async {
        loop {
            if let Some(Event::Message { message, .. }) = client_events.next().await {
                if message.name.as_str() == "OVER_TLS" {
                    return;
                }
            }
        }
    })
    .await
    .expect("a dispatch over TLS");
    client.shutdown().await;
    // A plain-text client gets nowhere: the upgrade never completes.
    assert!(
        tokio::time::timeout(
            Duration::from_secs(2),
            tokio_tungstenite::connect_async(url.replace("wss://localhost", "ws://127.0.0.1"))
        )
        .await
        .map_or(true, |r| r.is_err())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_every_handle_stops_accepting() {
    let config = GatewayConfig::builder(ServerProfile::Discord)
        .build()
        .unwrap();
    let (gateway, events, url) = gateway(config, GatewayOptions::default()).await;
    let (held, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let copy = gateway.clone();
    drop(gateway);
    // One handle left: still serving.
    assert!(tokio_tungstenite::connect_async(&url).await.is_ok());
    drop(copy);
    drop(events);
    let refused = tokio::time::timeout(LIMIT, async {
        loop {
            if tokio_tungstenite::connect_async(&url).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        refused.is_ok(),
        "the listener is closed once no handle is left"
    );
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_replay_on_resume_is_not_mistaken_for_a_slow_client() {
    // A small outbound queue and a large replay: the queue grows to hold the replay.
    let config = GatewayConfig::builder(ServerProfile::Discord)
        .heartbeat_interval(Duration::from_millis(500))
        .replay_capacity(600)
        .build()
        .unwrap();
    let options = GatewayOptions {
        outbound_bytes: 1024,
        ..GatewayOptions::default()
    };
    let (gateway, mut events, _) = gateway(config, options).await;
    let mut log = Vec::new();
    let proxy = FaultProxy::start(gateway.local_addr().unwrap()).await;
    // The way back stays shut while 500 dispatches are made: the client keeps trying to
    // resume all that time instead of giving the session up after a few failed attempts.
    let profile = Discord::builder(Identify::new(Token::new("token-bot"), 0))
        .max_resume_failures(10_000)
        .build()
        .unwrap();
    let (client, mut client_events) =
        tether_tokio::connect(proxy.url().as_str(), fast().build().unwrap(), profile).unwrap();
    // The client has its session (it read READY) before its socket is cut.
    tokio::time::timeout(LIMIT, async {
        while !matches!(client_events.next().await, Some(Event::Ready { .. })) {}
    })
    .await
    .expect("ready");
    cut_and_hold(&proxy, &mut events, &mut log).await;
    dispatch_numbers(&gateway, 0..500).await;
    let replayed = reopen_until_resumed(&proxy, &mut events, &mut log).await;
    assert_eq!(replayed, 500);
    let mut seen = 0;
    tokio::time::timeout(LIMIT, async {
        while seen < 500 {
            if let Some(Event::Message { message, .. }) = client_events.next().await {
                if message.name.as_str() == "N" {
                    seen += 1;
                }
            }
        }
    })
    .await
    .expect("the whole replay arrives");
    assert_eq!(gateway.stats().await.unwrap().too_slow, 0);
    client.shutdown().await;
}

/// A bot that restarts keeps its session: it suspends (closing 4000, so the gateway keeps
/// the session), exports the session through its handle, and the next process imports it:
/// its first connect resumes, and what was dispatched between the two is replayed in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_restarting_resumes_with_its_exported_session() {
    let config = GatewayConfig::builder(ServerProfile::Discord)
        .heartbeat_interval(Duration::from_millis(500))
        .resume_window(Duration::from_secs(10))
        .build()
        .unwrap();
    let (gateway, mut events, url) = gateway(config, GatewayOptions::default()).await;
    let mut log = Vec::new();
    let (first, mut first_events) = discord_client(&url);
    let ready = |e: &Event<tether_core::Dispatch, std::convert::Infallible>| {
        matches!(e, Event::Ready { .. })
    };
    tokio::time::timeout(LIMIT, async {
        while let Some(e) = first_events.next().await {
            if ready(&e) {
                break;
            }
        }
    })
    .await
    .unwrap();
    dispatch_numbers(&gateway, 0..2).await;
    // The two dispatches are in before the suspend: the export counts them.
    tokio::time::timeout(LIMIT, async {
        let mut n = 0;
        while n < 2 {
            if let Some(Event::Message { .. }) = first_events.next().await {
                n += 1;
            }
        }
    })
    .await
    .unwrap();
    assert!(first.suspend().await.is_empty());
    let saved = first
        .profile(Discord::session)
        .await
        .unwrap()
        .expect("a session");
    assert_eq!(saved.sequence, Some(3), "READY and two dispatches");
    // The gateway kept the session: it waits to be resumed.
    until(&mut events, &mut log, |e| {
        matches!(
            e,
            GatewayEvent::Presence {
                presence: Presence::Disconnected,
                ..
            }
        )
    })
    .await;
    let held = dispatch_numbers(&gateway, 2..4).await;
    assert!(held.iter().all(|d| d.conn.is_none()), "held for replay");
    // As it travels across a restart: through JSON.
    let saved: tether_core::DiscordSession =
        serde_json::from_str(&serde_json::to_string(&saved).unwrap()).unwrap();
    let profile = Discord::builder(Identify::new(Token::new("token-bot"), 0))
        .session(saved)
        .build()
        .unwrap();
    let (second, mut second_events) =
        tether_tokio::connect(url.as_str(), fast().build().unwrap(), profile).unwrap();
    let mut seen = Vec::new();
    let resumed = tokio::time::timeout(LIMIT, async {
        loop {
            match second_events.next().await.unwrap() {
                Event::Message { message, .. } if message.name.as_str() == "N" => {
                    seen.push(message.data.as_str().parse::<u32>().unwrap());
                }
                Event::Ready { resumed, .. } => return resumed,
                _ => {}
            }
        }
    })
    .await
    .unwrap();
    assert!(resumed, "the first connect resumed");
    assert_eq!(
        seen,
        [2, 3],
        "what was dispatched meanwhile, replayed in order"
    );
    until(&mut events, &mut log, |e| {
        matches!(e, GatewayEvent::Resumed { replayed: 2, .. })
    })
    .await;
    let _ = second.shutdown().await;
}

/// tether's discord client with transport compression against tether's gateway, both
/// kinds: the gateway compresses what it writes on that connection, the client inflates
/// it, and every dispatch arrives in order with no protocol error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_sessions_carry_every_dispatch_both_kinds() {
    use tether_core::protocol::discord::Compression;
    for compression in [Compression::ZlibStream, Compression::ZstdStream] {
        let config = GatewayConfig::builder(ServerProfile::Discord)
            .heartbeat_interval(Duration::from_millis(500))
            .build()
            .unwrap();
        let (gateway, _events, url) = gateway(config, GatewayOptions::default()).await;
        let profile = Discord::builder(Identify::new(Token::new("token-bot"), 0))
            .compression(compression)
            .build()
            .unwrap();
        let (client, mut events) =
            tether_tokio::connect(url.as_str(), fast().build().unwrap(), profile).unwrap();
        let mut seen = Vec::new();
        tokio::time::timeout(LIMIT, async {
            loop {
                match events.next().await.unwrap() {
                    Event::Ready { .. } => break,
                    Event::ProtocolError { error, .. } => panic!("{compression:?}: {error:?}"),
                    _ => {}
                }
            }
            dispatch_numbers(&gateway, 0..50).await;
            while seen.len() < 50 {
                match events.next().await.unwrap() {
                    Event::Message { message, .. } if message.name.as_str() == "N" => {
                        seen.push(message.data.as_str().parse::<u32>().unwrap());
                    }
                    Event::ProtocolError { error, .. } => panic!("{compression:?}: {error:?}"),
                    _ => {}
                }
            }
        })
        .await
        .expect("every dispatch arrives");
        assert_eq!(seen, (0..50).collect::<Vec<_>>(), "{compression:?}");
        let stats = gateway.stats().await.unwrap();
        assert_eq!(
            stats.compressed, 1,
            "{compression:?}: the gateway compressed"
        );
        assert_eq!(client.stats().await.unwrap().protocol_errors, 0);
        let _ = client.shutdown().await;
        let _ = gateway.shutdown().await;
    }
}

/// Four shards of one bot in one process, two buckets: each shard identifies with its own
/// `[i, 4]`, the gateway keeps four sessions side by side, and the queue spaces each
/// bucket's identifies so that a gateway enforcing the spacing refuses none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_of_one_bot_start_in_turn_and_run_side_by_side() {
    use std::num::{NonZeroU16, NonZeroU32};
    use tether_tokio::shards::{connect_shards, identify_queue};
    // The gateway allows two buckets one identify each per 300 ms; the client's queue waits
    // 400 ms, a margin for the time an identify takes to arrive.
    let limit = tether_gateway::IdentifyLimit {
        max_concurrency: 2,
        spacing: Duration::from_millis(300),
        per_window: 100,
        window: Duration::from_secs(3600),
    };
    let config = GatewayConfig::builder(ServerProfile::Discord)
        .heartbeat_interval(Duration::from_millis(500))
        .identify_limit(limit)
        .build()
        .unwrap();
    let (gateway, mut events, url) = gateway(config, GatewayOptions::default()).await;
    let queue = identify_queue(NonZeroU16::new(2).unwrap(), Duration::from_millis(400));
    let identify = Identify::new(Token::new("token-bot"), 0);
    let shards = connect_shards(
        &url,
        fast(),
        &identify,
        NonZeroU32::new(4).unwrap(),
        &queue,
        |_, builder| builder,
        tether_tokio::Options::default(),
    )
    .unwrap();
    let mut log = Vec::new();
    let mut connected = std::collections::BTreeSet::new();
    while connected.len() < 4 {
        if let GatewayEvent::Presence {
            peer,
            presence: Presence::Connected,
            ..
        } = until(&mut events, &mut log, |e| {
            matches!(
                e,
                GatewayEvent::Presence {
                    presence: Presence::Connected,
                    ..
                }
            )
        })
        .await
        {
            connected.insert(peer.to_string());
        }
    }
    assert_eq!(
        connected.into_iter().collect::<Vec<_>>(),
        [
            "bot/shard-0-of-4",
            "bot/shard-1-of-4",
            "bot/shard-2-of-4",
            "bot/shard-3-of-4"
        ]
    );
    let stats = gateway.stats().await.unwrap();
    assert_eq!(stats.identifies_limited, 0, "no identify came too soon");
    assert_eq!(
        stats.registry.replaced, 0,
        "no shard took another's session"
    );
    for shard in &shards {
        let _ = shard.handle.shutdown().await;
    }
}
