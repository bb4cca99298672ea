//! `tether gateway` as a process, against hostile and unlucky conditions: a stall of the
//! whole process under 2,000 sessions (h02, on real sockets), no token in any of its output
//! even with logs at trace (h08), answers when it runs out of file descriptors, and the
//! plain echo profile.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tether_tests::raw::RawWs;
use tokio_tungstenite::tungstenite::Message;

struct Gateway {
    child: Child,
    url: String,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    /// Starts `tether` with `args` (through `sh -c` when `shell` prefixes it), reads every
    /// line it prints, and waits for its address.
    fn start(shell: Option<&str>, args: &[&str]) -> Self {
        let bin = env!("CARGO_BIN_EXE_tether");
        let mut command = match shell {
            Some(prefix) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("{prefix} exec \"$0\" \"$@\""))
                    .arg(bin)
                    .args(args);
                c
            }
            None => {
                let mut c = Command::new(bin);
                c.args(args);
                c
            }
        };
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = stdout.clone();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line.starts_with("listening ") {
                    let _ = tx.send(line.clone());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let errors = stderr.clone();
        let mut err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                errors
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(15))
            .expect("the gateway says where it listens");
        let url = line.trim_start_matches("listening ").to_owned();
        Self {
            child,
            url,
            stdout,
            stderr,
        }
    }

    fn addr(&self) -> String {
        self.url
            .trim_start_matches("ws://")
            .trim_end_matches('/')
            .to_owned()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn output(&self) -> String {
        let out = self.stdout.lock().unwrap().join("\n");
        format!("{out}\n{}", self.stderr.lock().unwrap())
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn text(ws: &mut Ws) -> Option<String> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => return Some(t.to_string()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// What the fleet of h02 went through.
#[derive(Default)]
struct Tally {
    /// Sessions that identified.
    identified: AtomicUsize,
    /// Sessions whose socket ended since.
    ended: AtomicUsize,
    /// Sessions that never got as far as identifying, and why.
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn failed(&self, why: String) {
        self.failures.lock().unwrap().push(why);
    }
}

/// A discord session that beats every interval from `phase` on, until its socket ends.
async fn session(url: String, token: String, phase: Duration, tally: Arc<Tally>) {
    let mut ws = match tokio_tungstenite::connect_async(&url).await {
        Ok((ws, _)) => ws,
        Err(e) => return tally.failed(e.to_string()),
    };
    let Some(hello) = text(&mut ws).await else {
        return tally.failed("closed before hello".to_owned());
    };
    let hello: serde_json::Value = serde_json::from_str(&hello).unwrap();
    let interval = Duration::from_millis(hello["d"]["heartbeat_interval"].as_u64().unwrap());
    let identify = serde_json::json!({"op": 2, "d": {"token": token, "intents": 0}});
    if ws.send(Message::text(identify.to_string())).await.is_err() {
        return tally.failed("identify not sent".to_owned());
    }
    tally.identified.fetch_add(1, Ordering::SeqCst);
    let mut next = tokio::time::Instant::now() + phase;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next) => {
                next += interval;
                if ws.send(Message::text(r#"{"op":1,"d":null}"#)).await.is_err() {
                    break;
                }
            }
            read = text(&mut ws) => if read.is_none() { break },
        }
    }
    tally.ended.fetch_add(1, Ordering::SeqCst);
}

/// h02 on real sockets: 2,000 sessions beating every 2 s (a liveness bound of 3 s), and the
/// gateway process stopped for 2 s: the heartbeats sent meanwhile wait in its sockets, and
/// it must read them rather than judge the sessions that sent them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h02_a_gateway_stopped_for_less_than_its_bound_drops_no_session() {
    let gateway = Gateway::start(
        None,
        &[
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--heartbeat-ms",
            "2000",
            "--max-connections",
            "5000",
        ],
    );
    let sessions = 2_000u32;
    let tally = Arc::new(Tally::default());
    // Clients come in a ramp of 100 per 100 ms, as a fleet reconnecting would, each with
    // its own phase.
    for i in 0..sessions {
        if i % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let phase = Duration::from_millis(u64::from(i) * 2000 / u64::from(sessions));
        tokio::spawn(session(
            gateway.url.clone(),
            format!("token-{i}"),
            phase,
            tally.clone(),
        ));
    }
    let all = tokio::time::timeout(Duration::from_secs(60), async {
        while tally.identified.load(Ordering::SeqCst) < sessions as usize {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let report = |tally: &Tally| {
        format!(
            "{} identified, {} ended; failures: {:?}; the gateway saw {} connect, {} unresponsive",
            tally.identified.load(Ordering::SeqCst),
            tally.ended.load(Ordering::SeqCst),
            tally.failures.lock().unwrap(),
            gateway.output().matches(": connected").count(),
            gateway.output().matches("closing (Unresponsive)").count(),
        )
    };
    assert!(all.is_ok(), "{}", report(&tally));
    // Every session beats once at least before the stall.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(tally.ended.load(Ordering::SeqCst), 0, "{}", report(&tally));
    gateway.signal("STOP");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    gateway.signal("CONT");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let dropped = gateway.output().matches("closing (Unresponsive)").count();
    assert_eq!(
        dropped,
        0,
        "healthy sessions were dropped: {}",
        report(&tally)
    );
    assert_eq!(tally.ended.load(Ordering::SeqCst), 0, "{}", report(&tally));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h08_no_token_in_any_output_of_the_command_even_at_trace() {
    let gateway = Gateway::start(
        None,
        &[
            "--log",
            "trace",
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--heartbeat-ms",
            "300",
        ],
    );
    let secret = "SECRET-c0ffee-4f1e2d3c4b5a69788796a5b4c3d2e1f0";
    // A good session: identify, messages, heartbeats, a resume attempt on a second socket.
    let (mut ws, _) = tokio_tungstenite::connect_async(&gateway.url)
        .await
        .unwrap();
    text(&mut ws).await.unwrap();
    let identify = serde_json::json!({"op": 2, "d": {"token": secret, "intents": 0}});
    ws.send(Message::text(identify.to_string())).await.unwrap();
    let ready = text(&mut ws).await.unwrap();
    assert!(ready.contains("READY"), "{ready}");
    ws.send(Message::text(r#"{"op":3,"d":{"status":"online"}}"#))
        .await
        .unwrap();
    ws.send(Message::text(r#"{"op":1,"d":1}"#)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Bad ones: the token where an object was due, as the opcode, in a resume of nothing,
    // and too long.
    let bad = [
        serde_json::json!({"op": 2, "d": secret}),
        serde_json::json!({"op": secret}),
        serde_json::json!({"op": 6, "d": {"token": secret, "session_id": "nope", "seq": 1}}),
        serde_json::json!({"op": 2, "d": {"token": format!("{secret}{}", "x".repeat(3000))}}),
    ];
    for frame in bad {
        let (mut bad, _) = tokio_tungstenite::connect_async(&gateway.url)
            .await
            .unwrap();
        text(&mut bad).await.unwrap();
        bad.send(Message::text(frame.to_string())).await.unwrap();
        while text(&mut bad).await.is_some() {}
    }
    let _ = ws.close(None).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    gateway.signal("INT");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let output = gateway.output();
    assert!(output.contains("peer-"), "peers are named: {output}");
    assert!(
        output.contains("DEBUG") || output.contains("TRACE"),
        "the logs were on: {output}"
    );
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    assert!(!output.contains(secret), "the token leaked: {output}");
    assert!(!output.contains(&hex), "the token leaked in hex: {output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_new_connections_are_answered_not_left_waiting() {
    let gateway = Gateway::start(
        Some("ulimit -n 48;"),
        &["gateway", "--listen", "127.0.0.1:0"],
    );
    let addr = gateway.addr();
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let mut held = Vec::new();
    let (mut upgraded, mut answered_503, mut closed) = (0, 0, 0);
    for _ in 0..80 {
        let answer = tokio::time::timeout(Duration::from_secs(3), RawWs::try_connect(addr))
            .await
            .expect("every connection is answered, none left waiting");
        match answer {
            Ok((ws, status)) if status.starts_with("HTTP/1.1 101") => {
                upgraded += 1;
                held.push(ws);
            }
            Ok((_, status)) if status.starts_with("HTTP/1.1 503") => answered_503 += 1,
            Ok((_, status)) if status.is_empty() => closed += 1,
            Err(_) => closed += 1,
            Ok((_, status)) => panic!("{status:?}"),
        }
    }
    assert!(upgraded > 10, "{upgraded} upgraded");
    assert!(
        answered_503 + closed > 0,
        "the descriptor limit was reached: {upgraded} upgraded"
    );
    assert!(
        answered_503 > 0,
        "{answered_503} answered 503, {closed} closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plain_profile_echoes_text_and_binary() {
    let gateway = Gateway::start(
        None,
        &["gateway", "--listen", "127.0.0.1:0", "--profile", "plain"],
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(&gateway.url)
        .await
        .unwrap();
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(text(&mut ws).await.as_deref(), Some("hello"));
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    let echoed = loop {
        match ws.next().await.unwrap().unwrap() {
            Message::Binary(b) => break b,
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(&echoed[..], &[1, 2, 3]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let output = gateway.output();
    assert!(output.contains("conn#1 conn#1: connected"), "{output}");
}
