//! The echo comparison on smol: tether-smol against raw async-tungstenite, both clients and
//! the echo server on one smol executor run by two threads (like the tokio bench's two
//! workers), measured with the same method.

use std::sync::Arc;
use std::time::Instant;

use async_tungstenite::tungstenite::Message;
use futures_util::{SinkExt, StreamExt};

use super::echo::{Round, compare, tether_round, tether_settings};
use super::node::websocket_config;

type Executor = Arc<smol::Executor<'static>>;

async fn echo_server(executor: &Executor) -> Result<String, String> {
    let listener = async_net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let url = format!(
        "ws://{}/",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let ex = executor.clone();
    executor
        .spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                ex.spawn(async move {
                    let Ok(ws) = async_tungstenite::accept_async(tcp).await else {
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
                })
                .detach();
            }
        })
        .detach();
    Ok(url)
}

async fn raw(executor: Executor, url: String, size: usize, count: usize) -> Round {
    let addr = url
        .trim_start_matches("ws://")
        .trim_end_matches('/')
        .to_owned();
    let tcp = async_net::TcpStream::connect(addr.as_str())
        .await
        .map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let (ws, _) =
        async_tungstenite::client_async_with_config(url.as_str(), tcp, Some(websocket_config()))
            .await
            .map_err(|e| e.to_string())?;
    let (mut sink, mut stream) = ws.split();
    let payload = bytes::Bytes::from(vec![1u8; size]);
    let start = Instant::now();
    let writer = executor.spawn(async move {
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

async fn tether(executor: Executor, url: String, size: usize, count: usize) -> Round {
    let (config, profile, options) = tether_settings(count)?;
    let runtime = tether_smol::Smol::with_spawner(executor.clone());
    let (client, events) = tether_smol::connect_on(runtime, url.as_str(), config, profile, options)
        .map_err(|e| e.to_string())?;
    tether_round(client, events, size, count, |writer| executor.spawn(writer)).await
}

/// Runs the smol echo table on threads of its own (the caller's runtime is left alone).
pub fn echo() -> Result<Vec<(&'static str, f64)>, String> {
    let executor: Executor = Arc::new(smol::Executor::new());
    let (stop, stopped) = smol::channel::unbounded::<()>();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (executor, stopped) = (executor.clone(), stopped.clone());
            std::thread::spawn(move || smol::block_on(executor.run(stopped.recv())))
        })
        .collect();
    let result = smol::block_on(async {
        let url = echo_server(&executor).await?;
        let (raw_ex, tether_ex) = (executor.clone(), executor.clone());
        compare(
            "smol",
            |size, n| raw_ex.spawn(raw(raw_ex.clone(), url.clone(), size, n)),
            |size, n| tether_ex.spawn(tether(tether_ex.clone(), url.clone(), size, n)),
        )
        .await
    });
    drop(stop);
    for thread in threads {
        let _ = thread.join();
    }
    result
}
