//! tether-tokio on real sockets beyond the shared scenarios: TLS, bad URLs, HTTP errors on
//! the upgrade, oversized messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tether_core::{
    CloseCause, Config, Event, Frame, OpenErrorKind, Plain, Reason, StopReason, TransportErrorKind,
};
use tether_tests::scenarios::fast;
use tether_tests::server::{Behaviour, Kind, ScriptedServer, Seen};
use tether_tokio::{ConnectError, IntoClientRequest, Options};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

fn plain() -> Plain {
    Plain::builder().heartbeat_interval(None).build().unwrap()
}

async fn next_matching<M, R>(
    events: &mut tether_tokio::Events<impl tether_core::Protocol<Message = M, Response = R>>,
    f: impl Fn(&Event<M, R>) -> bool,
) -> Event<M, R> {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let event = events.next().await.expect("stream ended");
            if f(&event) {
                return event;
            }
        }
    })
    .await
    .expect("event in time")
}

#[tokio::test]
async fn urls_that_cannot_work_fail_at_connect() {
    let config = || Config::builder().build().unwrap();
    assert!(matches!(
        tether_tokio::connect("http://example.com/", config(), plain()),
        Err(ConnectError::UnsupportedScheme(s)) if s == "http"
    ));
    assert!(matches!(
        tether_tokio::connect("not a url", config(), plain()),
        Err(ConnectError::InvalidRequest(_))
    ));
    assert!(matches!(
        tether_tokio::connect("ws://", config(), plain()),
        Err(ConnectError::InvalidRequest(_))
    ));
}

#[test]
fn connect_outside_a_runtime_is_a_typed_error() {
    let r = tether_tokio::connect(
        "ws://127.0.0.1:1/",
        Config::builder().build().unwrap(),
        plain(),
    );
    assert!(matches!(r, Err(ConnectError::NoRuntime(_))));
}

/// A server that answers every upgrade with `status` and the given extra header lines.
async fn http_error_server(
    status: &'static str,
    headers: &'static str,
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = vec![0u8; 4096];
            let _ = tcp.read(&mut buf).await;
            let response = format!("HTTP/1.1 {status}\r\n{headers}Content-Length: 0\r\n\r\n");
            let _ = tcp.write_all(response.as_bytes()).await;
        }
    });
    (url, hits)
}

#[tokio::test]
async fn unauthorized_upgrade_stops_rather_than_loops() {
    for status in ["401 Unauthorized", "403 Forbidden"] {
        let (url, hits) = http_error_server(status, "").await;
        let (_client, mut events) =
            tether_tokio::connect(&url, fast().build().unwrap(), plain()).unwrap();
        let stopped = next_matching(&mut events, |e| matches!(e, Event::Stopped { .. })).await;
        let Event::Stopped {
            reason: StopReason::Rejected(error),
        } = stopped
        else {
            panic!("{stopped:?}");
        };
        assert!(matches!(
            error.kind,
            OpenErrorKind::Http { status: 401 | 403 }
        ));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            hits.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "{status}: one attempt"
        );
    }
}

#[tokio::test]
async fn not_found_is_reported_and_retried() {
    let (url, hits) = http_error_server("404 Not Found", "").await;
    let (client, mut events) =
        tether_tokio::connect(&url, fast().build().unwrap(), plain()).unwrap();
    let event = next_matching(&mut events, |e| matches!(e, Event::Reconnecting { .. })).await;
    let Event::Reconnecting {
        reason: Reason::OpenFailed(error),
        ..
    } = event
    else {
        panic!("{event:?}");
    };
    assert_eq!(error.kind, OpenErrorKind::Http { status: 404 });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(hits.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    client.shutdown().await;
}

#[tokio::test]
async fn retry_after_on_503_becomes_the_backoff() {
    let (url, _hits) = http_error_server("503 Service Unavailable", "Retry-After: 3\r\n").await;
    let (client, mut events) =
        tether_tokio::connect(&url, fast().build().unwrap(), plain()).unwrap();
    let event = next_matching(&mut events, |e| matches!(e, Event::Reconnecting { .. })).await;
    let Event::Reconnecting {
        delay,
        reason: Reason::OpenFailed(error),
        ..
    } = event
    else {
        panic!("{event:?}");
    };
    assert_eq!(error.retry_after, Some(Duration::from_secs(3)));
    assert_eq!(delay, Duration::from_secs(3));
    client.shutdown().await;
}

#[tokio::test]
async fn oversized_message_recycles_with_1009() {
    let server = ScriptedServer::start(Kind::Plain, Behaviour::default()).await;
    let options = Options::builder()
        .max_message_size(64 * 1024)
        .max_frame_size(64 * 1024)
        .build()
        .unwrap();
    let (client, mut events) =
        tether_tokio::connect_with(server.url(), fast().build().unwrap(), plain(), options)
            .unwrap();
    next_matching(&mut events, |e| matches!(e, Event::Ready { .. })).await;
    server.act(tether_tests::server::Action::Send(Message::binary(
        vec![0u8; 1 << 20],
    )));
    let event = next_matching(&mut events, |e| matches!(e, Event::Disconnected { .. })).await;
    let Event::Disconnected {
        reason: Reason::Closed(CloseCause::Error { kind, .. }),
        ..
    } = event
    else {
        panic!("{event:?}");
    };
    assert_eq!(kind, TransportErrorKind::MessageTooBig);
    let told = server
        .wait_for(Duration::from_secs(2), |r| {
            r.iter().any(|r| r.seen == Seen::CloseFrame(1009))
        })
        .await;
    assert!(told, "the server was told why (1009)");
    next_matching(&mut events, |e| matches!(e, Event::Ready { .. })).await;
    client.shutdown().await;
}

#[tokio::test]
async fn wss_to_a_self_signed_loopback_server() {
    let (server_config, cert_der) = support::localhost_tls();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                    return;
                };
                while let Some(Ok(message)) = ws.next().await {
                    if message.is_text() && ws.send(message).await.is_err() {
                        return;
                    }
                }
            });
        }
    });

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert_der).unwrap();
    let tls = Arc::new(tether_tokio::client_config(roots).unwrap());
    let options = Options::builder().tls(tls).build().unwrap();
    let url = format!("wss://localhost:{port}/");
    let (client, mut events) =
        tether_tokio::connect_with(url.as_str(), fast().build().unwrap(), plain(), options)
            .unwrap();
    next_matching(&mut events, |e| matches!(e, Event::Ready { .. })).await;
    client.send(Frame::text("over tls")).await.unwrap();
    let echo = next_matching(&mut events, |e| matches!(e, Event::Message { .. })).await;
    assert!(
        matches!(echo, Event::Message { message: Frame::Text(t), .. } if t.as_str() == "over tls")
    );
    client.shutdown().await;

    // With the default roots, the self-signed certificate is not accepted: that cannot heal
    // by retrying, so the client stops, typed.
    let (client, mut events) =
        tether_tokio::connect(url.as_str(), fast().build().unwrap(), plain()).unwrap();
    let event = next_matching(&mut events, |e| matches!(e, Event::Stopped { .. })).await;
    assert!(
        matches!(&event, Event::Stopped { reason: StopReason::Rejected(e) } if e.kind == OpenErrorKind::Certificate),
        "{event:?}"
    );
    client.shutdown().await;
}

#[tokio::test]
async fn start_gate_holds_identify_until_granted() {
    let server = ScriptedServer::start(Kind::Discord, Behaviour::default()).await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let permits = gate.clone();
    let options = Options::builder()
        .start_gate(move |_conn| {
            let permits = permits.clone();
            async move {
                if let Ok(permit) = permits.acquire().await {
                    permit.forget();
                }
            }
        })
        .build()
        .unwrap();
    let profile =
        tether_core::Discord::builder(tether_core::Identify::new(tether_core::Token::new("t"), 1))
            .build()
            .unwrap();
    let config = fast()
        .start_gate(true)
        .ready_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let (client, mut events) =
        tether_tokio::connect_with(server.url(), config, profile, options).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !server.records().iter().any(|r| r.seen == Seen::Identify),
        "no identify before the grant"
    );
    gate.add_permits(1);
    next_matching(&mut events, |e| matches!(e, Event::Ready { .. })).await;
    assert_eq!(
        server
            .records()
            .iter()
            .filter(|r| r.seen == Seen::Identify)
            .count(),
        1
    );
    client.shutdown().await;
}

#[test]
fn the_handle_crosses_tasks() {
    fn send_sync_clone<T: Send + Sync + Clone>() {}
    send_sync_clone::<tether_tokio::Handle<Plain>>();
    send_sync_clone::<tether_tokio::Handle<tether_core::Discord>>();
}

#[tokio::test]
async fn dropping_every_handle_shuts_down_gracefully() {
    let server = ScriptedServer::start(Kind::Plain, Behaviour::default()).await;
    let (client, mut events) =
        tether_tokio::connect(server.url(), fast().build().unwrap(), plain()).unwrap();
    next_matching(&mut events, |e| matches!(e, Event::Ready { .. })).await;
    drop(client);
    let stopped = next_matching(&mut events, |e| matches!(e, Event::Stopped { .. })).await;
    assert_eq!(
        stopped,
        Event::Stopped {
            reason: StopReason::Shutdown
        }
    );
    assert!(events.next().await.is_none(), "nothing after Stopped");
    let closed = server
        .wait_for(Duration::from_secs(2), |r| {
            r.iter().any(|r| r.seen == Seen::CloseFrame(1000))
        })
        .await;
    assert!(closed, "the server got a proper close");
}

#[tokio::test]
async fn fed_frames_that_are_refused_come_back_as_events() {
    let config = fast().queue_max_frames(2).build().unwrap();
    // Nothing listens: every frame waits in the queue, and the third is refused.
    let (client, mut events) = tether_tokio::connect("ws://127.0.0.1:9/", config, plain()).unwrap();
    for text in ["a", "b", "c"] {
        client.feed(Frame::text(text)).await.unwrap();
    }
    let returned = next_matching(&mut events, |e| matches!(e, Event::Returned { .. })).await;
    let Event::Returned { frame, reason, .. } = returned else {
        unreachable!()
    };
    assert_eq!(frame, Frame::text("c"));
    assert_eq!(
        reason,
        tether_core::ReturnReason::Refused(tether_core::SendErrorKind::QueueFull)
    );
    let unsent = client.shutdown().await;
    let texts: Vec<_> = unsent.into_iter().map(|(_, f)| f).collect();
    assert_eq!(
        texts,
        [Frame::text("a"), Frame::text("b")],
        "shutdown hands back the rest"
    );
}

#[tokio::test]
async fn an_application_that_drops_the_stream_does_not_stall_the_session() {
    let server = ScriptedServer::start(Kind::Plain, Behaviour::default()).await;
    let options = Options::builder().event_buffer(4).build().unwrap();
    let (client, events) =
        tether_tokio::connect_with(server.url(), fast().build().unwrap(), plain(), options)
            .unwrap();
    let mut events = events;
    next_matching(&mut events, |e| matches!(e, Event::Ready { .. })).await;
    // Events pile up untaken, then the stream goes away.
    for i in 0..20 {
        client.send(Frame::text(format!("m{i}"))).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(events);
    // The session still reads: later echoes are consumed (and dropped), and it stays up.
    for i in 0..50 {
        client.send(Frame::text(format!("n{i}"))).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = client.stats().await.unwrap();
    assert_eq!(stats.frames_received, 70, "{stats:?}");
    assert_eq!(
        client.state().await.unwrap().phase,
        tether_core::Phase::Ready
    );
    client.shutdown().await;
}

// The callback's error type is tungstenite's (an HTTP response), not ours to shrink.
#[allow(clippy::result_large_err)]
#[tokio::test]
async fn a_full_request_carries_its_headers_on_every_socket() {
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let callback = |request: &Request, response: Response| {
                    let header = |name: &str| {
                        request
                            .headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    record
                        .lock()
                        .unwrap()
                        .push((header("authorization"), header("sec-websocket-protocol")));
                    let mut response = response;
                    response.headers_mut().insert(
                        "sec-websocket-protocol",
                        http::HeaderValue::from_static("feed.v1"),
                    );
                    Ok(response)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
                    return;
                };
                // Drop the first connection at once, so the client reconnects.
                let _ = ws.close(None).await;
            });
        }
    });
    let mut request = format!("ws://{addr}/feed").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", "Bearer abc".parse().unwrap());
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "feed.v1".parse().unwrap());
    let (client, mut events) =
        tether_tokio::connect(request, fast().build().unwrap(), plain()).unwrap();
    next_matching(&mut events, |e| matches!(e, Event::Ready { .. })).await;
    next_matching(&mut events, |e| matches!(e, Event::Disconnected { .. })).await;
    next_matching(&mut events, |e| matches!(e, Event::Ready { .. })).await;
    client.shutdown().await;
    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() >= 2, "{seen:?}");
    assert!(
        seen.iter()
            .all(|(auth, proto)| auth == "Bearer abc" && proto == "feed.v1"),
        "{seen:?}"
    );
}
