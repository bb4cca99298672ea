//! The processes a capacity run is made of: a gateway node and a clients node, each either
//! tether or bare tokio-tungstenite with the same buffers, driven over stdin and reporting
//! on stdout (one line per answer), so the coordinator can read their memory and CPU from
//! `/proc` and kill or restart them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tether_core::{Config, Discord, Event, Identify, Token};
use tether_gateway::registry::Presence;
use tether_gateway::{Credentials, GatewayConfig, GatewayEvent, PeerId, Rejection, ServerProfile};
use tether_tokio::gateway::{GatewayOptions, serve};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Which implementation a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Implementation {
    /// tether-tokio (the gateway server, or tether clients).
    Tether,
    /// Bare tokio-tungstenite doing the same protocol, nothing more.
    Bare,
}

/// The socket settings both implementations use: 8 KiB buffers.
pub fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024)
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(4 << 20))
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// Connections accepted and sessions ready, and the accepted count sampled over time.
#[derive(Default)]
struct Tally {
    accepted: AtomicU64,
    ready: AtomicUsize,
    /// (unix ms, connections accepted so far), each time the count moved.
    samples: Mutex<Vec<(u128, u64)>>,
}

impl Tally {
    /// Samples the accepted count every 10 ms, for connection rates.
    async fn sample(self: Arc<Self>) {
        let mut last = u64::MAX;
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let now = self.accepted.load(Ordering::Relaxed);
            if now != last {
                self.samples.lock().await.push((unix_ms(), now));
                last = now;
            }
        }
    }
}

fn bench_auth(credentials: &Credentials<'_>) -> Result<PeerId, Rejection> {
    credentials
        .token
        .map(PeerId::from)
        .ok_or_else(|| Rejection::new("no token"))
}

/// Runs a gateway node on `listen` until stdin closes. Commands: `ready`, `accepts`.
pub async fn gateway(
    implementation: Implementation,
    listen: &str,
    heartbeat: Duration,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    println!("listening {}", listener.local_addr()?);
    let tally = Arc::new(Tally::default());
    tokio::spawn(tally.clone().sample());
    match implementation {
        Implementation::Tether => tether_gateway(listener, heartbeat, tally.clone()),
        Implementation::Bare => {
            tokio::spawn(bare_gateway(listener, heartbeat, tally.clone()));
        }
    }
    commands(|line| {
        let tally = tally.clone();
        async move {
            match line.as_str() {
                "ready" => format!("ready {}", tally.ready.load(Ordering::Relaxed)),
                "accepts" => {
                    let samples = tally.samples.lock().await;
                    let list: Vec<String> =
                        samples.iter().map(|(t, n)| format!("{t}:{n}")).collect();
                    format!("accepts {}", list.join(","))
                }
                other => format!("error unknown command {other}"),
            }
        }
    })
    .await
}

fn tether_gateway(listener: TcpListener, heartbeat: Duration, tally: Arc<Tally>) {
    let config = GatewayConfig::builder(ServerProfile::Discord)
        .heartbeat_interval(heartbeat)
        .build();
    let Ok(config) = config else {
        return;
    };
    let options = GatewayOptions {
        max_connections: 20_000,
        ..GatewayOptions::default()
    };
    let Ok((gateway, mut events)) = serve(listener, config, bench_auth, options) else {
        return;
    };
    let counter = tally.clone();
    tokio::spawn(async move {
        // The gateway counts the connections it accepted; read it as often as we sample.
        while let Ok(stats) = gateway.stats().await {
            counter
                .accepted
                .store(stats.registry.accepted, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let GatewayEvent::Presence { presence, .. } = event {
                match presence {
                    Presence::Connected => {
                        tally.ready.fetch_add(1, Ordering::Relaxed);
                    }
                    Presence::Disconnected => {
                        tally.ready.fetch_sub(1, Ordering::Relaxed);
                    }
                    Presence::Replaced { .. } => {}
                }
            }
        }
    });
}

async fn bare_gateway(listener: TcpListener, heartbeat: Duration, tally: Arc<Tally>) {
    while let Ok((tcp, _)) = listener.accept().await {
        let _ = tcp.set_nodelay(true);
        tally.accepted.fetch_add(1, Ordering::Relaxed);
        let tally = tally.clone();
        tokio::spawn(async move {
            let Ok(mut ws) =
                tokio_tungstenite::accept_async_with_config(tcp, Some(websocket_config())).await
            else {
                return;
            };
            let hello =
                json!({"op": 10, "d": {"heartbeat_interval": heartbeat.as_millis() as u64}});
            if ws.send(Message::text(hello.to_string())).await.is_err() {
                return;
            }
            let mut ready = false;
            while let Some(Ok(message)) = ws.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
                    break;
                };
                let reply = match frame["op"].as_u64() {
                    Some(1) => json!({"op": 11}),
                    Some(2) if !ready => {
                        ready = true;
                        tally.ready.fetch_add(1, Ordering::Relaxed);
                        json!({"op": 0, "s": 1, "t": "READY", "d": {"session_id": "bare"}})
                    }
                    _ => continue,
                };
                if ws.send(Message::text(reply.to_string())).await.is_err() {
                    break;
                }
            }
            if ready {
                tally.ready.fetch_sub(1, Ordering::Relaxed);
            }
        });
    }
}

/// Runs `count` clients against `url` once told `go` on stdin. Commands: `go`, `ready`.
/// Prints `all-ready <unix ms>` each time every client is ready.
pub async fn clients(
    implementation: Implementation,
    url: String,
    count: usize,
    ramp: usize,
    spread: Option<Duration>,
) -> std::io::Result<()> {
    let ready = Arc::new(AtomicUsize::new(0));
    println!("idle");
    let watcher = ready.clone();
    tokio::spawn(async move {
        let mut all = false;
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now_all = watcher.load(Ordering::Relaxed) >= count;
            if now_all && !all {
                println!("all-ready {}", unix_ms());
            }
            all = now_all;
        }
    });
    commands(|line| {
        let (ready, url) = (ready.clone(), url.clone());
        async move {
            match line.as_str() {
                "go" => {
                    tokio::spawn(start_clients(
                        implementation,
                        url,
                        count,
                        ramp,
                        spread,
                        ready,
                    ));
                    "going".to_owned()
                }
                "ready" => format!("ready {}", ready.load(Ordering::Relaxed)),
                other => format!("error unknown command {other}"),
            }
        }
    })
    .await
}

async fn start_clients(
    implementation: Implementation,
    url: String,
    count: usize,
    ramp: usize,
    spread: Option<Duration>,
    ready: Arc<AtomicUsize>,
) {
    for i in 0..count {
        if i > 0 && i % ramp.max(1) == 0 {
            // Ramp up so the listen backlog never overflows into SYN retries.
            while ready.load(Ordering::Relaxed) + ramp < i {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let ready = ready.clone();
        match implementation {
            Implementation::Tether => tether_client(&url, i, spread, ready),
            Implementation::Bare => {
                tokio::spawn(bare_client(url.clone(), i, ready));
            }
        }
    }
}

fn tether_client(url: &str, i: usize, spread: Option<Duration>, ready: Arc<AtomicUsize>) {
    let mut config = Config::builder().seed(i as u64 + 1);
    // The spread of the first reconnect after a drop: the first-retry window of a stable
    // session and the first backoff of a young one.
    if let Some(window) = spread {
        config = config.first_retry_window(window).backoff_initial(window);
    }
    let Ok(config) = config.build() else {
        return;
    };
    let Ok(profile) = Discord::builder(Identify::new(Token::new(format!("bench-{i}")), 0)).build()
    else {
        return;
    };
    let Ok(options) = tether_tokio::Options::builder()
        .check_invariants(false)
        .build()
    else {
        return;
    };
    let Ok((client, mut events)) = tether_tokio::connect_with(url, config, profile, options) else {
        return;
    };
    tokio::spawn(async move {
        let _keep = client;
        let mut up = false;
        while let Some(event) = events.next().await {
            match event {
                Event::Ready { .. } if !up => {
                    up = true;
                    ready.fetch_add(1, Ordering::Relaxed);
                }
                Event::Disconnected { .. } if up => {
                    up = false;
                    ready.fetch_sub(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    });
}

async fn bare_client(url: String, i: usize, ready: Arc<AtomicUsize>) {
    let Ok((ws, _)) =
        tokio_tungstenite::connect_async_with_config(&url, Some(websocket_config()), true).await
    else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let mut beat: Option<tokio::time::Interval> = None;
    let mut up = false;
    loop {
        let tick = async {
            match beat.as_mut() {
                Some(beat) => {
                    beat.tick().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            message = stream.next() => {
                let Some(Ok(Message::Text(text))) = message else { break };
                let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else { break };
                match frame["op"].as_u64() {
                    Some(10) => {
                        let every = Duration::from_millis(frame["d"]["heartbeat_interval"].as_u64().unwrap_or(1000));
                        let first = tokio::time::Instant::now() + every.mul_f64(fastrand::f64());
                        beat = Some(tokio::time::interval_at(first, every));
                        let identify = json!({"op": 2, "d": {"token": format!("bench-{i}"), "intents": 0}});
                        if sink.send(Message::text(identify.to_string())).await.is_err() { break }
                    }
                    Some(0) if frame["t"] == "READY" => {
                        up = true;
                        ready.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
            () = tick => {
                if sink.send(Message::text("{\"op\":1,\"d\":1}")).await.is_err() { break }
            }
        }
    }
    if up {
        ready.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Answers each stdin line with one stdout line until stdin closes.
async fn commands<F, Fut>(mut answer: F) -> std::io::Result<()>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = String>,
{
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        println!("{}", answer(line.trim().to_owned()).await);
    }
    Ok(())
}
