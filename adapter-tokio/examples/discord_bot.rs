//! A small Discord bot, end to end: it connects with zlib-stream compression, reads
//! `MESSAGE_CREATE` into a type of its own, answers `!ping` by setting its presence (op 3),
//! and on Ctrl-C stops keeping its session (closing 4000) and saves it, so its next run
//! resumes where this one left off and is replayed what was dispatched in between.
//!
//! Against Discord itself: `DISCORD_TOKEN=... cargo run -p tether-tokio --example
//! discord_bot -- wss://gateway.discord.gg` (the URL from `GET /gateway/bot`; intents as
//! your bot needs). With no URL it runs against a tether gateway of its own on loopback,
//! which dispatches a few messages, so the example runs anywhere.

use std::time::Duration;

use serde::Deserialize;
use tether_core::protocol::discord::{Compression, DiscordSession};
use tether_core::{Config, Discord, Event, Frame, Identify, Token};
use tether_gateway::{Credentials, GatewayConfig, PeerId, Rejection, ServerProfile};
use tether_tokio::gateway::{GatewayOptions, serve};

/// The part of a message this bot reads.
#[derive(Debug, Deserialize)]
struct Message {
    content: String,
    author: Author,
}

#[derive(Debug, Deserialize)]
struct Author {
    username: String,
}

/// Where the session waits between runs.
const SESSION_FILE: &str = "discord-session.json";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (url, local) = match std::env::args().nth(1) {
        Some(url) => (url, None),
        None => {
            let (url, gateway) = local_gateway().await?;
            (url, Some(gateway))
        }
    };
    let token = std::env::var("DISCORD_TOKEN").unwrap_or_else(|_| "local-bot".to_owned());
    // GUILD_MESSAGES | MESSAGE_CONTENT.
    let identify = Identify::new(Token::new(token), (1 << 9) | (1 << 15));
    let mut profile = Discord::builder(identify).compression(Compression::ZlibStream);
    // The last run's session, if it saved one: the first connect resumes it.
    if let Ok(saved) = std::fs::read(SESSION_FILE) {
        if let Ok(Some(session)) = serde_json::from_slice::<Option<DiscordSession>>(&saved) {
            println!("resuming session {}", session.session_id);
            profile = profile.session(session);
        }
    }
    let (bot, mut events) =
        tether_tokio::connect(url.as_str(), Config::builder().build()?, profile.build()?)?;
    let mut seen = 0;
    loop {
        tokio::select! {
            event = events.next() => {
                let Some(event) = event else { break };
                match event {
                    Event::Ready { resumed, .. } => println!("ready (resumed: {resumed})"),
                    Event::Message { message, .. } if message.name.as_str() == "MESSAGE_CREATE" => {
                        seen += 1;
                        // Typed when the bot wants it; raw JSON otherwise.
                        match message.deserialize::<Message>() {
                            Ok(m) if m.content == "!ping" => {
                                println!("{} pinged", m.author.username);
                                let presence = serde_json::json!({"op": 3, "d": {
                                    "since": null, "activities": [{"name": "pong", "type": 0}],
                                    "status": "online", "afk": false,
                                }});
                                bot.send(Frame::text(presence.to_string())).await?;
                            }
                            Ok(m) => println!("{}: {}", m.author.username, m.content),
                            Err(e) => println!("a message this bot cannot read: {e}"),
                        }
                        // Against the local gateway: three messages, then stop as on Ctrl-C.
                        if local.is_some() && seen == 3 {
                            break;
                        }
                    }
                    Event::Disconnected { reason, .. } => println!("disconnected: {reason}"),
                    Event::Stopped { reason } => {
                        println!("stopped: {reason:?}");
                        break;
                    }
                    _ => {}
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    // Stop, keeping the session for the next run, and save it.
    let unsent = bot.suspend().await;
    let session = bot.profile(Discord::session).await?;
    std::fs::write(SESSION_FILE, serde_json::to_vec(&session)?)?;
    println!(
        "saved the session to {SESSION_FILE}; {} frames were never sent",
        unsent.len()
    );
    Ok(())
}

/// A tether gateway on loopback that dispatches a message every half second to whoever
/// connects.
async fn local_gateway()
-> Result<(String, tether_tokio::gateway::GatewayHandle), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}", listener.local_addr()?);
    let config = GatewayConfig::builder(ServerProfile::Discord)
        .heartbeat_interval(Duration::from_secs(5))
        .build()?;
    let auth = |c: &Credentials<'_>| {
        c.token
            .map(|_| PeerId::from("bot"))
            .ok_or_else(|| Rejection::new("no token"))
    };
    let (gateway, _events) = serve(listener, config, auth, GatewayOptions::default())?;
    let feeder = gateway.clone();
    tokio::spawn(async move {
        let texts = ["hello", "!ping", "bye"];
        for n in 0.. {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let text = texts.get(n % texts.len()).copied().unwrap_or("hello");
            let data = serde_json::json!({"content": text, "author": {"username": "alice"}});
            if let Ok(data) = serde_json::value::RawValue::from_string(data.to_string()) {
                let _ = feeder.dispatch("bot", "MESSAGE_CREATE", data).await;
            }
        }
    });
    Ok((url, gateway))
}
