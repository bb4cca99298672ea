//! An OpenClaw-speaking gateway that lets in whoever presents a token and invokes
//! `status` on each node that connects. `cargo run -p tether-tokio --example gateway`,
//! then connect a node, for example
//! `AGENT=agent-1 tether connect ws://127.0.0.1:9000/ --profile openclaw --role node
//! --token-env AGENT --command status`, and answer the invoke it prints with a line such
//! as `{"id":"1","ok":true,"payload":{"up":true}}`.

use std::time::Duration;

use serde_json::value::RawValue;
use tether_gateway::registry::Presence;
use tether_gateway::{Credentials, GatewayConfig, GatewayEvent, PeerId, Rejection, ServerProfile};
use tether_tokio::gateway::{GatewayOptions, serve};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:9000").await?;
    let config = GatewayConfig::builder(ServerProfile::OpenClaw)
        .heartbeat_interval(Duration::from_secs(5)) // ticks
        .build()?;
    // Who a client is: here, its token; refuse what you do not know.
    let auth = |c: &Credentials<'_>| {
        c.token
            .map(PeerId::from)
            .ok_or_else(|| Rejection::new("no token"))
    };
    let (gateway, mut events) = serve(listener, config, auth, GatewayOptions::default())?;
    println!("listening on ws://127.0.0.1:9000/");
    while let Some(event) = events.recv().await {
        println!("{event:?}");
        if let GatewayEvent::Presence {
            peer,
            presence: Presence::Connected | Presence::Replaced { .. },
            ..
        } = event
        {
            let gateway = gateway.clone();
            tokio::spawn(async move {
                // Bound to the peer's connection now: only it can answer, and only once.
                let params = RawValue::from_string("{}".to_owned())?;
                let (_, outcome) = gateway
                    .invoke(&peer, "status", params, Duration::from_secs(5))
                    .await?;
                println!("{peer} status: {outcome:?}");
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            });
        }
    }
    Ok(())
}
