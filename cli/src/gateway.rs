//! `tether gateway`: the tokio gateway server for testing other people's clients, with
//! faults on demand. Anyone may connect: the peer is named by a fingerprint of the token
//! presented (never the token itself), `anonymous` without one, and each plain socket by
//! its connection. Whatever a ready peer sends is echoed back: a discord frame's `d` as an
//! `ECHO` dispatch, an OpenClaw request's params as its result, an OpenClaw event as an event, a
//! plain message as itself.

use std::time::Duration;

use serde_json::Value;
use serde_json::value::RawValue;
use tether_core::Frame;
use tether_gateway::{
    Credentials, Faults, GatewayConfig, GatewayEvent, PeerId, Rejection, ServerProfile,
};
use tether_tokio::gateway::{GatewayHandle, GatewayOptions, serve};
use tokio::net::TcpListener;

/// The settings of `tether gateway`.
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayArgs {
    /// Address to listen on (port 0: any free port; the address is printed).
    #[arg(long)]
    pub listen: String,
    /// The server side to speak.
    #[arg(long, value_enum, default_value = "discord")]
    pub profile: ServerKind,
    /// Heartbeat interval announced in hello (discord) or tick interval (openclaw), ms.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub heartbeat_ms: u64,
    /// How long a session stays resumable after its socket ends, seconds.
    #[arg(long, default_value_t = 60)]
    pub resume_window_s: u64,
    /// Cut every connection (no close frame) this many seconds after it is ready.
    #[arg(long)]
    pub drop_every: Option<f64>,
    /// Never send hello.
    #[arg(long)]
    pub stall_hello: bool,
    /// Stop acknowledging heartbeats after this many per connection.
    #[arg(long)]
    pub no_ack_after: Option<u64>,
    /// Refuse this fraction (0 to 1) of resumes with an invalid session.
    #[arg(long, default_value_t = 0.0)]
    pub invalid_session_rate: f64,
    /// Sockets held at once; more get 503 with Retry-After.
    #[arg(long, default_value_t = 10_000)]
    pub max_connections: usize,
}

/// The server sides `tether gateway` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServerKind {
    /// Discord gateway v10.
    Discord,
    /// OpenClaw's gateway protocol.
    Openclaw,
    /// A bare WebSocket: an echo server for plain clients.
    Plain,
}

impl GatewayArgs {
    /// The faults these flags ask for; a rate outside 0..=1 is refused.
    pub fn faults(&self) -> Result<Faults, String> {
        if !(0.0..=1.0).contains(&self.invalid_session_rate) {
            return Err(format!(
                "--invalid-session-rate must be within 0..=1, got {}",
                self.invalid_session_rate
            ));
        }
        let drop_after = match self.drop_every {
            Some(secs) if secs.is_finite() && secs > 0.0 => Some(Duration::from_secs_f64(secs)),
            Some(secs) => {
                return Err(format!(
                    "--drop-every must be a positive number of seconds, got {secs}"
                ));
            }
            None => None,
        };
        Ok(Faults {
            stall_hello: self.stall_hello,
            ack_heartbeats: self.no_ack_after,
            invalid_session_rate: self.invalid_session_rate,
            drop_after,
        })
    }

    /// The gateway's settings.
    pub fn config(&self) -> Result<GatewayConfig, String> {
        let profile = match self.profile {
            ServerKind::Discord => ServerProfile::Discord,
            ServerKind::Openclaw => ServerProfile::OpenClaw,
            ServerKind::Plain => ServerProfile::Plain,
        };
        GatewayConfig::builder(profile)
            .heartbeat_interval(Duration::from_millis(self.heartbeat_ms))
            .resume_window(Duration::from_secs(self.resume_window_s))
            .build()
            .map_err(|e| e.to_string())
    }
}

/// Lets everyone in, named by a fingerprint of the token they present: the first 12 hex
/// digits of its SHA-256, so logs tell peers apart and never show a secret. Without a
/// token, a plain socket is its connection and anyone else `anonymous`.
pub fn open_door(credentials: &Credentials<'_>) -> Result<PeerId, Rejection> {
    Ok(match credentials.token {
        Some(token) => PeerId::from(fingerprint(token)),
        None if credentials.payload.is_empty() => PeerId::from(credentials.conn.to_string()),
        None => PeerId::from("anonymous"),
    })
}

/// `peer-` and the first 12 hex digits of the SHA-256 of `token`.
pub fn fingerprint(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let hex: String = digest.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("peer-{hex}")
}

/// Runs `tether gateway` until Ctrl-C. The first line on stdout is `listening ws://ADDR/`.
pub async fn run(args: GatewayArgs) -> Result<(), String> {
    let faults = args.faults()?;
    let config = args.config()?;
    let listener = TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let options = GatewayOptions {
        max_connections: args.max_connections,
        ..GatewayOptions::default()
    };
    let (gateway, mut events) =
        serve(listener, config, open_door, options).map_err(|e| e.to_string())?;
    gateway
        .set_faults(faults)
        .await
        .map_err(|e| e.to_string())?;
    println!("listening ws://{addr}/");
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => {
                    println!("{}", describe(&event));
                    echo(&gateway, args.profile, event).await;
                }
                None => return Ok(()),
            },
            _ = tokio::signal::ctrl_c() => {
                println!("shutting down");
                let _ = gateway.shutdown().await;
                return Ok(());
            }
        }
    }
}

/// One line about a gateway event.
pub fn describe(event: &GatewayEvent) -> String {
    use tether_gateway::registry::Presence;
    match event {
        GatewayEvent::Presence {
            peer,
            conn,
            presence,
        } => match presence {
            Presence::Connected => format!("{conn} {peer}: connected"),
            Presence::Replaced { old } => format!("{conn} {peer}: replaced {old}"),
            Presence::Disconnected => format!("{conn} {peer}: disconnected"),
        },
        GatewayEvent::Resumed {
            peer,
            conn,
            replayed,
        } => {
            format!("{conn} {peer}: resumed, {replayed} dispatches replayed")
        }
        GatewayEvent::Message { peer, conn, text } => format!("{conn} {peer}: {text}"),
        GatewayEvent::Binary { peer, conn, data } => {
            format!("{conn} {peer}: binary, {} bytes", data.len())
        }
        GatewayEvent::Invoked { id, peer, outcome } => {
            format!("invoke {} of {peer}: {outcome:?}", id.get())
        }
        GatewayEvent::BadFrame { conn, reason } => format!("{conn}: bad frame: {reason}"),
        GatewayEvent::Closing { conn, peer, why } => match peer {
            Some(peer) => format!("{conn} {peer}: closing ({why:?})"),
            None => format!("{conn}: closing ({why:?})"),
        },
    }
}

/// Echoes what a peer sent back to it.
async fn echo(gateway: &GatewayHandle, profile: ServerKind, event: GatewayEvent) {
    let (peer, text) = match event {
        GatewayEvent::Message { peer, text, .. } => (peer, text),
        GatewayEvent::Binary { peer, data, .. } => {
            let _ = gateway.send(&peer, Frame::Binary(data)).await;
            return;
        }
        _ => return,
    };
    if profile == ServerKind::Plain {
        let _ = gateway.send(&peer, Frame::Text(text)).await;
        return;
    }
    let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
        return;
    };
    match profile {
        ServerKind::Discord => {
            if let Ok(data) = RawValue::from_string(frame["d"].to_string()) {
                let _ = gateway.dispatch(&peer, "ECHO", data).await;
            }
        }
        ServerKind::Openclaw if frame["type"] == "req" => {
            let reply = serde_json::json!({"type": "res", "id": frame["id"], "ok": true, "payload": frame["params"]});
            let _ = gateway.send(&peer, Frame::text(reply.to_string())).await;
        }
        ServerKind::Openclaw | ServerKind::Plain => {
            let name = frame["event"].as_str().unwrap_or("echo").to_owned();
            if let Ok(data) = RawValue::from_string(frame["payload"].to_string()) {
                let _ = gateway.dispatch(&peer, &name, data).await;
            }
        }
    }
}
