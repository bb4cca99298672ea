//! `tether demo`: an embedded gateway on 127.0.0.1 and a tether client, and a schedule of
//! the faults long sessions meet, played against the client while traffic flows both
//! ways. A timeline shows every lifecycle event; a summary and a list of checks end it,
//! and the exit code is 0 only if every check held (the client's invariant checker rides
//! in its driver, so a broken invariant ends the client and fails the run).

mod proxy;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use serde_json::{Value, json};
use tether_core::{
    Config, Discord, Event, Frame, Identify, Outcome, ReconnectMode, Stats, StopReason, Token,
};
use tether_gateway::registry::{InvokeOutcome, Presence};
use tether_gateway::{Faults, GatewayConfig, GatewayEvent, ServerProfile};
use tether_tokio::gateway::{GatewayHandle, GatewayOptions, serve};
use tokio::net::TcpListener;

use crate::gateway::describe;
use crate::report::{Timeline, Tone, event_line};
use proxy::Proxy;
use tether_core::protocol::openclaw::{DeviceIdentity, OpenClaw, OpenClawRequest, Role};
use tether_gateway::{Credentials, PeerId, Rejection};

const PEER: &str = "demo-bot";
/// The discord client's token; the gateway knows it as [`PEER`].
const TOKEN: &str = "demo-bot-token";
/// The OpenClaw node's token (the gateway knows a node by its device id).
const AGENT_TOKEN: &str = "demo-agent-token";
const AGENT: &str = "demo-agent";

/// The demo gateway's authenticator: the two tokens it knows, by name; anyone else is
/// refused.
fn known_tokens(credentials: &Credentials<'_>) -> Result<PeerId, Rejection> {
    match credentials.token {
        Some(TOKEN) => Ok(PeerId::from(PEER)),
        Some(AGENT_TOKEN) => Ok(PeerId::from(AGENT)),
        _ => Err(Rejection::new("unknown token")),
    }
}
const HEARTBEAT: Duration = Duration::from_millis(400);
const PHASE_LIMIT: Duration = Duration::from_secs(8);

/// What the client's and the gateway's event tasks saw.
#[derive(Default)]
struct Seen {
    ready: AtomicU64,
    resumed: AtomicU64,
    dispatches: Mutex<BTreeSet<u64>>,
    duplicate_dispatches: AtomicU64,
    gaps: AtomicU64,
    returned: AtomicU64,
    at_gateway: Mutex<BTreeSet<u64>>,
    disconnected_presences: AtomicU64,
    stopped: Mutex<Option<StopReason>>,
    ended: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A named check and whether it held.
struct Check {
    name: String,
    held: bool,
}

struct Demo {
    timeline: Arc<Timeline>,
    seen: Arc<Seen>,
    gateway: GatewayHandle,
    addr: SocketAddr,
    proxy: Proxy,
    client: tether_tokio::Handle<Discord>,
    next_message: u64,
    sent: BTreeSet<u64>,
    next_dispatch: u64,
    dispatched: BTreeSet<u64>,
    /// Dispatches sent to a session the client was leaving: never to arrive, by design.
    superseded: BTreeSet<u64>,
    checks: Vec<Check>,
    final_stats: Option<Stats>,
}

fn raw(text: String) -> Result<Box<RawValue>, String> {
    RawValue::from_string(text).map_err(|e| e.to_string())
}

fn fast_config(seed: u64) -> Result<Config, String> {
    Config::builder()
        .seed(seed)
        .connect_timeout(Duration::from_secs(2))
        .hello_timeout(Duration::from_millis(500))
        .ready_timeout(Duration::from_millis(800))
        .drain_timeout(Duration::from_millis(300))
        .abort_grace(Duration::from_millis(100))
        .backoff_initial(Duration::from_millis(50))
        .backoff_max(Duration::from_millis(400))
        .first_retry_window(Duration::from_millis(100))
        .stable_after(Duration::from_millis(300))
        .build()
        .map_err(|e| e.to_string())
}

/// Starts a gateway on `addr` (retrying while a previous one's port is released) and a
/// task that shows and tallies its events.
/// Listens on `addr`, retrying briefly while a gateway just shut down still holds it.
async fn bind(addr: &str) -> Result<TcpListener, String> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(format!("gateway cannot listen on {addr}: {e}")),
        }
    }
}

/// Serves `listener`. Discord clients are told to resume through `proxy` (the demo's
/// faults are in the path), not straight at the listener.
async fn start_gateway(
    listener: TcpListener,
    profile: ServerProfile,
    proxy: &str,
    timeline: Arc<Timeline>,
    seen: Arc<Seen>,
) -> Result<(GatewayHandle, SocketAddr), String> {
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let config = GatewayConfig::builder(profile)
        .resume_url(proxy.trim_end_matches('/'))
        .heartbeat_interval(HEARTBEAT)
        .handshake_timeout(Duration::from_secs(2))
        .resume_window(Duration::from_secs(30))
        // The node's `slow` requests go to this application, which holds them.
        .methods(["slow"])
        .build()
        .map_err(|e| e.to_string())?;
    let (gateway, mut events) = serve(listener, config, known_tokens, GatewayOptions::default())
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match &event {
                GatewayEvent::Message { text, .. } => {
                    if let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) {
                        if let Some(n) = frame["d"]["n"].as_u64() {
                            lock(&seen.at_gateway).insert(n);
                        }
                    }
                    continue;
                }
                GatewayEvent::Presence {
                    presence: Presence::Disconnected,
                    ..
                } => {
                    seen.disconnected_presences.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
            eprintln!(
                "{}",
                timeline.line(Tone::Plain, &format!("  gateway: {}", describe(&event)))
            );
        }
    });
    Ok((gateway, local))
}

/// Waits until `done` holds, up to `limit`.
async fn until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

/// Waits until the asynchronous `check` holds, up to the phase limit.
async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PHASE_LIMIT;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs the demo; `Ok(true)` when every check held.
pub async fn run(seed: u64) -> Result<bool, String> {
    let started = Instant::now();
    let timeline = Arc::new(Timeline::new(false));
    let seen = Arc::new(Seen::default());
    let listener = bind("127.0.0.1:0").await?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let proxy = Proxy::start(addr).await.map_err(|e| e.to_string())?;
    let (gateway, addr) = start_gateway(
        listener,
        ServerProfile::Discord,
        &proxy.url(),
        timeline.clone(),
        seen.clone(),
    )
    .await?;
    let profile = Discord::builder(Identify::new(Token::new(TOKEN), 0))
        .build()
        .map_err(|e| e.to_string())?;
    let (client, events) = tether_tokio::connect(proxy.url(), fast_config(seed)?, profile)
        .map_err(|e| e.to_string())?;
    tokio::spawn(watch_client(events, timeline.clone(), seen.clone()));
    let mut demo = Demo {
        timeline,
        seen,
        gateway,
        addr,
        proxy,
        client,
        next_message: 0,
        sent: BTreeSet::new(),
        next_dispatch: 0,
        dispatched: BTreeSet::new(),
        superseded: BTreeSet::new(),
        checks: Vec::new(),
        final_stats: None,
    };
    demo.phase("connect");
    let ready = demo.wait_ready(0, false).await;
    demo.check("the client connects and identifies", ready);
    demo.calm(5).await?;
    demo.server_restart().await?;
    demo.network_drop().await?;
    demo.stalled_hello().await?;
    demo.unacked_heartbeats().await?;
    demo.fresh_reconnect_while_old_hangs().await?;
    demo.invalid_session().await?;
    requests_in_flight(&mut demo, seed).await?;
    demo.shutdown().await;
    let held = demo.summary(started.elapsed());
    Ok(held)
}

impl Demo {
    fn phase(&self, name: &str) {
        eprintln!("{}", self.timeline.line(Tone::Fault, &format!("== {name}")));
    }

    fn check(&mut self, name: &str, held: bool) {
        self.checks.push(Check {
            name: name.to_owned(),
            held,
        });
    }

    fn readies(&self) -> (u64, u64) {
        (
            self.seen.ready.load(Ordering::Relaxed),
            self.seen.resumed.load(Ordering::Relaxed),
        )
    }

    /// Waits for the next ready after `before` readies; `resumed` says which kind.
    async fn wait_ready(&self, before: u64, resumed: bool) -> bool {
        let seen = self.seen.clone();
        let resumed_before = seen.resumed.load(Ordering::Relaxed);
        until(PHASE_LIMIT, || {
            let ready = seen.ready.load(Ordering::Relaxed);
            let now_resumed = seen.resumed.load(Ordering::Relaxed);
            ready > before && (now_resumed > resumed_before) == resumed
        })
        .await
    }

    /// Traffic both ways while the session is calm, and waits for all of it to arrive.
    async fn calm(&mut self, count: u64) -> Result<(), String> {
        for _ in 0..count {
            self.next_message += 1;
            let n = self.next_message;
            let frame = Frame::text(json!({"op": 3, "d": {"n": n}}).to_string());
            if self.client.send(frame).await.is_ok() {
                self.sent.insert(n);
            }
            self.dispatch().await?;
        }
        self.settle().await;
        Ok(())
    }

    async fn dispatch(&mut self) -> Result<Option<tether_core::ConnId>, String> {
        self.next_dispatch += 1;
        let n = self.next_dispatch;
        match self
            .gateway
            .dispatch(PEER, "TICK", raw(n.to_string())?)
            .await
        {
            Ok(delivered) => {
                self.dispatched.insert(n);
                Ok(delivered.conn)
            }
            Err(_) => Ok(None),
        }
    }

    /// Waits until everything sent so far has arrived (or was handed back).
    async fn settle(&self) -> bool {
        let seen = self.seen.clone();
        let (sent, dispatched) = (self.sent.clone(), self.dispatched.clone());
        until(PHASE_LIMIT, || {
            let at_gateway =
                lock(&seen.at_gateway).len() as u64 + seen.returned.load(Ordering::Relaxed);
            at_gateway >= sent.len() as u64 && lock(&seen.dispatches).is_superset(&dispatched)
        })
        .await
    }

    async fn owner_gone(&self) -> bool {
        let gateway = &self.gateway;
        eventually(|| async { matches!(gateway.owner(PEER).await, Ok(None)) }).await
    }

    async fn set_faults(&self, faults: Faults) {
        let _ = self.gateway.set_faults(faults).await;
    }

    async fn server_restart(&mut self) -> Result<(), String> {
        self.phase("server restart: the gateway goes away (1001) and comes back with no sessions");
        let (ready, _) = self.readies();
        let _ = self.gateway.shutdown().await;
        let (gateway, _) = start_gateway(
            bind(&self.addr.to_string()).await?,
            ServerProfile::Discord,
            &self.proxy.url(),
            self.timeline.clone(),
            self.seen.clone(),
        )
        .await?;
        self.gateway = gateway;
        let back = self.wait_ready(ready, false).await;
        self.check(
            "after a restart the session is invalid and a fresh one starts",
            back,
        );
        self.calm(5).await
    }

    async fn network_drop(&mut self) -> Result<(), String> {
        self.phase("network drop: both sides see the socket reset; dispatches wait for resume");
        let (ready, _) = self.readies();
        self.proxy.cut_all();
        let gone = self.owner_gone().await;
        let mut held_back = 0;
        for _ in 0..3 {
            if self.dispatch().await?.is_none() {
                held_back += 1;
            }
        }
        let back = self.wait_ready(ready, true).await;
        let arrived = self.settle().await;
        self.check(
            "a dropped session resumes and the dispatches it missed are replayed",
            gone && held_back == 3 && back && arrived,
        );
        self.calm(3).await
    }

    async fn stalled_hello(&mut self) -> Result<(), String> {
        self.phase("stalled hello: new sockets get no hello for a while");
        let (ready, _) = self.readies();
        self.set_faults(Faults {
            stall_hello: true,
            ..Faults::default()
        })
        .await;
        self.proxy.cut_all();
        tokio::time::sleep(Duration::from_millis(1200)).await;
        self.set_faults(Faults::default()).await;
        let back = self.wait_ready(ready, true).await;
        let stats = self.client.stats().await.map_err(|e| e.to_string())?;
        self.check(
            "a stalled hello times out and the client retries until it resumes",
            back && stats.opens > 3,
        );
        self.calm(3).await
    }

    async fn unacked_heartbeats(&mut self) -> Result<(), String> {
        self.phase("heartbeats stop being acknowledged: a zombie connection");
        let (ready, _) = self.readies();
        let zombies = self
            .client
            .stats()
            .await
            .map_err(|e| e.to_string())?
            .zombies;
        self.set_faults(Faults {
            ack_heartbeats: Some(0),
            ..Faults::default()
        })
        .await;
        let client = &self.client;
        let detected =
            eventually(|| async { client.stats().await.is_ok_and(|s| s.zombies > zombies) }).await;
        self.set_faults(Faults::default()).await;
        let back = self.wait_ready(ready, true).await;
        self.check(
            "a connection whose heartbeats go unacked is found a zombie and replaced",
            detected && back,
        );
        self.calm(3).await
    }

    async fn fresh_reconnect_while_old_hangs(&mut self) -> Result<(), String> {
        self.phase("forced fresh reconnect while the old socket hangs; its late frames and late close must change nothing");
        let (ready, _) = self.readies();
        let before = self
            .gateway
            .stats()
            .await
            .map_err(|e| e.to_string())?
            .registry
            .stale_closes;
        let stale_before = self
            .client
            .stats()
            .await
            .map_err(|e| e.to_string())?
            .stale_inputs;
        let disconnects_before = self.seen.disconnected_presences.load(Ordering::Relaxed);
        // The client's close of the old socket never reaches the gateway, which still
        // writes to it.
        self.proxy.mute_all().await;
        self.client
            .reconnect(ReconnectMode::Fresh)
            .await
            .map_err(|e| e.to_string())?;
        // Dispatches of the session being left: they reach the old socket after the client
        // left it, and are dropped there (a fresh session does not carry them over).
        for _ in 0..2 {
            self.next_dispatch += 1;
            let n = self.next_dispatch;
            if self
                .gateway
                .dispatch(PEER, "TICK", raw(n.to_string())?)
                .await
                .is_ok()
            {
                self.superseded.insert(n);
            }
        }
        let back = self.wait_ready(ready, false).await;
        let gateway = &self.gateway;
        let late_close = eventually(|| async {
            gateway
                .stats()
                .await
                .is_ok_and(|s| s.registry.stale_closes > before)
        })
        .await;
        let owner = self.gateway.owner(PEER).await.map_err(|e| e.to_string())?;
        let untouched =
            self.seen.disconnected_presences.load(Ordering::Relaxed) == disconnects_before;
        let stale = self
            .client
            .stats()
            .await
            .map_err(|e| e.to_string())?
            .stale_inputs
            - stale_before;
        let leaked = lock(&self.seen.dispatches)
            .intersection(&self.superseded)
            .count();
        self.check("a fresh session starts while the old socket hangs", back);
        self.check(
            "the old socket's late frames are dropped as stale, none reaches the new session",
            stale >= 1 && leaked == 0,
        );
        self.check(
            "the superseded socket's late close leaves the peer connected (S2, S4)",
            late_close && owner.is_some() && untouched,
        );
        self.calm(3).await
    }

    async fn invalid_session(&mut self) -> Result<(), String> {
        self.phase("invalid session: the gateway refuses the resume");
        let (ready, _) = self.readies();
        self.set_faults(Faults {
            invalid_session_rate: 1.0,
            ..Faults::default()
        })
        .await;
        self.proxy.cut_all();
        let back = self.wait_ready(ready, false).await;
        self.set_faults(Faults::default()).await;
        self.check("a refused resume is followed by a fresh identify", back);
        self.calm(3).await
    }

    async fn shutdown(&mut self) {
        self.phase("shutdown");
        self.final_stats = self.client.stats().await.ok();
        let unsent = self.client.shutdown().await;
        let seen = self.seen.clone();
        let stopped = until(PHASE_LIMIT, || lock(&seen.stopped).is_some()).await;
        self.check(
            "the client shuts down with nothing left unsent",
            stopped && unsent.is_empty(),
        );
    }

    /// Prints the summary and the checks; true when all held.
    fn summary(&mut self, took: Duration) -> bool {
        let received = lock(&self.seen.at_gateway).len() as u64;
        let handed_back = self.seen.returned.load(Ordering::Relaxed);
        let dispatches = lock(&self.seen.dispatches).clone();
        let lost_messages = (self.sent.len() as u64).saturating_sub(received + handed_back);
        let lost_dispatches = self.dispatched.difference(&dispatches).count() as u64;
        let lost = lost_messages + lost_dispatches;
        let ended_cleanly =
            !self.seen.ended.load(Ordering::Relaxed) || lock(&self.seen.stopped).is_some();
        self.check(
            "nothing was lost: every message arrived or was handed back, every dispatch arrived",
            lost == 0,
        );
        self.check(
            "no dispatch arrived twice, none out of order",
            self.seen.duplicate_dispatches.load(Ordering::Relaxed) == 0
                && self.seen.gaps.load(Ordering::Relaxed) == 0,
        );
        self.check(
            "the client's invariants held (I1-I8, checked in its driver)",
            ended_cleanly,
        );
        self.check(
            "the demo finished within 60 s",
            took < Duration::from_secs(60),
        );
        println!();
        println!("summary ({:.1} s)", took.as_secs_f64());
        let stats = self.final_stats.unwrap_or_default();
        let rows: [(&str, u64); 12] = [
            ("connections", stats.opened),
            ("resumes", stats.resumed),
            (
                "fresh identifies",
                stats.ready.saturating_sub(stats.resumed),
            ),
            ("zombies detected", stats.zombies),
            ("stale inputs dropped", stats.stale_inputs),
            ("messages sent (client -> gateway)", self.sent.len() as u64),
            ("messages received by the gateway", received),
            ("messages handed back", handed_back),
            (
                "dispatches sent (gateway -> client)",
                self.dispatched.len() as u64,
            ),
            ("dispatches received", dispatches.len() as u64),
            (
                "dispatches to a left session (dropped)",
                self.superseded.len() as u64,
            ),
            ("lost", lost),
        ];
        for (name, value) in rows {
            println!("  {name:<38} {value:>6}");
        }
        println!();
        let mut all = true;
        for check in &self.checks {
            all &= check.held;
            println!(
                "  {} {}",
                if check.held { "ok  " } else { "FAIL" },
                check.name
            );
        }
        println!();
        println!(
            "{}",
            if all {
                "every invariant held"
            } else {
                "SOME CHECKS FAILED"
            }
        );
        all
    }
}

async fn watch_client(
    mut events: tether_tokio::Events<Discord>,
    timeline: Arc<Timeline>,
    seen: Arc<Seen>,
) {
    while let Some(event) = events.next().await {
        match &event {
            Event::Ready { resumed, .. } => {
                seen.ready.fetch_add(1, Ordering::Relaxed);
                if *resumed {
                    seen.resumed.fetch_add(1, Ordering::Relaxed);
                }
            }
            Event::Message { message, .. } => {
                if message.name.as_str() == "TICK" {
                    if let Ok(n) = message.data.as_str().parse::<u64>() {
                        if !lock(&seen.dispatches).insert(n) {
                            seen.duplicate_dispatches.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                continue;
            }
            Event::Returned { .. } => {
                seen.returned.fetch_add(1, Ordering::Relaxed);
            }
            Event::ProtocolError { error, .. } if error.to_string().contains("gap") => {
                seen.gaps.fetch_add(1, Ordering::Relaxed);
            }
            Event::Stopped { reason } => {
                *lock(&seen.stopped) = Some(reason.clone());
            }
            _ => {}
        }
        if let Some((tone, text)) = event_line(&event) {
            eprintln!("{}", timeline.line(tone, &text));
        }
    }
    seen.ended.store(true, Ordering::Relaxed);
}

/// Requests in flight when the socket drops end at once, each with one outcome, and so
/// does the gateway's invoke that was in flight: nothing hangs, nothing is answered twice.
async fn requests_in_flight(demo: &mut Demo, seed: u64) -> Result<(), String> {
    demo.phase("requests in flight at a disconnect (openclaw profile, as a node)");
    let seen = Arc::new(Seen::default());
    let listener = bind("127.0.0.1:0").await?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let proxy = Proxy::start(addr).await.map_err(|e| e.to_string())?;
    let (gateway, _) = start_gateway(
        listener,
        ServerProfile::OpenClaw,
        &proxy.url(),
        demo.timeline.clone(),
        seen,
    )
    .await?;
    let identity = DeviceIdentity::generate().map_err(|e| e.to_string())?;
    let node = identity.id().to_owned();
    let profile = OpenClaw::builder(Role::Node, identity)
        .token(Token::new(AGENT_TOKEN))
        .commands(["status"])
        .build()
        .map_err(|e| e.to_string())?;
    let (client, mut events) = tether_tokio::connect(proxy.url(), fast_config(seed + 1)?, profile)
        .map_err(|e| e.to_string())?;
    let timeline = demo.timeline.clone();
    // The node never answers invokes: the gateway's invoke stays in flight.
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if let Event::Call { .. } | Event::Transition(_) = &event {
                continue;
            }
            if let Some((tone, text)) = event_line(&event) {
                eprintln!("{}", timeline.line(tone, &format!("agent: {text}")));
            }
        }
    });
    let up = eventually(|| async { matches!(gateway.owner(&node).await, Ok(Some(_))) }).await;
    let mut requests = Vec::new();
    for i in 0..3 {
        let client = client.clone();
        requests.push(tokio::spawn(async move {
            client
                .request(
                    OpenClawRequest::new("slow", json!({"n": i})),
                    Duration::from_secs(20),
                )
                .await
        }));
    }
    let invoke = {
        let gateway = gateway.clone();
        let node = node.clone();
        let params = raw("{}".to_owned())?;
        tokio::spawn(async move {
            gateway
                .invoke(&node, "status", params, Duration::from_secs(20))
                .await
        })
    };
    // Both sides have written their requests; the gateway's application holds every answer.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cut = Instant::now();
    proxy.cut_all();
    let mut failed_visibly = 0;
    for request in requests {
        if let Ok(Ok(Ok(outcome))) = tokio::time::timeout(PHASE_LIMIT, request).await {
            if !matches!(outcome, Outcome::Response(_)) {
                failed_visibly += 1;
            }
        }
    }
    let invoked = matches!(
        tokio::time::timeout(PHASE_LIMIT, invoke).await,
        Ok(Ok(Ok((_, InvokeOutcome::Disconnected))))
    );
    let took = cut.elapsed();
    eprintln!(
        "{}",
        demo.timeline.line(
            Tone::Trouble,
            &format!(
                "3 requests and 1 invoke in flight ended {} ms after the cut",
                took.as_millis()
            )
        )
    );
    demo.check(
        "requests in flight at a disconnect each end once, at once, with a failure (F14)",
        up && failed_visibly == 3,
    );
    demo.check(
        "the gateway's invoke in flight ends as disconnected (S3)",
        invoked,
    );
    let _ = client.shutdown().await;
    let _ = gateway.shutdown().await;
    Ok(())
}
