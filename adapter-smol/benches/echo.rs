//! Echo throughput through tether-smol against raw async-tungstenite on smol: same process,
//! same loopback echo server, heartbeats on, pipelined. The method of tether-tokio's echo
//! bench: seven alternating rounds; the ratio is the median of the rounds' ratios.
//!
//! Everything runs on one smol executor on two threads (the tokio bench's two workers).
//!
//! `cargo bench -p tether-smol --bench echo` prints a table and ends with
//! `ratio tether/raw 64B: X` and `ratio tether/raw 16KiB: X`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::Message;
use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use futures_util::{SinkExt, StreamExt};
use tether_core::{Config, Event, Frame, Plain};

async fn echo_server(executor: &Arc<smol::Executor<'static>>) -> String {
    let listener = async_net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let ex = executor.clone();
    executor
        .spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tcp.set_nodelay(true).unwrap();
                ex.spawn(async move {
                    let Ok(ws) = async_tungstenite::accept_async(tcp).await else {
                        return;
                    };
                    let (mut sink, mut stream) = ws.split();
                    while let Some(Ok(message)) = stream.next().await {
                        if (message.is_binary() || message.is_text())
                            && (sink.feed(message).await.is_err() || sink.flush().await.is_err())
                        {
                            return;
                        }
                    }
                })
                .detach();
            }
        })
        .detach();
    url
}

/// The socket settings tether uses by default, so both clients are alike.
fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024)
}

async fn raw(
    executor: &Arc<smol::Executor<'static>>,
    url: &str,
    size: usize,
    count: usize,
) -> Duration {
    let addr = url
        .trim_start_matches("ws://")
        .trim_end_matches('/')
        .to_owned();
    let tcp = async_net::TcpStream::connect(addr.as_str()).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let (ws, _) = async_tungstenite::client_async_with_config(url, tcp, Some(websocket_config()))
        .await
        .unwrap();
    let (mut sink, mut stream) = ws.split();
    let payload = bytes::Bytes::from(vec![1u8; size]);
    let start = Instant::now();
    let writer = executor.spawn(async move {
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

async fn tether(
    executor: &Arc<smol::Executor<'static>>,
    url: &str,
    size: usize,
    count: usize,
) -> Duration {
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
    let runtime = tether_smol::Smol::with_spawner(executor.clone());
    let options = tether_smol::Options::default();
    let (client, mut events) =
        tether_smol::connect_on(runtime, url, config, profile, options).unwrap();
    loop {
        if let Some(Event::Ready { .. }) = events.next().await {
            break;
        }
    }
    let payload = bytes::Bytes::from(vec![1u8; size]);
    let start = Instant::now();
    let sender = client.clone();
    let writer = executor.spawn(async move {
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
    writer.await;
    client.shutdown().await;
    took
}

fn main() {
    // One executor on two threads, like the tokio bench's two workers: the server, the raw
    // client and tether's tasks all run on it, so both clients have the same threads.
    let executor = Arc::new(smol::Executor::new());
    let (stop, stopped) = smol::channel::unbounded::<()>();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (executor, stopped) = (executor.clone(), stopped.clone());
            std::thread::spawn(move || smol::block_on(executor.run(stopped.recv())))
        })
        .collect();
    smol::block_on(async {
        let url = echo_server(&executor).await;
        let (raw_url, tether_url) = (url.clone(), url);
        let (raw_ex, tether_ex) = (executor.clone(), executor.clone());
        tether_tests::bench::compare(
            |size, n| {
                let url = raw_url.clone();
                let ex = raw_ex.clone();
                raw_ex.spawn(async move { raw(&ex, &url, size, n).await })
            },
            |size, n| {
                let url = tether_url.clone();
                let ex = tether_ex.clone();
                tether_ex.spawn(async move { tether(&ex, &url, size, n).await })
            },
        )
        .await;
    });
    drop(stop);
    for thread in threads {
        let _ = thread.join();
    }
}
