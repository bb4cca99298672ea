//! twilight-gateway 0.18 built with zlib-stream only, against tether's discord gateway:
//! READY read through the compressed stream, heartbeats acknowledged, and a resume after a
//! drop on a fresh stream of the new connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tether_gateway::registry::Presence;
use tether_gateway::{Credentials, GatewayConfig, GatewayEvent, PeerId, Rejection, ServerProfile};
use tether_tokio::gateway::{GatewayOptions, serve};
use twilight_gateway::queue::InMemoryQueue;
use twilight_gateway::{
    ConfigBuilder, Event, EventTypeFlags, Intents, Shard, ShardId, StreamExt as _,
};

fn auth(credentials: &Credentials<'_>) -> Result<PeerId, Rejection> {
    match credentials.token {
        Some("Bot t") => Ok(PeerId::from("bot")),
        _ => Err(Rejection::new("unknown token")),
    }
}

async fn next(shard: &mut Shard, seen: &mut Vec<String>, want: fn(&Event) -> bool) {
    let found = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(event) = shard.next_event(EventTypeFlags::all()).await {
            let event = event.unwrap_or_else(|e| panic!("unreadable: {e:?}; saw {seen:?}"));
            seen.push(format!("{:?}", event.kind()));
            if want(&event) {
                return;
            }
        }
        panic!("the shard stopped; saw {seen:?}");
    })
    .await;
    assert!(found.is_ok(), "not in time; saw {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zlib_stream_ready_beats_and_resume() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let config = GatewayConfig::builder(ServerProfile::Discord)
        .heartbeat_interval(Duration::from_millis(1000))
        .build()
        .unwrap();
    let (gateway, mut events) = serve(listener, config, auth, GatewayOptions::default()).unwrap();
    let config = ConfigBuilder::new("t".to_owned(), Intents::empty())
        .proxy_url(url)
        .queue(InMemoryQueue::new(0, 0, Duration::ZERO, 0))
        .build();
    let mut shard = Shard::with_config(ShardId::ONE, config);
    let mut seen = Vec::new();
    next(&mut shard, &mut seen, |e| matches!(e, Event::Ready(_))).await;
    next(&mut shard, &mut seen, |e| {
        matches!(e, Event::GatewayHeartbeatAck)
    })
    .await;
    assert_eq!(
        gateway.stats().await.unwrap().compressed,
        1,
        "zlib-stream asked and used"
    );
    gateway.drop_peer("bot").await.unwrap();
    loop {
        let event = events.recv().await.unwrap();
        if matches!(
            event,
            GatewayEvent::Presence {
                presence: Presence::Disconnected,
                ..
            }
        ) {
            break;
        }
    }
    next(&mut shard, &mut seen, |e| matches!(e, Event::Resumed)).await;
    let stats = gateway.stats().await.unwrap();
    assert_eq!(
        (stats.compressed, stats.resumes, stats.bad_frames),
        (2, 1, 0)
    );
}
