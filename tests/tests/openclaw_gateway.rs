//! g05: tether's own `openclaw` client, as operator and as node, against tether's gateway
//! (`ServerProfile::OpenClaw` served by tether-tokio) on 127.0.0.1: the o01 to o05
//! scenarios the client passes against the real gateway pass here too, and nothing of a
//! token, a device token or a private key reaches what the sessions report (o06). g06: bad
//! input from clients on raw sockets, refused typed and counted, memory bounded, while a
//! good session stays served.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::json;
use serde_json::value::RawValue;
use tether_core::protocol::openclaw::{
    DeviceIdentity, InvokeAnswer, OpenClaw, OpenClawMessage, OpenClawRequest, Role,
};
use tether_core::{AnswerError, Config, Event, Outcome, Reason, Token, Utf8Bytes};
use tether_gateway::registry::InvokeOutcome;
use tether_gateway::{
    AutoApprove, Credentials, GatewayConfig, GatewayEvent, PeerId, Rejection, ServerProfile,
};
use tether_tests::proxy::{FaultProxy, Mode};
use tether_tests::scenarios::Log;
use tether_tokio::gateway::{GatewayEvents, GatewayHandle, GatewayOptions, serve};
use tokio::net::TcpListener;

const TOKEN: &str = "g05-shared-token-81c2";
const TICK: Duration = Duration::from_millis(400);

type E = Event<OpenClawMessage, Utf8Bytes>;

fn door(credentials: &Credentials<'_>) -> Result<PeerId, Rejection> {
    match credentials.token {
        Some(TOKEN) => Ok(PeerId::from("operator")),
        _ => Err(Rejection::new("unauthorized: gateway token mismatch")),
    }
}

async fn gateway_on(listener: TcpListener, approve: AutoApprove) -> (GatewayHandle, GatewayEvents) {
    let config = GatewayConfig::builder(ServerProfile::OpenClaw)
        .heartbeat_interval(TICK)
        .auto_approve(approve)
        .build()
        .unwrap();
    serve(listener, config, door, GatewayOptions::default()).unwrap()
}

async fn gateway(approve: AutoApprove) -> (GatewayHandle, GatewayEvents, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (handle, events) = gateway_on(listener, approve).await;
    (handle, events, port)
}

fn config() -> Config {
    Config::builder()
        .connect_timeout(Duration::from_secs(2))
        .backoff_initial(Duration::from_millis(50))
        .backoff_max(Duration::from_millis(300))
        .build()
        .unwrap()
}

fn client(
    url: &str,
    profile: OpenClaw,
) -> (
    tether_tokio::Handle<OpenClaw>,
    Log<OpenClawMessage, Utf8Bytes>,
) {
    let (handle, events) = tether_tokio::connect(url, config(), profile).unwrap();
    (handle, Log::start(events.boxed()))
}

fn operator() -> OpenClaw {
    OpenClaw::builder(Role::Operator, DeviceIdentity::generate().unwrap())
        .token(Token::new(TOKEN))
        .build()
        .unwrap()
}

fn node(identity: &DeviceIdentity) -> OpenClaw {
    OpenClaw::builder(Role::Node, identity.clone())
        .token(Token::new(TOKEN))
        .commands(["tether.echo"])
        // Quick to ask again while its pairing waits, for the test's sake.
        .pairing_retry(Duration::from_millis(200), Duration::from_millis(400))
        .build()
        .unwrap()
}

fn is_ready(e: &E) -> bool {
    matches!(e, Event::Ready { .. })
}

fn transcript(log: &Log<OpenClawMessage, Utf8Bytes>) -> String {
    log.with(|events| events.iter().map(|(_, e)| format!("{e:?}\n")).collect())
}

fn device_tokens(log: &Log<OpenClawMessage, Utf8Bytes>) -> Vec<Option<String>> {
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

fn no_secrets(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "{what}: a secret appears in the output"
        );
    }
}

async fn health(client: &tether_tokio::Handle<OpenClaw>) -> Outcome<Utf8Bytes> {
    client
        .request(
            OpenClawRequest::new("health", json!({})),
            Duration::from_secs(5),
        )
        .await
        .unwrap()
}

/// Waits for the gateway event `f` picks.
async fn until<T>(events: &mut GatewayEvents, f: impl Fn(&GatewayEvent) -> Option<T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let event = events.recv().await.expect("gateway running");
            if let Some(found) = f(&event) {
                return found;
            }
        }
    })
    .await
    .expect("the gateway event came")
}

/// o01 here: hello-ok, `health` and `status` answered, three ticks in one sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g05_o01_operator_health_status_and_ticks() {
    let (gateway, _events, port) = gateway(AutoApprove::Loopback).await;
    let (client, log) = client(&format!("ws://127.0.0.1:{port}"), operator());
    assert!(log.wait(Duration::from_secs(10), is_ready).await.is_some());
    assert!(matches!(health(&client).await, Outcome::Response(_)));
    let status = client
        .request(
            OpenClawRequest::new("status", json!({})),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert!(matches!(status, Outcome::Response(_)), "{status:?}");
    let tick = |e: &E| matches!(e, Event::Message { message: OpenClawMessage::Event(ev), .. } if ev.name.as_str() == "tick");
    assert!(log.wait_nth(2, 10 * TICK, tick).await.is_some());
    assert_eq!(
        client.stats().await.unwrap().protocol_errors,
        0,
        "no gap, no error"
    );
    let tokens = device_tokens(&log);
    client.shutdown().await;
    let device_token = tokens[0].clone().expect("a device token was issued");
    no_secrets("g05 o01", &transcript(&log), &[TOKEN, &device_token]);
    let _ = gateway.shutdown().await;
}

/// o02 here: the gateway goes away and comes back on the same port; the client reconnects
/// and what it asks meanwhile ends once each (answered, or not sent and asked again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g05_o02_gateway_restart() {
    let (gateway, _events, port) = gateway(AutoApprove::Loopback).await;
    let (client, log) = client(&format!("ws://127.0.0.1:{port}"), operator());
    assert!(log.wait(Duration::from_secs(10), is_ready).await.is_some());
    gateway.shutdown().await.unwrap();
    assert!(
        log.wait(Duration::from_secs(5), |e| matches!(
            e,
            Event::Disconnected { .. }
        ))
        .await
        .is_some()
    );
    let asked: Vec<_> = (0..3)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { health(&client).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let (again, _events) = gateway_on(listener, AutoApprove::Loopback).await;
    assert!(
        log.wait_nth(1, Duration::from_secs(10), is_ready)
            .await
            .is_some()
    );
    for task in asked {
        let outcome = match task.await.unwrap() {
            Outcome::NotSent => health(&client).await,
            other => other,
        };
        assert!(matches!(outcome, Outcome::Response(_)), "{outcome:?}");
    }
    client.shutdown().await;
    let _ = again.shutdown().await;
}

/// o03 here: the path to the gateway goes silent; the dead peer is found within twice the
/// tick interval and 10 %, and the client is ready again once the path is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g05_o03_silent_gateway_found_dead() {
    let (gateway, _events, port) = gateway(AutoApprove::Loopback).await;
    let proxy = FaultProxy::start(format!("127.0.0.1:{port}").parse().unwrap()).await;
    let (client, log) = client(&proxy.url(), operator());
    assert!(log.wait(Duration::from_secs(10), is_ready).await.is_some());
    let tick = |e: &E| matches!(e, Event::Message { message: OpenClawMessage::Event(ev), .. } if ev.name.as_str() == "tick");
    let last = log.wait(5 * TICK, tick).await.expect("a tick");
    proxy.set(Mode::Blackhole);
    let found = log
        .wait(Duration::from_secs(10), |e| {
            matches!(
                e,
                Event::Disconnected {
                    reason: Reason::Silent,
                    ..
                }
            )
        })
        .await
        .expect("the silent gateway is found dead");
    assert!(
        found - last <= 2 * TICK + 2 * TICK / 10,
        "{:?}",
        found - last
    );
    proxy.set(Mode::Pass);
    assert!(
        log.wait_nth(1, Duration::from_secs(15), is_ready)
            .await
            .is_some()
    );
    assert!(matches!(health(&client).await, Outcome::Response(_)));
    client.shutdown().await;
    let _ = gateway.shutdown().await;
}

/// o04 and o05 here: a node pairs once (approved through the gateway's API) and answers
/// an invoke; its socket is cut with an invoke in flight, which ends disconnected; it comes
/// back as the same device with the same device token and no new approval, answers the
/// next invoke, and its answer to the old one is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g05_o04_o05_node_pairs_answers_and_comes_back() {
    let (gateway, mut events, port) = gateway(AutoApprove::Never).await;
    let proxy = FaultProxy::start(format!("127.0.0.1:{port}").parse().unwrap()).await;
    let identity = DeviceIdentity::generate().unwrap();
    let (client, log) = client(&proxy.url(), node(&identity));
    let request = until(&mut events, |e| match e {
        GatewayEvent::PairingRequested(p) => Some(p.clone()),
        _ => None,
    })
    .await;
    assert_eq!(request.device_id, identity.id());
    let pairing = |e: &E| {
        matches!(
            e,
            Event::Message {
                message: OpenClawMessage::PairingRequired(_),
                ..
            }
        )
    };
    assert!(
        log.wait(Duration::from_secs(5), pairing).await.is_some(),
        "{}",
        transcript(&log)
    );
    gateway.approve_pairing(&request.request_id).await.unwrap();
    // The client asks again at its pairing pace and is let in.
    assert!(log.wait(Duration::from_secs(10), is_ready).await.is_some());
    let node_id = identity.id().to_owned();
    // o04: an invoke, answered.
    let answering = client.clone();
    let invoke = |n: u64| {
        let gateway = gateway.clone();
        let node_id = node_id.clone();
        tokio::spawn(async move {
            let params = RawValue::from_string(json!({ "n": n }).to_string()).unwrap();
            gateway
                .invoke(&node_id, "tether.echo", params, Duration::from_secs(10))
                .await
                .unwrap()
                .1
        })
    };
    let first = invoke(1);
    assert!(
        log.wait(Duration::from_secs(5), |e| matches!(e, Event::Call { .. }))
            .await
            .is_some()
    );
    let call_of = |nth: usize| {
        log.with(|events| {
            events
                .iter()
                .filter_map(|(_, e)| match e {
                    Event::Call { id, .. } => Some(*id),
                    _ => None,
                })
                .nth(nth)
                .unwrap()
        })
    };
    let answer = |v: serde_json::Value| {
        InvokeAnswer::Ok(Some(RawValue::from_string(v.to_string()).unwrap()))
    };
    answering
        .answer(call_of(0), answer(json!({"n": 1})))
        .await
        .unwrap();
    assert_eq!(
        first.await.unwrap(),
        InvokeOutcome::Result(Ok("{\"n\":1}".into()))
    );
    // o05: the socket is cut with an invoke in flight.
    let second = invoke(2);
    assert!(
        log.wait_nth(1, Duration::from_secs(5), |e| matches!(
            e,
            Event::Call { .. }
        ))
        .await
        .is_some()
    );
    let stale = call_of(1);
    proxy.reset_all();
    assert_eq!(second.await.unwrap(), InvokeOutcome::Disconnected);
    assert!(
        log.wait_nth(1, Duration::from_secs(10), is_ready)
            .await
            .is_some()
    );
    assert_eq!(
        answering.answer(stale, answer(json!("late"))).await,
        Err(AnswerError::Stale)
    );
    let tokens = device_tokens(&log);
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[0], tokens[1], "the same device token");
    let third = invoke(3);
    assert!(
        log.wait_nth(2, Duration::from_secs(5), |e| matches!(
            e,
            Event::Call { .. }
        ))
        .await
        .is_some()
    );
    answering
        .answer(call_of(2), answer(json!({"n": 3})))
        .await
        .unwrap();
    assert_eq!(
        third.await.unwrap(),
        InvokeOutcome::Result(Ok("{\"n\":3}".into()))
    );
    // One pairing, one node, never a stale disconnect of it.
    let mut later = Vec::new();
    while let Ok(event) = events.try_recv() {
        later.push(event);
    }
    assert!(
        !later
            .iter()
            .any(|e| matches!(e, GatewayEvent::PairingRequested(_))),
        "no new approval asked: {later:?}"
    );
    assert!(gateway.owner(&node_id).await.unwrap().is_some());
    let private_key = identity.export();
    let device_token = tokens[0].clone().unwrap();
    client.shutdown().await;
    no_secrets(
        "g05 o05",
        &transcript(&log),
        &[TOKEN, &device_token, private_key.expose()],
    );
    let _ = gateway.shutdown().await;
}

// ---- g06: bad input from clients, on raw sockets, while a good session watches

mod hostile {
    use super::*;
    use std::net::SocketAddr;
    use tether_core::protocol::openclaw::SignedConnect;
    use tether_tests::raw::RawWs;

    /// Reads a connection's challenge: its nonce and ts.
    async fn challenge(ws: &mut RawWs) -> (String, u64) {
        let frame = ws
            .read_frame(Duration::from_secs(5))
            .await
            .expect("a challenge");
        let v: serde_json::Value = serde_json::from_str(&frame.text()).unwrap();
        assert_eq!(v["event"], "connect.challenge");
        (
            v["payload"]["nonce"].as_str().unwrap().to_owned(),
            v["payload"]["ts"].as_u64().unwrap(),
        )
    }

    /// A node's connect, signed by `identity` over `nonce`/`ts` with `signed_token`,
    /// presenting `token`.
    fn connect(
        identity: &DeviceIdentity,
        nonce: &str,
        ts: u64,
        token: &str,
        signed_token: &str,
    ) -> String {
        let scopes: Vec<String> = Vec::new();
        let signed = SignedConnect {
            device_id: identity.id(),
            client_id: "node-host",
            client_mode: "node",
            role: "node",
            scopes: &scopes,
            signed_at: ts,
            token: signed_token,
            nonce,
            platform: "linux",
            device_family: "",
        };
        json!({"type": "req", "id": "c", "method": "connect", "params": {
            "minProtocol": 3, "maxProtocol": 4,
            "client": {"id": "node-host", "version": "1", "platform": "linux", "mode": "node"},
            "role": "node", "scopes": [], "auth": {"token": token},
            "device": {"id": identity.id(), "publicKey": identity.public_key(),
                "signature": identity.sign(&signed.payload_v3()), "signedAt": ts, "nonce": nonce}}})
        .to_string()
    }

    /// The refusal a connect got: its error (code, detail code) and the close code.
    async fn refusal(ws: &mut RawWs) -> (String, Option<String>, Option<u16>) {
        let frame = ws
            .read_frame(Duration::from_secs(5))
            .await
            .expect("an answer");
        let v: serde_json::Value = serde_json::from_str(&frame.text()).unwrap_or_default();
        let code = v["error"]["code"].as_str().unwrap_or_default().to_owned();
        let detail = v["error"]["details"]["code"].as_str().map(str::to_owned);
        (code, detail, ws.close_code(Duration::from_secs(5)).await)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn g06_bad_input_from_clients_is_refused_typed_counted_and_bounded() {
        let (gateway, _events, port) = gateway(AutoApprove::Always).await;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        // The well-behaved session that watches throughout.
        let (watcher, log) = client(&format!("ws://{addr}"), operator());
        assert!(log.wait(Duration::from_secs(10), is_ready).await.is_some());
        let identity = DeviceIdentity::generate().unwrap();

        // A malformed connect.
        let mut ws = RawWs::connect(addr).await;
        challenge(&mut ws).await;
        ws.send_text(r#"{"type":"req","id":"c","method":"connect","params":{"client":"x"}}"#)
            .await
            .unwrap();
        let (code, _, close) = refusal(&mut ws).await;
        assert_eq!((code.as_str(), close), ("INVALID_REQUEST", Some(1008)));

        // A wrong signature: made over another credential than the one presented.
        let mut ws = RawWs::connect(addr).await;
        let (nonce, ts) = challenge(&mut ws).await;
        ws.send_text(&connect(&identity, &nonce, ts, TOKEN, "another-token"))
            .await
            .unwrap();
        let (_, detail, close) = refusal(&mut ws).await;
        assert_eq!(
            (detail.as_deref(), close),
            (Some("DEVICE_AUTH_SIGNATURE_INVALID"), Some(1008))
        );

        // A nonce of another socket, and a connect replayed from an earlier socket.
        let mut first = RawWs::connect(addr).await;
        let (first_nonce, first_ts) = challenge(&mut first).await;
        let mut second = RawWs::connect(addr).await;
        challenge(&mut second).await;
        let borrowed = connect(&identity, &first_nonce, first_ts, TOKEN, TOKEN);
        second.send_text(&borrowed).await.unwrap();
        let (_, detail, close) = refusal(&mut second).await;
        assert_eq!(
            (detail.as_deref(), close),
            (Some("DEVICE_AUTH_NONCE_MISMATCH"), Some(1008))
        );
        first.send_text(&borrowed).await.unwrap();
        let hello = first.read_frame(Duration::from_secs(5)).await.unwrap();
        assert!(hello.text().contains("hello-ok"), "{}", hello.text());
        let mut third = RawWs::connect(addr).await;
        challenge(&mut third).await;
        third.send_text(&borrowed).await.unwrap();
        let (_, detail, _) = refusal(&mut third).await;
        assert_eq!(
            detail.as_deref(),
            Some("DEVICE_AUTH_NONCE_MISMATCH"),
            "a replay"
        );

        // An oversized frame before connect.
        let mut ws = RawWs::connect(addr).await;
        challenge(&mut ws).await;
        let big = format!("{{\"type\":\"req\",\"id\":\"{}\"}}", "x".repeat(64 << 10));
        let _ = ws.send_text(&big).await;
        assert_eq!(ws.close_code(Duration::from_secs(5)).await, Some(1009));

        // A flood of requests from a connected client that never reads its answers.
        let flooder = DeviceIdentity::generate().unwrap();
        let mut ws = RawWs::connect_stingy(addr, 4096).await;
        let (nonce, ts) = challenge(&mut ws).await;
        ws.send_text(&connect(&flooder, &nonce, ts, TOKEN, TOKEN))
            .await
            .unwrap();
        let request = r#"{"type":"req","id":"h","method":"status"}"#;
        let flood = async {
            for _ in 0..20_000 {
                if ws.send_text(request).await.is_err() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(20), flood).await;
        let memory = gateway.memory();
        println!("g06: after the flood {memory:?}");
        let options = GatewayOptions::default();
        assert!(
            memory.outbound_peak <= options.outbound_bytes.saturating_mul(2),
            "what a client that never reads can make the gateway hold is bounded: {memory:?}"
        );
        assert!(
            memory.inbound_peak <= options.inbound_window.saturating_mul(4),
            "a flood is read no faster than the application takes it: {memory:?}"
        );

        // Through all of it the watcher stayed, answered, with no protocol error.
        assert!(matches!(health(&watcher).await, Outcome::Response(_)));
        assert_eq!(
            log.count(|e| matches!(e, Event::Disconnected { .. })),
            0,
            "{}",
            transcript(&log)
        );
        let stats = gateway.stats().await.unwrap();
        println!("g06: {stats:?}");
        assert!(stats.rejected >= 4, "refusals are counted: {stats:?}");
        assert!(stats.too_big >= 1, "{stats:?}");
        watcher.shutdown().await;
        let _ = gateway.shutdown().await;
    }
}
