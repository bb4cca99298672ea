//! Echo throughput through tether-tokio against raw tokio-tungstenite: same process, same
//! loopback echo server, heartbeats on, pipelined (the sender never waits for echoes), both
//! clients as tasks on the same two workers. Seven alternating rounds per size; the ratio is
//! the median of the rounds' ratios, which a noisy neighbour moves far less than a best-of.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tether_core::{Config, Event, Frame, Plain};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use super::node::websocket_config;

/// The sizes measured: label, message size, messages per round.
pub const SIZES: [(&str, usize, usize); 2] = [("64B", 64, 200_000), ("16KiB", 16 * 1024, 20_000)];

/// How long one round took, or why it broke.
pub type Round = Result<Duration, String>;

/// The echo server both clients talk to: it writes echoes as they come and flushes when it
/// has nothing more to read.
async fn echo_server() -> Result<String, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let url = format!(
        "ws://{}/",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
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
            });
        }
    });
    Ok(url)
}

async fn raw(url: String, size: usize, count: usize) -> Round {
    let (ws, _) =
        tokio_tungstenite::connect_async_with_config(&url, Some(websocket_config()), true)
            .await
            .map_err(|e| e.to_string())?;
    let (mut sink, mut stream) = ws.split();
    let payload = bytes::Bytes::from(vec![1u8; size]);
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        for _ in 0..count {
            sink.feed(Message::Binary(payload.clone())).await?;
        }
        sink.flush().await
    });
    let mut received = 0;
    while received < count {
        match stream.next().await {
            Some(Ok(Message::Binary(_))) => received += 1,
            Some(Ok(_)) => {}
            other => return Err(format!("raw echo broke: {other:?}")),
        }
    }
    let took = start.elapsed();
    let _ = writer.await;
    Ok(took)
}

async fn tether(url: String, size: usize, count: usize) -> Round {
    let (config, profile, options) = tether_settings(count)?;
    let (client, events) =
        tether_tokio::connect_with(url, config, profile, options).map_err(|e| e.to_string())?;
    tether_round(client, events, size, count, |writer| {
        // Spawned now, not when the returned future is first polled.
        let task = tokio::spawn(writer);
        async move {
            let _ = task.await;
        }
    })
    .await
}

/// The settings of a tether client in an echo round, whatever the runtime: a queue that
/// holds the whole round, heartbeats on, no invariant checker.
pub(super) fn tether_settings(
    count: usize,
) -> Result<(Config, Plain, tether_adapter::Options), String> {
    let config = Config::builder()
        .seed(1)
        .queue_max_frames(count + 1)
        .queue_max_bytes(usize::MAX >> 1)
        .build()
        .map_err(|e| e.to_string())?;
    let profile = Plain::builder()
        .heartbeat_interval(Some(Duration::from_secs(2)))
        .build()
        .map_err(|e| e.to_string())?;
    let options = tether_adapter::Options::builder()
        .check_invariants(false)
        .build()
        .map_err(|e| e.to_string())?;
    Ok((config, profile, options))
}

/// One tether round once connected, whatever the runtime: wait for ready, feed `count`
/// frames of `size` bytes from a writer `spawn` runs beside the reader, and time their
/// echoes. `spawn` starts the writer at once and returns a future that waits for it.
pub(super) async fn tether_round<J: Future<Output = ()>>(
    client: tether_adapter::Handle<Plain>,
    mut events: tether_adapter::Events<Plain>,
    size: usize,
    count: usize,
    spawn: impl FnOnce(Pin<Box<dyn Future<Output = ()> + Send>>) -> J,
) -> Round {
    loop {
        match events.next().await {
            Some(Event::Ready { .. }) => break,
            Some(_) => {}
            None => return Err("tether echo stopped before ready".into()),
        }
    }
    let payload = bytes::Bytes::from(vec![1u8; size]);
    let start = Instant::now();
    let sender = client.clone();
    let writer = spawn(Box::pin(async move {
        for _ in 0..count {
            if sender.feed(Frame::Binary(payload.clone())).await.is_err() {
                return;
            }
        }
    }));
    let mut received = 0;
    while received < count {
        match events.next().await {
            Some(Event::Message { .. }) => received += 1,
            Some(Event::Disconnected { reason, .. }) => {
                return Err(format!("tether echo broke: {reason}"));
            }
            Some(_) => {}
            None => return Err("tether echo stopped".into()),
        }
    }
    let took = start.elapsed();
    writer.await;
    client.shutdown().await;
    Ok(took)
}

/// Runs one round as a task on the runtime's workers (never on the caller's thread), so
/// both clients have the same threads to work with.
async fn on_worker<F: Future<Output = Round> + Send + 'static>(round: F) -> Round {
    tokio::spawn(round).await.map_err(|e| e.to_string())?
}

/// Prints the echo table and one `ratio tether/raw <size>: X` line per size; returns the
/// ratios.
pub async fn echo() -> Result<Vec<(&'static str, f64)>, String> {
    let url = echo_server().await?;
    let (raw_url, tether_url) = (url.clone(), url);
    compare(
        "tokio",
        |size, count| on_worker(raw(raw_url.clone(), size, count)),
        |size, count| on_worker(tether(tether_url.clone(), size, count)),
    )
    .await
}

/// The method every runtime's echo shares: a warm-up round each, then seven alternating
/// rounds of raw and tether per size; `raw(size, count)` and `tether(size, count)` each
/// run one round and say how long it took.
pub async fn compare<R, RF, T, TF>(
    runtime: &str,
    mut raw: R,
    mut tether: T,
) -> Result<Vec<(&'static str, f64)>, String>
where
    R: FnMut(usize, usize) -> RF,
    RF: Future<Output = Round>,
    T: FnMut(usize, usize) -> TF,
    TF: Future<Output = Round>,
{
    println!(
        "echo on {runtime}: pipelined, 8 KiB socket buffers, heartbeats on; best rates of 7 rounds, median ratio"
    );
    println!(
        "{:<8} {:>10} {:>14} {:>14} {:>14}",
        "size", "messages", "raw msg/s", "tether msg/s", "median ratio"
    );
    let mut ratios = Vec::new();
    for (label, size, count) in SIZES {
        raw(size, count / 10).await?;
        tether(size, count / 10).await?;
        let mut rounds = Vec::new();
        let (mut best_raw, mut best_tether) = (Duration::MAX, Duration::MAX);
        for round in 0..7 {
            let (r, t) = if round % 2 == 0 {
                let r = raw(size, count).await?;
                (r, tether(size, count).await?)
            } else {
                let t = tether(size, count).await?;
                (raw(size, count).await?, t)
            };
            best_raw = best_raw.min(r);
            best_tether = best_tether.min(t);
            rounds.push(r.as_secs_f64() / t.as_secs_f64());
        }
        rounds.sort_by(f64::total_cmp);
        let ratio = rounds.get(rounds.len() / 2).copied().unwrap_or(0.0);
        let raw_rate = count as f64 / best_raw.as_secs_f64();
        let tether_rate = count as f64 / best_tether.as_secs_f64();
        println!("{label:<8} {count:>10} {raw_rate:>14.0} {tether_rate:>14.0} {ratio:>14.3}");
        ratios.push((label, ratio));
    }
    for (label, ratio) in &ratios {
        println!("ratio tether/raw {label}: {ratio:.3}");
    }
    Ok(ratios)
}
