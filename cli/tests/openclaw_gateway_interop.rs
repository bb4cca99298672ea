//! The real OpenClaw clients against tether's gateway (`tether_tokio::gateway::serve` with
//! `ServerProfile::OpenClaw`) on 127.0.0.1: its node host (`openclaw node run`), its command
//! line (`openclaw gateway call`), and the npm client `openclaw-node`, all pinned in
//! `tests/interop/openclaw/install.sh`. Run by `.ci/run`; alone with
//! `cargo test -p tether-cli --features interop --test openclaw_gateway_interop`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use serde_json::{Value, json};
use tether_gateway::registry::{InvokeOutcome, Presence};
use tether_gateway::{
    AutoApprove, Credentials, GatewayConfig, GatewayEvent, PeerId, Rejection, ServerProfile,
};
use tether_tests::interop::{RealClients, assert_no_secrets, json_in};
use tether_tokio::gateway::{GatewayEvents, GatewayHandle, GatewayOptions, serve};

const TOKEN: &str = "tether-gateway-interop-token-4d1e";

/// Lets in only the shared token.
fn door(credentials: &Credentials<'_>) -> Result<PeerId, Rejection> {
    match credentials.token {
        Some(TOKEN) => Ok(PeerId::from("operator")),
        _ => Err(Rejection::new("unauthorized: gateway token mismatch")),
    }
}

async fn gateway(tick: Duration, approve: AutoApprove) -> (GatewayHandle, GatewayEvents, u16) {
    gateway_with(tick, approve, Duration::from_secs(25)).await
}

/// A tether gateway speaking OpenClaw on a free loopback port: its ticks, its pairing
/// policy and its pong window.
async fn gateway_with(
    tick: Duration,
    approve: AutoApprove,
    pong_window: Duration,
) -> (GatewayHandle, GatewayEvents, u16) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = GatewayConfig::builder(ServerProfile::OpenClaw)
        .heartbeat_interval(tick)
        .auto_approve(approve)
        .pong_window(pong_window)
        .build()
        .unwrap();
    let (handle, events) = serve(listener, config, door, GatewayOptions::default()).unwrap();
    (handle, events, port)
}

/// Waits for the first event `f` picks, keeping every event seen in `log`.
async fn until<T>(
    events: &mut GatewayEvents,
    log: &mut Vec<GatewayEvent>,
    limit: Duration,
    f: impl Fn(&GatewayEvent) -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let event = tokio::time::timeout(left, events.recv()).await.ok()??;
        let found = f(&event);
        log.push(event);
        if found.is_some() {
            return found;
        }
    }
}

/// g01: `openclaw node run` connects, waits for its pairing, which the test approves
/// through the gateway's API, and answers an invoke tether's gateway sends
/// (`system.which`) with the real result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g01_node_host_pairs_and_answers_an_invoke() {
    let (gateway, mut events, port) = gateway(Duration::from_secs(5), AutoApprove::Never).await;
    let mut clients = RealClients::new("g01");
    clients.node_run(port, TOKEN, "system.which");
    let mut log = Vec::new();
    let request = until(
        &mut events,
        &mut log,
        Duration::from_secs(90),
        |e| match e {
            GatewayEvent::PairingRequested(p) => Some(p.clone()),
            _ => None,
        },
    )
    .await
    .unwrap_or_else(|| panic!("no pairing request: {log:?}\n{}", clients.node_run_log()));
    assert_eq!(request.role, "node");
    assert_eq!(request.client_id, "node-host");
    assert!(
        request.commands.iter().any(|c| c == "system.which"),
        "{request:?}"
    );
    gateway.approve_pairing(&request.request_id).await.unwrap();
    // The node host asks again on its own (1, 2, 4... s) and is let in as its device.
    let node = request.device_id.clone();
    let connected = until(
        &mut events,
        &mut log,
        Duration::from_secs(60),
        |e| match e {
            GatewayEvent::Presence {
                peer,
                presence: Presence::Connected,
                ..
            } if **peer == *node => Some(()),
            _ => None,
        },
    )
    .await;
    assert!(
        connected.is_some(),
        "connected after approval: {log:?}\n{}",
        clients.node_run_log()
    );
    let params =
        RawValue::from_string(json!({"bins": ["sh", "no-such-binary-here"]}).to_string()).unwrap();
    let (_, outcome) = gateway
        .invoke(&node, "system.which", params, Duration::from_secs(30))
        .await
        .unwrap();
    let InvokeOutcome::Result(Ok(payload)) = outcome else {
        panic!("{outcome:?}");
    };
    let payload: Value = serde_json::from_str(payload.as_str()).unwrap();
    let sh = payload["bins"]["sh"].as_str().unwrap_or_default();
    assert!(sh.ends_with("/sh"), "the real result: {payload}");
    assert!(
        payload["bins"].get("no-such-binary-here").is_none(),
        "{payload}"
    );
    assert_no_secrets("g01 events", &format!("{log:?}"), &[("token", TOKEN)]);
    let _ = gateway.shutdown().await;
}

/// g02 (seed 002, forced in this order): an invoke is in flight on the node's socket when
/// that socket is cut on the node's side only; the node comes back on a new connection,
/// which the gateway registers while it still holds the old socket open. The invoke ends
/// as disconnected exactly once; the node is the same device, needs no new approval, and
/// answers the next invoke; the old socket's late end is a stale close; presence shows one
/// node throughout, never a stale disconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g02_node_comes_back_while_its_old_socket_lingers() {
    let tick = Duration::from_secs(1);
    // The gateway's own liveness verdict on the old socket waits longer than the test:
    // only the node's new connection can end it.
    let (gateway, mut events, port) =
        gateway_with(tick, AutoApprove::Always, Duration::from_secs(300)).await;
    let proxy =
        tether_tests::proxy::FaultProxy::start(format!("127.0.0.1:{port}").parse().unwrap()).await;
    let mut clients = RealClients::new("g02");
    clients.node_run(proxy.addr.port(), TOKEN, "system.which");
    let mut log = Vec::new();
    let first = until(
        &mut events,
        &mut log,
        Duration::from_secs(90),
        |e| match e {
            GatewayEvent::Presence {
                peer,
                conn,
                presence: Presence::Connected,
            } => Some((peer.clone(), *conn)),
            _ => None,
        },
    )
    .await
    .unwrap_or_else(|| panic!("{log:?}\n{}", clients.node_run_log()));
    let (node, old) = first;
    // 1. The path goes silent; the invoke is written into it and never reaches the node.
    proxy.freeze_all();
    let params = RawValue::from_string(json!({"bins": ["sh"]}).to_string()).unwrap();
    let in_flight = {
        let gateway = gateway.clone();
        let node = node.clone();
        tokio::spawn(async move {
            gateway
                .invoke(&node, "system.which", params, Duration::from_secs(60))
                .await
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while gateway.stats().await.unwrap().pending_invokes == 0 {
        assert!(Instant::now() < deadline, "the invoke was never sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // 2. Only then is the node's side cut: it sees its socket die and comes back on a new
    // connection (its backoff starts at 1 s), while the gateway's side of the old one
    // stays open and silent.
    proxy.cut_client_side();
    let replaced = until(
        &mut events,
        &mut log,
        Duration::from_secs(60),
        |e| match e {
            GatewayEvent::Presence {
                peer,
                conn,
                presence: Presence::Replaced { old: o },
            } if *peer == node && *o == old => Some(*conn),
            _ => None,
        },
    )
    .await;
    let new = replaced.unwrap_or_else(|| panic!("{log:?}\n{}", clients.node_run_log()));
    let (_, outcome) = tokio::time::timeout(Duration::from_secs(30), in_flight)
        .await
        .expect("the invoke in flight ends")
        .unwrap()
        .unwrap();
    assert_eq!(outcome, InvokeOutcome::Disconnected);
    // The next invoke goes to the new connection and is answered.
    let params = RawValue::from_string(json!({"bins": ["sh"]}).to_string()).unwrap();
    let (_, outcome) = gateway
        .invoke(&node, "system.which", params, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(
        matches!(outcome, InvokeOutcome::Result(Ok(_))),
        "{outcome:?}"
    );
    assert_eq!(gateway.owner(&node).await.unwrap(), Some(new));
    // 3. The old socket ends late (the gateway closed it when it was replaced, and its close
    // went into the silent path): a stale close, which changes nothing.
    let deadline = Instant::now() + Duration::from_secs(30);
    while gateway.stats().await.unwrap().registry.stale_closes == 0 {
        assert!(
            Instant::now() < deadline,
            "the old socket never ended: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while let Ok(event) = events.try_recv() {
        log.push(event);
    }
    let presence: Vec<&Presence> = log
        .iter()
        .filter_map(|e| match e {
            GatewayEvent::Presence { peer, presence, .. } if *peer == node => Some(presence),
            _ => None,
        })
        .collect();
    assert!(
        !presence.iter().any(|p| **p == Presence::Disconnected),
        "no stale disconnect: {presence:?}"
    );
    let pairings = log
        .iter()
        .filter(|e| matches!(e, GatewayEvent::Paired(_)))
        .count();
    assert_eq!(pairings, 1, "paired once, not again: {log:?}");
    assert_eq!(gateway.owner(&node).await.unwrap(), Some(new));
    drop(proxy);
    let _ = gateway.shutdown().await;
}

/// g03: `openclaw gateway call health --url ws://127.0.0.1:P --token T` gets an answer
/// (and `status` too); a wrong token is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g03_gateway_call_health() {
    let (gateway, _events, port) = gateway(Duration::from_secs(5), AutoApprove::Loopback).await;
    let clients = RealClients::new("g03");
    let url = format!("ws://127.0.0.1:{port}");
    for method in ["health", "status"] {
        let out = clients
            .cli(&[
                "gateway", "call", method, "--url", &url, "--token", TOKEN, "--json",
            ])
            .await;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{method}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let answer = json_in(&text).unwrap_or_else(|| panic!("{method}: no JSON in {text}"));
        assert_eq!(answer["ok"], true, "{method}: {answer}");
    }
    let out = clients
        .cli(&[
            "gateway",
            "call",
            "health",
            "--url",
            &url,
            "--token",
            "wrong-token-000",
            "--json",
        ])
        .await;
    assert!(!out.status.success(), "a wrong token is refused");
    let _ = gateway.shutdown().await;
}

/// g04: the npm client `openclaw-node` connects and stays connected past three ticks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g04_openclaw_node_stays_past_three_ticks() {
    let tick = Duration::from_secs(1);
    let (gateway, mut events, port) = gateway(tick, AutoApprove::Loopback).await;
    let mut clients = RealClients::new("g04");
    clients.openclaw_node(&format!("ws://127.0.0.1:{port}"), TOKEN);
    let mut log = Vec::new();
    let connected = until(
        &mut events,
        &mut log,
        Duration::from_secs(60),
        |e| match e {
            GatewayEvent::Presence {
                presence: Presence::Connected,
                conn,
                ..
            } => Some(*conn),
            _ => None,
        },
    )
    .await;
    let conn = connected.unwrap_or_else(|| panic!("{log:?}\n{}", clients.openclaw_node_log()));
    // Five tick intervals later it is still the same, only connection.
    let gone = until(&mut events, &mut log, 5 * tick, |e| match e {
        GatewayEvent::Presence {
            presence: Presence::Disconnected,
            ..
        }
        | GatewayEvent::Closing { .. } => Some(()),
        _ => None,
    })
    .await;
    assert!(gone.is_none(), "stayed: {log:?}");
    let printed = clients.openclaw_node_log();
    assert!(printed.contains("connected"), "{printed}");
    let ticks = printed.lines().filter(|l| l.contains("\"tick\"")).count();
    assert!(ticks >= 3, "three ticks seen by the client: {printed}");
    assert!(!printed.contains("disconnected"), "{printed}");
    let stats = gateway.stats().await.unwrap();
    assert_eq!(stats.bad_frames, 0);
    let _ = conn;
    let _ = gateway.shutdown().await;
}
