//! o01 to o06: tether's `openclaw` profile against the real OpenClaw gateway (npm package
//! `openclaw`, pinned in `tests/interop/openclaw/install.sh`), each test with a gateway
//! process of its own on 127.0.0.1. Run by `.ci/run`; alone with
//! `cargo test -p tether-cli --features interop --test openclaw_interop`.
//! A gateway that cannot be installed or started fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tether_core::protocol::openclaw::{
    DeviceIdentity, InvokeAnswer, OpenClaw, OpenClawMessage, OpenClawRequest, Role,
};
use tether_core::{AnswerError, CallId, Config, Event, Outcome, Reason, Token, Utf8Bytes};
use tether_tests::interop::{ECHO, READY_WITHIN, RealGateway, TOKEN, assert_no_secrets, json_in};
use tether_tests::proxy::FaultProxy;
use tether_tests::scenarios::Log;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

type E = Event<OpenClawMessage, Utf8Bytes>;
type Session = (
    tether_tokio::Handle<OpenClaw>,
    Log<OpenClawMessage, Utf8Bytes>,
);

/// The tick interval the real gateway announces (a constant of its, 30 s).
const TICK: Duration = Duration::from_secs(30);

fn config() -> Config {
    Config::builder()
        .connect_timeout(Duration::from_secs(5))
        .backoff_initial(Duration::from_millis(100))
        .backoff_max(Duration::from_millis(500))
        .build()
        .unwrap()
}

fn connect(url: &str, profile: OpenClaw) -> Session {
    let (handle, events) = tether_tokio::connect(url, config(), profile).unwrap();
    (handle, Log::start(events.boxed()))
}

fn operator() -> OpenClaw {
    OpenClaw::builder(Role::Operator, DeviceIdentity::generate().unwrap())
        .token(Token::new(TOKEN))
        .build()
        .unwrap()
}

fn node(identity: DeviceIdentity) -> OpenClaw {
    OpenClaw::builder(Role::Node, identity)
        .token(Token::new(TOKEN))
        .commands([ECHO])
        .build()
        .unwrap()
}

fn is_ready(e: &E) -> bool {
    matches!(e, Event::Ready { .. })
}

fn is_tick(e: &E) -> bool {
    matches!(e, Event::Message { message: OpenClawMessage::Event(ev), .. } if ev.name.as_str() == "tick")
}

fn is_call(e: &E) -> bool {
    matches!(e, Event::Call { .. })
}

/// Everything the session reported, as the application would log it.
fn transcript(log: &Log<OpenClawMessage, Utf8Bytes>) -> String {
    log.with(|events| {
        events
            .iter()
            .map(|(_, e)| format!("{e:?}\n"))
            .collect::<String>()
    })
}

fn protocol_errors(log: &Log<OpenClawMessage, Utf8Bytes>) -> Vec<String> {
    log.with(|events| {
        events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::ProtocolError { error, .. } => Some(error.to_string()),
                _ => None,
            })
            .collect()
    })
}

/// The `nth` call the session surfaced.
fn call(log: &Log<OpenClawMessage, Utf8Bytes>, nth: usize) -> (CallId, Value) {
    log.with(|events| {
        events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Call {
                    id,
                    message: OpenClawMessage::Invoke(invoke),
                } => Some((
                    *id,
                    serde_json::from_str(invoke.params_json.as_deref().unwrap_or("null")).unwrap(),
                )),
                _ => None,
            })
            .nth(nth)
            .unwrap()
    })
}

fn hellos(log: &Log<OpenClawMessage, Utf8Bytes>) -> Vec<Option<String>> {
    log.with(|events| {
        events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Message {
                    message: OpenClawMessage::Hello(hello),
                    ..
                } => Some(hello.device_token.as_ref().map(|t| t.expose().to_owned())),
                _ => None,
            })
            .collect()
    })
}

fn answer_ok(value: Value) -> InvokeAnswer {
    InvokeAnswer::Ok(Some(RawValue::from_string(value.to_string()).unwrap()))
}

async fn request(
    handle: &tether_tokio::Handle<OpenClaw>,
    method: &'static str,
) -> Outcome<Utf8Bytes> {
    handle
        .request(
            OpenClawRequest::new(method, json!({})),
            Duration::from_secs(30),
        )
        .await
        .unwrap()
}

/// o01: an operator gets hello-ok, has `health` and `status` answered, and sees at least
/// three ticks with no sequence gap and no protocol error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o01_operator_health_status_and_ticks() {
    let gateway = RealGateway::start("o01").await;
    let (client, log) = connect(&gateway.url(), operator());
    assert!(log.wait(Duration::from_secs(30), is_ready).await.is_some());
    let hello = log.with(|events| {
        events.iter().find_map(|(_, e)| match e {
            Event::Message {
                message: OpenClawMessage::Hello(hello),
                ..
            } => Some(hello.clone()),
            _ => None,
        })
    });
    let hello = hello.expect("hello-ok reached the application");
    assert_eq!(hello.protocol, 4);
    assert_eq!(hello.policy.tick_interval, TICK);
    assert!(hello.methods.iter().any(|m| m == "health"));
    for method in ["health", "status"] {
        let outcome = request(&client, method).await;
        assert!(
            matches!(outcome, Outcome::Response(_)),
            "{method}: {outcome:?}"
        );
    }
    assert!(
        log.wait_nth(2, 4 * TICK, is_tick).await.is_some(),
        "three ticks in four intervals"
    );
    let seqs: Vec<u64> = log.with(|events| {
        events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Message {
                    message: OpenClawMessage::Event(ev),
                    ..
                } => ev.seq,
                _ => None,
            })
            .collect()
    });
    assert!(seqs.len() >= 3, "{seqs:?}");
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "one sequence, no gap: {seqs:?}"
    );
    assert_eq!(protocol_errors(&log), Vec::<String>::new());
    assert_eq!(client.stats().await.unwrap().protocol_errors, 0);
    client.shutdown().await;
    assert_no_secrets("o01", &transcript(&log), &[("token", TOKEN)]);
}

/// o02: the gateway restarts (SIGTERM, then started again): the client hears `shutdown`,
/// then close 1012, reconnects through the refused port and the `UNAVAILABLE` of its
/// startup (retried at `retryAfterMs`), and is ready again; requests made meanwhile are
/// answered after it, none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o02_gateway_restart() {
    let mut gateway = RealGateway::start("o02").await;
    let (client, log) = connect(&gateway.url(), operator());
    assert!(log.wait(Duration::from_secs(30), is_ready).await.is_some());
    assert!(matches!(
        request(&client, "health").await,
        Outcome::Response(_)
    ));

    gateway.stop().await;
    let shutdown = log
        .wait(Duration::from_secs(10), |e| {
            matches!(e, Event::Message { message: OpenClawMessage::Event(ev), .. } if ev.name.as_str() == "shutdown")
        })
        .await;
    assert!(shutdown.is_some(), "the shutdown event arrived");
    let closed = log
        .wait(Duration::from_secs(10), |e| {
            matches!(e, Event::Disconnected { reason: Reason::Closed(cause), .. } if cause.code() == Some(1012))
        })
        .await;
    assert!(closed.is_some(), "closed with 1012: {}", transcript(&log));

    // Asked while the gateway is away: they wait for the next connection.
    let asked: Vec<_> = (0..3)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { request(&client, "health").await })
        })
        .collect();
    gateway.start_again();
    let ready_again = log.wait_nth(1, READY_WITHIN, is_ready).await;
    assert!(ready_again.is_some(), "ready again: {}", gateway.log_tail());
    // Each ends once: answered, or `NotSent` when an attempt ended before it could be
    // written (the startup's refusals end attempts); those are safe to ask again, and are.
    for task in asked {
        let outcome = task.await.unwrap();
        let outcome = match outcome {
            Outcome::NotSent => request(&client, "health").await,
            other => other,
        };
        assert!(matches!(outcome, Outcome::Response(_)), "{outcome:?}");
    }
    // The startup's UNAVAILABLE was met and its retryAfterMs (500 ms) respected.
    let unavailable: Vec<Duration> = log.with(|events| {
        events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Reconnecting {
                    delay,
                    reason: Reason::Refused(error),
                    ..
                } if error.code.starts_with("UNAVAILABLE") => Some(*delay),
                _ => None,
            })
            .collect()
    });
    assert!(
        !unavailable.is_empty(),
        "UNAVAILABLE during startup: {}",
        transcript(&log)
    );
    assert!(
        unavailable.iter().all(|d| *d >= Duration::from_millis(500)),
        "{unavailable:?}"
    );
    let stats = client.stats().await.unwrap();
    assert_eq!(stats.protocol_errors, 0);
    client.shutdown().await;
    assert_no_secrets("o02", &transcript(&log), &[("token", TOKEN)]);
}

/// o03: the gateway frozen (SIGSTOP) past twice its tick interval: the dead peer is found
/// within 2 x tickIntervalMs + 10 %; once it runs again (SIGCONT) the client is ready again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o03_gateway_frozen() {
    let gateway = RealGateway::start("o03").await;
    let (client, log) = connect(&gateway.url(), operator());
    assert!(log.wait(Duration::from_secs(30), is_ready).await.is_some());
    let tick = log.wait(2 * TICK, is_tick).await.expect("a tick");
    gateway.freeze();
    let frozen_at = Instant::now();
    let found = log
        .wait(3 * TICK, |e| {
            matches!(
                e,
                Event::Disconnected {
                    reason: Reason::Silent,
                    ..
                }
            )
        })
        .await;
    gateway.thaw();
    let found = found.expect("the frozen gateway is found dead");
    let bound = 2 * TICK + 2 * TICK / 10;
    eprintln!(
        "o03: dead peer found {:.1} s after the last tick ({:.1} s after the freeze; bound {:.0} s)",
        (found - tick).as_secs_f64(),
        (found - frozen_at).as_secs_f64(),
        bound.as_secs_f64()
    );
    assert!(found - tick <= bound, "found after {:?}", found - tick);
    assert!(
        found - frozen_at >= 2 * TICK - Duration::from_secs(2),
        "not before two intervals of silence: {:?}",
        found - frozen_at
    );
    assert!(
        log.wait_nth(1, Duration::from_secs(90), is_ready)
            .await
            .is_some(),
        "ready again after SIGCONT: {}",
        transcript(&log)
    );
    assert!(matches!(
        request(&client, "health").await,
        Outcome::Response(_)
    ));
    client.shutdown().await;
}

/// Invokes `tether.echo` on `node` through the gateway's own command line.
fn invoke(
    gateway: &RealGateway,
    node: &str,
    params: &Value,
) -> tokio::task::JoinHandle<std::process::Output> {
    gateway.cli_task(&[
        "nodes",
        "invoke",
        "--node",
        node,
        "--command",
        ECHO,
        "--params",
        &params.to_string(),
        "--json",
    ])
}

fn printed(output: &std::process::Output) -> Value {
    let text = String::from_utf8_lossy(&output.stdout);
    json_in(&text).unwrap_or_else(|| {
        panic!(
            "no JSON in its output: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// o04: a node's first connect pairs on loopback; its command is approved with
/// `openclaw nodes approve`; `openclaw nodes invoke` returns what the application answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o04_node_invoke_round_trip() {
    let gateway = RealGateway::start("o04").await;
    let identity = DeviceIdentity::generate().unwrap();
    let id = identity.id().to_owned();
    let (client, log) = connect(&gateway.url(), node(identity.clone()));
    assert!(log.wait(Duration::from_secs(30), is_ready).await.is_some());
    assert!(
        hellos(&log)[0].is_some(),
        "the paired device got a device token"
    );
    gateway.approve_node(&id).await;
    let invoked = invoke(&gateway, &id, &json!({"x": 1}));
    assert!(log.wait(Duration::from_secs(30), is_call).await.is_some());
    let (call, params) = call(&log, 0);
    assert_eq!(params, json!({"x": 1}));
    client
        .answer(call, answer_ok(json!({"echo": params, "by": "tether"})))
        .await
        .unwrap();
    let output = invoked.await.unwrap();
    let result = printed(&output);
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["payload"], json!({"echo": {"x": 1}, "by": "tether"}));
    assert_eq!(client.stats().await.unwrap().calls_answered, 1);
    client.shutdown().await;
    let device_token = hellos(&log)[0].clone().unwrap();
    let private_key = identity.export();
    let secrets = [
        ("token", TOKEN),
        ("device token", device_token.as_str()),
        ("private key", private_key.expose()),
    ];
    assert_no_secrets("o04 session", &transcript(&log), &secrets);
    assert_no_secrets(
        "o04 invoke",
        &String::from_utf8_lossy(&output.stdout),
        &secrets,
    );
}

/// o05: the node's socket is cut (through a fault proxy) while an invoke is in flight: the
/// gateway's invoke fails as disconnected; the node comes back with the same identity and
/// device token, is the same node, needs no new approval, and answers the next invoke. The
/// answer to the old connection's invoke is refused and never written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o05_node_reconnect_during_an_invoke() {
    let gateway = RealGateway::start("o05").await;
    let addr = format!("127.0.0.1:{}", gateway.port()).parse().unwrap();
    let proxy = FaultProxy::start(addr).await;
    let identity = DeviceIdentity::generate().unwrap();
    let id = identity.id().to_owned();
    let (client, log) = connect(&proxy.url(), node(identity.clone()));
    assert!(log.wait(Duration::from_secs(30), is_ready).await.is_some());
    gateway.approve_node(&id).await;

    // The first invoke is held by the application; the socket is cut under it.
    let held = invoke(&gateway, &id, &json!({"n": 1}));
    assert!(log.wait(Duration::from_secs(30), is_call).await.is_some());
    let (stale, _) = call(&log, 0);
    proxy.reset_all();
    let output = held.await.unwrap();
    let failed = printed(&output);
    assert_eq!(failed["ok"], false, "{failed}");
    assert!(
        failed.to_string().contains("DISCONNECTED") || failed.to_string().contains("disconnected"),
        "failed as disconnected: {failed}"
    );
    assert!(
        log.wait_nth(1, Duration::from_secs(30), is_ready)
            .await
            .is_some(),
        "back: {}",
        transcript(&log)
    );
    // The old invoke's answer: refused, written nowhere.
    assert_eq!(
        client.answer(stale, answer_ok(json!("late"))).await,
        Err(AnswerError::Stale)
    );
    let tokens = hellos(&log);
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[0], tokens[1], "the same device token");
    // The same node, still approved: no pairing request waits, and it answers.
    let pending = printed(&gateway.cli(&["nodes", "pending", "--json"]).await);
    assert!(
        !pending.to_string().contains(&id),
        "no new approval asked: {pending}"
    );
    let next = invoke(&gateway, &id, &json!({"n": 2}));
    assert!(
        log.wait_nth(1, Duration::from_secs(30), is_call)
            .await
            .is_some()
    );
    let (call, params) = call(&log, 1);
    assert_eq!(params, json!({"n": 2}));
    assert_ne!(call.conn(), stale.conn());
    client
        .answer(call, answer_ok(json!({"n": 2, "again": true})))
        .await
        .unwrap();
    let result = printed(&next.await.unwrap());
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["payload"], json!({"n": 2, "again": true}));
    let listed = printed(&gateway.cli(&["nodes", "list", "--json"]).await);
    let paired = listed["paired"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        paired.iter().filter(|n| n["nodeId"] == id.as_str()).count(),
        1,
        "one node by that id: {listed}"
    );
    client.shutdown().await;
    let device_token = tokens[0].clone().unwrap();
    let private_key = identity.export();
    assert_no_secrets(
        "o05",
        &transcript(&log),
        &[
            ("token", TOKEN),
            ("device token", device_token.as_str()),
            ("private key", private_key.expose()),
        ],
    );
}

/// Reads JSON lines until one whose `event` is `event` (within a minute), keeping every
/// line read in `seen`.
async fn read_until(
    lines: &mut tokio::io::Lines<BufReader<impl tokio::io::AsyncRead + Unpin>>,
    event: &str,
    seen: &mut String,
) -> Value {
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            seen.push_str(&line);
            seen.push('\n');
            let value: Value = serde_json::from_str(&line).unwrap_or_default();
            if value["event"] == event {
                return Some(value);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(value)) => value,
        _ => panic!("no {event} line: {seen}"),
    }
}

/// o06: the `tether` command as a node (its device file created on first use) and as an
/// operator, with debug logs on, through a whole invoke round trip: none of the shared
/// token, the private key or the device token appears in anything it printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o06_no_secret_in_any_output() {
    let gateway = RealGateway::start("o06").await;
    let device = gateway.dir().join("node-device.json");
    let tether = env!("CARGO_BIN_EXE_tether");
    let mut node = tokio::process::Command::new(tether)
        .args([
            "--log",
            "debug",
            "connect",
            &gateway.url(),
            "--profile",
            "openclaw",
        ])
        .args([
            "--role",
            "node",
            "--command",
            ECHO,
            "--token-env",
            "OPENCLAW_TOKEN",
        ])
        .arg("--device")
        .arg(&device)
        .env("OPENCLAW_TOKEN", TOKEN)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = node.stdin.take().unwrap();
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut node_err = node.stderr.take().unwrap();
    let mut seen = String::new();
    // Its device file appears on first use; the node then connects and is approved.
    let deadline = Instant::now() + Duration::from_secs(30);
    let device_id = loop {
        if let Some(file) = std::fs::read_to_string(&device)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        {
            break file["deviceId"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "no device file written");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    gateway.approve_node(&device_id).await;
    // The operator, also the tether command, invokes the node through the gateway.
    let mut operator = tokio::process::Command::new(tether)
        .args([
            "--log",
            "debug",
            "connect",
            &gateway.url(),
            "--profile",
            "openclaw",
        ])
        .args(["--token-env", "OPENCLAW_TOKEN", "--json"])
        .env("OPENCLAW_TOKEN", TOKEN)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut op_in = operator.stdin.take().unwrap();
    let invoke = json!({"method": "node.invoke", "params": {
        "nodeId": device_id, "command": ECHO, "params": {"x": 6}, "idempotencyKey": "o06-1"}});
    op_in
        .write_all(format!("{invoke}\n").as_bytes())
        .await
        .unwrap();
    // The node prints the invoke as a JSON line; a script answers it on stdin.
    let request = read_until(&mut lines, "invoke", &mut seen).await;
    assert_eq!(request["params"], json!({"x": 6}));
    let answer = json!({"id": request["id"], "ok": true, "payload": {"six": 6}});
    stdin
        .write_all(format!("{answer}\n").as_bytes())
        .await
        .unwrap();
    // The operator prints the response; then both leave gracefully at end of input.
    let mut op_lines = BufReader::new(operator.stdout.take().unwrap()).lines();
    let mut op_seen = String::new();
    let response = read_until(&mut op_lines, "response", &mut op_seen).await;
    assert_eq!(response["ok"], true, "{response}");
    assert_eq!(
        response["payload"]["payload"],
        json!({"six": 6}),
        "{response}"
    );
    drop(op_in);
    drop(stdin);
    let op_out = tokio::time::timeout(Duration::from_secs(20), operator.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let node_status = tokio::time::timeout(Duration::from_secs(20), node.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(node_status.success() && op_out.status.success());
    while let Some(line) = lines.next_line().await.unwrap() {
        seen.push_str(&line);
        seen.push('\n');
    }
    let mut node_stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut node_err, &mut node_stderr)
        .await
        .unwrap();
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&device).unwrap()).unwrap();
    let private_key = file["privateKey"].as_str().unwrap().to_owned();
    let device_token = file["deviceToken"]
        .as_str()
        .expect("the device token was kept")
        .to_owned();
    let outputs = format!(
        "{seen}{node_stderr}{op_seen}{}{}",
        String::from_utf8_lossy(&op_out.stdout),
        String::from_utf8_lossy(&op_out.stderr)
    );
    assert!(
        node_stderr.contains("DEBUG") || node_stderr.contains("debug"),
        "debug logs were on"
    );
    assert_no_secrets(
        "o06",
        &outputs,
        &[
            ("token", TOKEN),
            ("private key", &private_key),
            ("device token", &device_token),
        ],
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&device).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the device file is the owner's only");
    }
}
