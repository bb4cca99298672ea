//! Echo throughput through tether-tokio against raw tokio-tungstenite: same process, same
//! loopback echo server, heartbeats on, pipelined (the sender never waits for echoes).
//!
//! `cargo bench -p tether-tokio --bench echo` prints a table (best rates of seven rounds,
//! and the median of the rounds' ratios) and ends with one line per message size:
//! `ratio tether/raw 64B: X` and `ratio tether/raw 16KiB: X`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tether_core::{Config, Event, Frame, Plain};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The echo server both clients talk to: it writes echoes as they come and flushes when it
/// has nothing more to read.
async fn echo_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tcp.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let (mut sink, mut stream) = ws.split();
                while let Some(Ok(message)) = stream.next().await {
                    if message.is_binary() || message.is_text() {
                        if sink.feed(message).await.is_err() {
                            return;
                        }
                        // Flush when no more is ready to read right now.
                        if sink.flush().await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    url
}

/// The socket settings tether-tokio uses by default, so both clients are alike.
fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024)
}

async fn raw(url: &str, size: usize, count: usize) -> Duration {
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(websocket_config()), true)
        .await
        .unwrap();
    let (mut sink, mut stream) = ws.split();
    let payload = bytes::Bytes::from(vec![1u8; size]);
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        for _ in 0..count {
            sink.feed(Message::Binary(payload.clone())).await.unwrap();
        }
        sink.flush().await.unwrap();
        sink
    });
    let mut received = 0;
    while received < count {
        match stream.next().await {
            Some(Ok(Message::Binary(_))) => received += 1,
            Some(Ok(_)) => {}
            other => panic!("raw echo broke: {other:?}"),
        }
    }
    let took = start.elapsed();
    let _ = writer.await;
    took
}

async fn tether(url: &str, size: usize, count: usize) -> Duration {
    let config = Config::builder()
        .seed(1)
        .queue_max_frames(count + 1)
        .queue_max_bytes(usize::MAX >> 1)
        .build()
        .unwrap();
    let profile = Plain::builder()
        .heartbeat_interval(Some(Duration::from_secs(2)))
        .build()
        .unwrap();
    let (client, mut events) = tether_tokio::connect(url, config, profile).unwrap();
    loop {
        if let Some(Event::Ready { .. }) = events.next().await {
            break;
        }
    }
    let payload = bytes::Bytes::from(vec![1u8; size]);
    let start = Instant::now();
    let sender = client.clone();
    let writer = tokio::spawn(async move {
        for _ in 0..count {
            sender.feed(Frame::Binary(payload.clone())).await.unwrap();
        }
    });
    let mut received = 0;
    while received < count {
        match events.next().await {
            Some(Event::Message { .. }) => received += 1,
            Some(Event::Disconnected { reason, .. }) => panic!("tether echo broke: {reason}"),
            Some(_) => {}
            None => panic!("tether echo stopped"),
        }
    }
    let took = start.elapsed();
    writer.await.unwrap();
    client.shutdown().await;
    took
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let url = echo_server().await;
        if let Ok(which) = std::env::var("ECHO_ONLY") {
            // For profiling one side: `ECHO_ONLY=tether` or `ECHO_ONLY=raw`.
            for _ in 0..10 {
                if which == "raw" {
                    raw(&url, 16 * 1024, 20_000).await;
                } else {
                    tether(&url, 16 * 1024, 20_000).await;
                }
            }
            return;
        }
        // Both clients run as tasks on the runtime's two workers (never on the main
        // thread), so each has the same threads to work with.
        let (raw_url, tether_url) = (url.clone(), url);
        tether_tests::bench::compare(
            |size, n| {
                let url = raw_url.clone();
                async move {
                    tokio::spawn(async move { raw(&url, size, n).await })
                        .await
                        .unwrap()
                }
            },
            |size, n| {
                let url = tether_url.clone();
                async move {
                    tokio::spawn(async move { tether(&url, size, n).await })
                        .await
                        .unwrap()
                }
            },
        )
        .await;
    });
}
