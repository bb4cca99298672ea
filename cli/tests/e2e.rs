//! The `tether` binary end to end: the demo's exit code and summary, `tether connect
//! --json` against `tether gateway` through a gateway restart, bad arguments, and an
//! unreachable URL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

fn tether() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tether"))
}

/// Lines of a child's stdout, read on a thread so waits can time out.
struct Lines(mpsc::Receiver<String>);

impl Lines {
    fn of(stdout: ChildStdout) -> Self {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self(rx)
    }

    /// The next line `f` accepts, within 15 s; the lines passed over are returned too.
    fn until(&self, what: &str, f: impl Fn(&str) -> bool) -> (String, Vec<String>) {
        let mut passed = Vec::new();
        loop {
            let line = self
                .0
                .recv_timeout(Duration::from_secs(15))
                .unwrap_or_else(|_| panic!("no {what} after {passed:#?}"));
            if f(&line) {
                return (line, passed);
            }
            passed.push(line);
        }
    }
}

fn event(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?} is not JSON: {e}"))
}

fn is(name: &'static str) -> impl Fn(&str) -> bool {
    move |line| serde_json::from_str::<Value>(line).is_ok_and(|v| v["event"] == name)
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn gateway(listen: &str) -> (Killed, Lines, String) {
    let mut child = tether()
        .args(["gateway", "--listen", listen, "--heartbeat-ms", "300"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = Lines::of(child.stdout.take().unwrap());
    let (line, _) = lines.until("listening line", |l| l.starts_with("listening "));
    let url = line.trim_start_matches("listening ").to_owned();
    (Killed(child), lines, url)
}

#[test]
fn the_demo_passes_and_says_so() {
    let out = tether().arg("demo").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("every invariant held"), "{stdout}");
    let lost = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("lost"))
        .map(|v| v.trim().to_owned());
    assert_eq!(lost.as_deref(), Some("0"), "{stdout}");
    for row in [
        "connections",
        "resumes",
        "fresh identifies",
        "zombies detected",
        "stale inputs dropped",
    ] {
        assert!(stdout.contains(row), "{row} missing from {stdout}");
    }
    assert!(!stdout.contains("FAIL"), "{stdout}");
    // The timeline went to stderr: every phase, plain when piped.
    for phase in [
        "server restart",
        "network drop",
        "stalled hello",
        "zombie",
        "late close",
        "invalid session",
        "requests in flight",
    ] {
        assert!(stderr.contains(phase), "{phase} missing from the timeline");
    }
    assert!(!stderr.contains('\x1b'), "no colour when piped");
}

#[test]
fn connect_json_survives_a_gateway_restart() {
    let (gw, _gw_lines, url) = gateway("127.0.0.1:0");
    let addr = url
        .trim_start_matches("ws://")
        .trim_end_matches('/')
        .to_owned();
    let mut client = tether()
        .args([
            "connect",
            &url,
            "--profile",
            "discord",
            "--token-env",
            "TETHER_E2E_TOKEN",
            "--json",
        ])
        .args(["--backoff-initial-ms", "50", "--backoff-max-ms", "200"])
        .env("TETHER_E2E_TOKEN", "e2e-bot")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = Lines::of(client.stdout.take().unwrap());
    let mut stdin = client.stdin.take().unwrap();
    let (connecting, _) = lines.until("connecting", is("connecting"));
    assert_eq!(event(&connecting)["conn"], 1);
    assert_eq!(event(&connecting)["attempt"], 1);
    let (ready, _) = lines.until("ready", is("ready"));
    assert_eq!(event(&ready)["resumed"], false);
    writeln!(stdin, "{{\"op\":3,\"d\":{{\"hello\":1}}}}").unwrap();
    let (echo, _) = lines.until("the echo", |l| {
        is("dispatch")(l) && event(l)["name"] == "ECHO"
    });
    let echo = event(&echo);
    assert_eq!(echo["data"]["hello"], 1);
    assert!(echo["seq"].as_u64().unwrap() >= 2);
    // The gateway dies and comes back on the same port, with no sessions.
    drop(gw);
    let (disconnected, _) = lines.until("disconnected", is("disconnected"));
    assert_eq!(event(&disconnected)["conn"], 1);
    let (reconnecting, _) = lines.until("reconnecting", is("reconnecting"));
    assert!(event(&reconnecting)["after_ms"].is_u64());
    assert_eq!(event(&reconnecting)["resume"], true);
    let (_gw2, _lines2, _) = gateway(&addr);
    let (ready, passed) = lines.until("ready again", is("ready"));
    let ready = event(&ready);
    assert_eq!(
        ready["resumed"], false,
        "a new gateway has no session to resume"
    );
    assert!(ready["conn"].as_u64().unwrap() > 1);
    // The resume is refused on the new socket, and the fresh identify goes out on it.
    let refused = passed
        .iter()
        .find(|l| is("invalid_session")(l))
        .unwrap_or_else(|| panic!("{passed:#?}"));
    assert_eq!(event(refused)["conn"], ready["conn"]);
    assert_eq!(event(refused)["resumable"], false);
    // End of input: a graceful stop.
    drop(stdin);
    let (stopped, _) = lines.until("stopped", is("stopped"));
    assert_eq!(event(&stopped)["reason"], "shutdown");
    assert!(client.wait().unwrap().success());
}

#[test]
fn bad_arguments_exit_2_with_a_message() {
    for args in [
        vec!["connect"],
        vec!["connect", "not a url"],
        vec![
            "connect",
            "ws://127.0.0.1:1/",
            "--profile",
            "carrier-pigeon",
        ],
        vec!["connect", "ws://127.0.0.1:1/", "--header", "no colon here"],
        vec!["connect", "ws://127.0.0.1:1/", "--profile", "discord"],
        vec![
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--invalid-session-rate",
            "2",
        ],
        vec!["gateway", "--listen", "127.0.0.1:0", "--heartbeat-ms", "0"],
        vec!["frobnicate"],
    ] {
        let out = tether().args(&args).stdin(Stdio::null()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.trim().is_empty(), "{args:?}: no message");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn k10_a_bad_header_is_refused_without_echoing_its_value() {
    for header in [
        "Authorization Bearer k10-sekrit-no-colon",
        "Authorization: Bearer k10-sekrit\u{7f}",
    ] {
        let out = tether()
            .args(["connect", "ws://127.0.0.1:1/", "--header", header])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--header"), "{stderr}");
        assert!(!stderr.contains("k10-sekrit"), "the value leaked: {stderr}");
    }
}

#[test]
fn an_unreachable_url_shows_the_reconnect_attempts_and_their_delays() {
    let mut client = tether()
        .args([
            "connect",
            "ws://127.0.0.1:1/",
            "--json",
            "--backoff-initial-ms",
            "20",
            "--backoff-max-ms",
            "100",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Lines::of(client.stdout.take().unwrap());
    let mut attempts = Vec::new();
    while attempts.len() < 3 {
        let (line, _) = lines.until("reconnecting", is("reconnecting"));
        attempts.push(event(&line));
    }
    let numbers: Vec<u64> = attempts
        .iter()
        .map(|a| a["attempt"].as_u64().unwrap())
        .collect();
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{attempts:?}");
    assert!(
        attempts
            .iter()
            .all(|a| a["after_ms"].as_u64().unwrap() <= 100)
    );
    drop(client.stdin.take());
    let (stopped, _) = lines.until("stopped", is("stopped"));
    assert_eq!(event(&stopped)["reason"], "shutdown");
    let out = client.wait_with_output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

/// `tether connect URL` as a discord client with `token`.
fn discord_client(url: &str, token: &str) -> Command {
    let mut command = tether();
    command
        .args([
            "connect",
            url,
            "--profile",
            "discord",
            "--token-env",
            "K10_TOKEN",
        ])
        .env("K10_TOKEN", token);
    command
}

/// Waits up to `limit` for `child` to exit; its status, or `None` if it still runs.
fn exits_within(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let until = std::time::Instant::now() + limit;
    while std::time::Instant::now() < until {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn k10_ctrl_c_shuts_tether_connect_down_gracefully() {
    let (_gw, _gw_lines, url) = gateway("127.0.0.1:0");
    let mut client = discord_client(&url, "k10-bot")
        .arg("--json")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = Lines::of(client.stdout.take().unwrap());
    // Input stays open: only the signal ends the session.
    let _stdin = client.stdin.take().unwrap();
    lines.until("ready", is("ready"));
    let status = Command::new("kill")
        .args(["-INT", &client.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    lines.until("stopped", is("stopped"));
    let exit = exits_within(&mut client, Duration::from_secs(5));
    let _ = client.kill();
    assert_eq!(
        exit.map(|s| s.code()),
        Some(Some(0)),
        "a graceful exit, not a crash"
    );
}

#[test]
fn k10_a_fatal_close_ends_tether_connect_non_zero_with_the_reason() {
    // A gateway that refuses the token: 4004 after identify.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    runtime.spawn(async move {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        use tokio_tungstenite::tungstenite::protocol::CloseFrame;
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                continue;
            };
            let hello = r#"{"op":10,"d":{"heartbeat_interval":45000}}"#;
            let _ = ws.send(Message::text(hello)).await;
            let _ = ws.next().await;
            let close = CloseFrame {
                code: 4004.into(),
                reason: "authentication failed".into(),
            };
            let _ = ws.send(Message::Close(Some(close))).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut client = discord_client(&url, "k10-secret-token")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _stdin = client.stdin.take().unwrap();
    let mut stderr = client.stderr.take().unwrap();
    let exit = exits_within(&mut client, Duration::from_secs(10));
    let _ = client.kill();
    let mut said = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut said);
    assert_eq!(exit.map(|s| s.code()), Some(Some(1)), "{said}");
    assert!(said.contains("4004"), "the reason is said: {said}");
    assert!(!said.contains("k10-secret-token"), "{said}");
}
