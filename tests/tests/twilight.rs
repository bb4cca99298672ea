//! tether's discord gateway as twilight-gateway 0.18 reads it: a real client, as bots run
//! it, on 127.0.0.1 (zstd-stream transport compression, as its default build asks).
//!
//! Each scenario forces its order: a resume's socket is held in a silent proxy until the
//! dispatches it must replay are queued; faults are sent when the shard is ready.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use tether_core::protocol::discord::wire;
use tether_gateway::registry::Presence;
use tether_gateway::{Credentials, GatewayConfig, GatewayEvent, PeerId, Rejection, ServerProfile};
use tether_tests::proxy::{FaultProxy, Mode};
use tether_tokio::gateway::{GatewayEvents, GatewayHandle, GatewayOptions, serve};
use twilight_gateway::queue::InMemoryQueue;
use twilight_gateway::{
    CloseFrame, ConfigBuilder, Event, EventTypeFlags, Intents, Shard, ShardId, StreamExt as _,
};

/// twilight sends `Bot <token>`; every bot is `bot`.
fn auth(credentials: &Credentials<'_>) -> Result<PeerId, Rejection> {
    match credentials.token {
        Some("Bot t") => Ok(PeerId::from("bot")),
        _ => Err(Rejection::new("unknown token")),
    }
}

/// A gateway whose READY sends resumes to `resume_url` (a proxy of the test's).
async fn gateway(resume_url: Option<String>) -> (GatewayHandle, GatewayEvents) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = GatewayConfig::builder(ServerProfile::Discord)
        .heartbeat_interval(Duration::from_millis(1000))
        .resume_window(Duration::from_secs(30))
        .guilds([41_771_983_423_143_937]);
    if let Some(url) = resume_url {
        config = config.resume_url(url);
    }
    serve(
        listener,
        config.build().unwrap(),
        auth,
        GatewayOptions::default(),
    )
    .unwrap()
}

/// A shard of `bot` through `url` (no trailing slash: twilight appends `/?v=10...`),
/// identifying at once (no 5 s spacing).
fn shard(url: &str, id: ShardId) -> Shard {
    let config = ConfigBuilder::new("t".to_owned(), Intents::empty())
        .proxy_url(url.trim_end_matches('/').to_owned())
        .queue(InMemoryQueue::new(0, 0, Duration::ZERO, 0))
        .build();
    Shard::with_config(id, config)
}

/// The shard's events until `until` picks one, within `limit`; every error fails.
async fn next_until<T>(
    shard: &mut Shard,
    limit: Duration,
    seen: &mut Vec<String>,
    mut until: impl FnMut(&Event) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let next = tokio::time::timeout_at(deadline, shard.next_event(EventTypeFlags::all()))
            .await
            .unwrap_or_else(|_| panic!("timed out; the shard saw {seen:?}"));
        match next {
            Some(Ok(event)) => {
                seen.push(format!("{:?}", event.kind()));
                if let Some(found) = until(&event) {
                    return found;
                }
            }
            Some(Err(e)) => panic!("the shard could not read the gateway: {e:?}; saw {seen:?}"),
            None => panic!("the shard stopped; saw {seen:?}"),
        }
    }
}

async fn ready(
    shard: &mut Shard,
    seen: &mut Vec<String>,
) -> twilight_model::gateway::payload::incoming::Ready {
    next_until(shard, Duration::from_secs(10), seen, |e| match e {
        Event::Ready(ready) => Some(ready.clone()),
        _ => None,
    })
    .await
}

async fn wait_for(
    events: &mut GatewayEvents,
    limit: Duration,
    mut f: impl FnMut(&GatewayEvent) -> bool,
) -> Vec<GatewayEvent> {
    let mut log = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(event)) => {
                let done = f(&event);
                log.push(event);
                if done {
                    return log;
                }
            }
            _ => panic!("not within {limit:?}: {log:?}"),
        }
    }
}

fn guild(id: u64) -> Box<RawValue> {
    RawValue::from_string(format!("{{\"id\":\"{id}\",\"unavailable\":true}}")).unwrap()
}

/// t01: READY is read whole (user, guilds, application, shard, resume URL); heartbeats
/// are acknowledged; the connection went compressed (zstd-stream).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t01_ready_is_read_and_heartbeats_are_acked() {
    let (gateway, _events) = gateway(None).await;
    let url = format!("ws://{}", gateway.local_addr().unwrap());
    let mut shard = shard(&url, ShardId::new(1, 2));
    let mut seen = Vec::new();
    let ready = ready(&mut shard, &mut seen).await;
    assert_eq!(ready.version, 10);
    assert_eq!(
        ready.user.name,
        "bot/shard-1-of-2".split('/').next().unwrap()
    );
    assert!(ready.user.bot);
    assert_eq!(ready.application.id.get(), ready.user.id.get());
    assert_eq!(ready.guilds.len(), 1);
    assert_eq!(ready.guilds[0].id.get(), 41_771_983_423_143_937);
    assert_eq!(ready.shard, Some(ShardId::new(1, 2)));
    assert_eq!(
        ready.resume_gateway_url,
        format!("ws://{}/resume", gateway.local_addr().unwrap())
    );
    for _ in 0..2 {
        next_until(&mut shard, Duration::from_secs(5), &mut seen, |e| {
            matches!(e, Event::GatewayHeartbeatAck).then_some(())
        })
        .await;
    }
    let stats = gateway.stats().await.unwrap();
    assert_eq!(
        stats.compressed, 1,
        "twilight asked for zstd-stream and got it"
    );
    assert_eq!(stats.bad_frames, 0);
    let _ = gateway.shutdown().await;
}

/// t02: the socket drops; dispatches sent meanwhile wait; the shard resumes on the resume
/// URL (held silent until they are queued) and gets them replayed in order, then RESUMED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t02_a_dropped_shard_resumes_on_the_resume_url_with_missed_dispatches_in_order() {
    // The resume proxy needs the gateway's address, the gateway the proxy's URL: the
    // gateway's own listener is proxied by `main`, and READY names `resume`.
    let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = probe.local_addr().unwrap();
    let resume = FaultProxy::start(addr).await;
    let config = GatewayConfig::builder(ServerProfile::Discord)
        .heartbeat_interval(Duration::from_millis(1000))
        .resume_url(resume.url().trim_end_matches('/').to_owned())
        .build()
        .unwrap();
    let (gateway, mut events) = serve(probe, config, auth, GatewayOptions::default()).unwrap();
    let main = FaultProxy::start(addr).await;
    let mut shard = shard(&main.url(), ShardId::ONE);
    let mut seen = Vec::new();
    let first = ready(&mut shard, &mut seen).await;
    gateway
        .dispatch("bot", "GUILD_DELETE", guild(1))
        .await
        .unwrap();
    next_until(&mut shard, Duration::from_secs(5), &mut seen, |e| {
        matches!(e, Event::GuildDelete(g) if g.id.get() == 1).then_some(())
    })
    .await;
    // The way back stays silent until the missed dispatches are queued.
    resume.set(Mode::Blackhole);
    main.reset_all();
    wait_for(&mut events, Duration::from_secs(5), |e| {
        matches!(
            e,
            GatewayEvent::Presence {
                presence: Presence::Disconnected,
                ..
            }
        )
    })
    .await;
    for id in 2..=4 {
        gateway
            .dispatch("bot", "GUILD_DELETE", guild(id))
            .await
            .unwrap();
    }
    resume.set(Mode::Pass);
    let mut replayed = Vec::new();
    while replayed.len() < 3 {
        let id = next_until(
            &mut shard,
            Duration::from_secs(15),
            &mut seen,
            |e| match e {
                Event::GuildDelete(g) => Some(g.id.get()),
                _ => None,
            },
        )
        .await;
        replayed.push(id);
    }
    assert_eq!(replayed, [2, 3, 4], "replayed in order: {seen:?}");
    // As Discord: the missed dispatches, then RESUMED to finish.
    next_until(&mut shard, Duration::from_secs(5), &mut seen, |e| {
        matches!(e, Event::Resumed).then_some(())
    })
    .await;
    assert_eq!(
        shard.session().map(|s| s.id().to_owned()),
        Some(first.session_id.clone())
    );
    assert!(resume.carried() >= 1, "the resume went to the resume URL");
    let log = wait_for(&mut events, Duration::from_secs(1), |e| {
        matches!(e, GatewayEvent::Resumed { .. })
    })
    .await;
    assert!(
        log.iter()
            .any(|e| matches!(e, GatewayEvent::Resumed { replayed: 3, .. })),
        "{log:?}"
    );
    let _ = gateway.shutdown().await;
}

/// t03: op 7 from the gateway: the shard closes (4000), comes back and resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t03_op_7_makes_the_shard_reconnect_and_resume() {
    let (gateway, mut events) = gateway(None).await;
    let url = format!("ws://{}", gateway.local_addr().unwrap());
    let mut shard = shard(&url, ShardId::ONE);
    let mut seen = Vec::new();
    ready(&mut shard, &mut seen).await;
    gateway.send("bot", wire::reconnect()).await.unwrap();
    next_until(&mut shard, Duration::from_secs(5), &mut seen, |e| {
        matches!(e, Event::Resumed).then_some(())
    })
    .await;
    assert!(seen.iter().any(|s| s == "GatewayReconnect"), "{seen:?}");
    wait_for(&mut events, Duration::from_secs(5), |e| {
        matches!(e, GatewayEvent::Resumed { .. })
    })
    .await;
    let _ = gateway.shutdown().await;
}

/// t04: op 9 both ways: resumable, the shard resumes; not, it identifies afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t04_op_9_both_ways() {
    let (gateway, _events) = gateway(None).await;
    let url = format!("ws://{}", gateway.local_addr().unwrap());
    let mut shard = shard(&url, ShardId::ONE);
    let mut seen = Vec::new();
    let first = ready(&mut shard, &mut seen).await;
    gateway.invalidate_session("bot", true).await.unwrap();
    next_until(&mut shard, Duration::from_secs(5), &mut seen, |e| {
        matches!(e, Event::Resumed).then_some(())
    })
    .await;
    // Not resumable: the shard closes with 1000, which ends the session here too, and
    // identifies afresh.
    gateway.invalidate_session("bot", false).await.unwrap();
    let second = ready(&mut shard, &mut seen).await;
    assert_ne!(second.session_id, first.session_id, "{seen:?}");
    let stats = gateway.stats().await.unwrap();
    assert_eq!(stats.resumes, 1);
    assert_eq!(stats.bad_frames, 0);
    let _ = gateway.shutdown().await;
}

/// t05: a zombie: the gateway stops acknowledging; the shard drops the socket and resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t05_a_zombie_connection_is_dropped_and_resumed() {
    let (gateway, mut events) = gateway(None).await;
    let url = format!("ws://{}", gateway.local_addr().unwrap());
    let mut shard = shard(&url, ShardId::ONE);
    let mut seen = Vec::new();
    ready(&mut shard, &mut seen).await;
    gateway
        .set_faults(tether_gateway::Faults {
            ack_heartbeats: Some(0),
            ..Default::default()
        })
        .await
        .unwrap();
    // Its next beat goes unanswered, and nothing else comes: at the one after, it gives up.
    wait_for(&mut events, Duration::from_secs(10), |e| {
        matches!(
            e,
            GatewayEvent::Presence {
                presence: Presence::Disconnected,
                ..
            }
        )
    })
    .await;
    gateway.set_faults(Default::default()).await.unwrap();
    next_until(&mut shard, Duration::from_secs(10), &mut seen, |e| {
        matches!(e, Event::Resumed).then_some(())
    })
    .await;
    let _ = gateway.shutdown().await;
}

/// t06: two shards of one bot side by side for 30 s: neither replaces the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t06_two_shards_of_one_token_stay_side_by_side() {
    let (gateway, mut events) = gateway(None).await;
    let url = format!("ws://{}", gateway.local_addr().unwrap());
    let mut shards = [
        shard(&url, ShardId::new(0, 2)),
        shard(&url, ShardId::new(1, 2)),
    ];
    for shard in &mut shards {
        ready(shard, &mut Vec::new()).await;
    }
    let until = Instant::now() + Duration::from_secs(30);
    let [zero, one] = &mut shards;
    let mut acks = [0u32; 2];
    while Instant::now() < until {
        tokio::select! {
            event = zero.next_event(EventTypeFlags::all()) => {
                let event = event.unwrap().unwrap();
                assert!(!matches!(event, Event::GatewayClose(_) | Event::Ready(_)), "{event:?}");
                acks[0] += u32::from(matches!(event, Event::GatewayHeartbeatAck));
            }
            event = one.next_event(EventTypeFlags::all()) => {
                let event = event.unwrap().unwrap();
                assert!(!matches!(event, Event::GatewayClose(_) | Event::Ready(_)), "{event:?}");
                acks[1] += u32::from(matches!(event, Event::GatewayHeartbeatAck));
            }
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    assert!(
        acks.iter().all(|&n| n >= 20),
        "both beat all along: {acks:?}"
    );
    let mut log = Vec::new();
    while let Ok(event) = events.try_recv() {
        log.push(event);
    }
    let connected: Vec<_> = log
        .iter()
        .filter_map(|e| match e {
            GatewayEvent::Presence { peer, presence, .. } => {
                Some((peer.to_string(), presence.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        connected,
        [
            ("bot/shard-0-of-2".to_owned(), Presence::Connected),
            ("bot/shard-1-of-2".to_owned(), Presence::Connected),
        ],
        "{log:?}"
    );
    for shard in &shards {
        shard.close(CloseFrame::NORMAL);
    }
    let _ = gateway.shutdown().await;
}
