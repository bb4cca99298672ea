//! `tether gateway`: the tokio gateway server for testing other people's clients, with
//! faults on demand. Anyone may connect (under OpenClaw, with `--token-env`, only with that
//! token): the peer is named by a fingerprint of the token presented (never the token
//! itself), `anonymous` without one, each plain socket by its connection, and an OpenClaw
//! device by its id. Whatever a ready peer sends is echoed back: a discord frame's `d` as
//! an `ECHO` dispatch, an OpenClaw `echo` request's params as its result, a plain message
//! as itself. Under OpenClaw, stdin takes commands: `pending`, `approve ID`, `reject ID`,
//! `invoke NODE COMMAND [PARAMS]`.

use std::time::Duration;

use serde_json::Value;
use serde_json::value::RawValue;
use tether_core::Frame;
use tether_gateway::{
    AutoApprove, Credentials, Faults, GatewayConfig, GatewayEvent, PeerId, Rejection, ServerProfile,
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
    /// discord: send op 7 (reconnect) this many seconds after every connection is ready.
    #[arg(long)]
    pub reconnect_every: Option<f64>,
    /// discord: send op 1 (beat now) this many seconds after every connection is ready.
    #[arg(long)]
    pub beat_request_every: Option<f64>,
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
    /// openclaw: the shared token clients must present (`auth.token`), read from this
    /// environment variable. Without it, any token lets a client in.
    #[arg(long)]
    pub token_env: Option<String>,
    /// openclaw: pair every new device at once (default: only those on loopback; the rest
    /// wait for `approve ID` on stdin).
    #[arg(long)]
    pub auto_approve: bool,
    /// discord: the `resume_gateway_url` READY announces (default: this listener's own
    /// address, path `/resume`).
    #[arg(long)]
    pub resume_url: Option<String>,
    /// discord: the guild ids READY lists as unavailable stubs (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub guilds: Vec<u64>,
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
        let seconds = |flag: &str, value: Option<f64>| match value {
            // At most a day: a longer delay is no fault a test waits for.
            Some(secs) if secs.is_finite() && secs > 0.0 && secs <= 86_400.0 => {
                Ok(Some(Duration::from_secs_f64(secs)))
            }
            Some(secs) => Err(format!(
                "--{flag} must be a positive number of seconds up to a day, got {secs}"
            )),
            None => Ok(None),
        };
        let drop_after = seconds("drop-every", self.drop_every)?;
        let reconnect_after = seconds("reconnect-every", self.reconnect_every)?;
        let heartbeat_request_after = seconds("beat-request-every", self.beat_request_every)?;
        Ok(Faults {
            stall_hello: self.stall_hello,
            ack_heartbeats: self.no_ack_after,
            invalid_session_rate: self.invalid_session_rate,
            reconnect_after,
            heartbeat_request_after,
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
        let auto_approve = if self.auto_approve {
            AutoApprove::Always
        } else {
            AutoApprove::Loopback
        };
        let mut config = GatewayConfig::builder(profile)
            .heartbeat_interval(Duration::from_millis(self.heartbeat_ms))
            .resume_window(Duration::from_secs(self.resume_window_s))
            .auto_approve(auto_approve)
            .methods(["echo"])
            .guilds(self.guilds.iter().copied());
        if let Some(url) = &self.resume_url {
            config = config.resume_url(url.as_str());
        }
        config.build().map_err(|e| e.to_string())
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
    let expected = match &args.token_env {
        Some(var) => {
            Some(std::env::var(var).map_err(|_| format!("--token-env: {var} is not set"))?)
        }
        None => None,
    };
    let door = move |credentials: &Credentials<'_>| match (&expected, credentials.token) {
        (Some(expected), Some(token)) if token != expected => {
            Err(Rejection::new("unauthorized: gateway token mismatch"))
        }
        _ => open_door(credentials),
    };
    let (gateway, mut events) =
        serve(listener, config, door, options).map_err(|e| e.to_string())?;
    gateway
        .set_faults(faults)
        .await
        .map_err(|e| e.to_string())?;
    println!("listening ws://{addr}/");
    let mut stdin =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(tokio::io::stdin()));
    let mut input_open = true;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => {
                    println!("{}", describe(&event));
                    echo(&gateway, args.profile, event).await;
                }
                None => return Ok(()),
            },
            line = stdin.next_line(), if input_open => match line {
                Ok(Some(line)) => command(&gateway, line.trim()),
                Ok(None) | Err(_) => input_open = false,
            },
            _ = tokio::signal::ctrl_c() => {
                println!("shutting down");
                let _ = gateway.shutdown().await;
                return Ok(());
            }
        }
    }
}

/// Runs one stdin command on its own, so a slow invoke never holds the event loop.
fn command(gateway: &GatewayHandle, line: &str) {
    let words: Vec<&str> = line.splitn(4, ' ').collect();
    use tether_core::protocol::discord::wire;
    let gateway = gateway.clone();
    let owned: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
    tokio::spawn(async move {
        let words: Vec<&str> = owned.iter().map(String::as_str).collect();
        let said = match words.as_slice() {
            [""] => return,
            ["pending"] => match gateway.pending_pairings().await {
                Ok(pending) if pending.is_empty() => "no pairing request waits".to_owned(),
                Ok(pending) => pending
                    .iter()
                    .map(|p| {
                        format!(
                            "pairing {} device {} role {}",
                            p.request_id, p.device_id, p.role
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
                Err(e) => format!("pending: {e}"),
            },
            ["approve", id] => match gateway.approve_pairing(id).await {
                Ok(p) => format!("approved device {} as {}", p.device_id, p.role),
                Err(e) => format!("approve {id}: {e}"),
            },
            ["reject", id] => match gateway.reject_pairing(id).await {
                Ok(p) => format!("rejected device {}", p.device_id),
                Err(e) => format!("reject {id}: {e}"),
            },
            ["invoke", node, command, rest @ ..] => {
                let params = rest.first().copied().unwrap_or("{}");
                match RawValue::from_string(params.to_owned()) {
                    Ok(params) => {
                        let timeout = Duration::from_secs(30);
                        match gateway.invoke(node, command, params, timeout).await {
                            Ok((id, outcome)) => {
                                format!("invoke {} of {node}: {outcome:?}", id.get())
                            }
                            Err(e) => format!("invoke {command} on {node}: {e}"),
                        }
                    }
                    Err(_) => format!("invoke: the params are not JSON: {params}"),
                }
            }
            // Discord faults on demand.
            ["reconnect", peer] => sent(&gateway, peer, wire::reconnect(), "op 7").await,
            ["beat", peer] => sent(&gateway, peer, wire::heartbeat_request(), "op 1").await,
            ["invalidate", peer, resumable @ ("true" | "false")] => {
                match gateway.invalidate_session(peer, *resumable == "true").await {
                    Ok(conn) => format!("op 9 ({resumable}) to {conn} {peer}"),
                    Err(e) => format!("invalidate {peer}: {e}"),
                }
            }
            ["dispatch", peer, name, rest @ ..] => {
                let data = rest.first().copied().unwrap_or("{}");
                match RawValue::from_string(data.to_owned()) {
                    Ok(data) => match gateway.dispatch(peer, name, data).await {
                        Ok(delivered) => format!("{name} to {peer}: s={}", delivered.seq),
                        Err(e) => format!("dispatch {name} to {peer}: {e}"),
                    },
                    Err(_) => format!("dispatch: the data is not JSON: {data}"),
                }
            }
            ["drop", peer] => match gateway.drop_peer(peer).await {
                Ok(conn) => format!("{conn} {peer}: dropped"),
                Err(e) => format!("drop {peer}: {e}"),
            },
            ["zombie", on @ ("on" | "off")] | ["stall", on @ ("on" | "off")] => {
                let on = *on == "on";
                match gateway.faults().await {
                    Ok(mut faults) => {
                        if words[0] == "zombie" {
                            faults.ack_heartbeats = on.then_some(0);
                        } else {
                            faults.stall_hello = on;
                        }
                        match gateway.set_faults(faults).await {
                            Ok(()) => format!("{}: {}", words[0], if on { "on" } else { "off" }),
                            Err(e) => format!("{}: {e}", words[0]),
                        }
                    }
                    Err(e) => format!("{}: {e}", words[0]),
                }
            }
            _ => format!(
                "unknown command {line:?}: pending, approve ID, reject ID, invoke NODE COMMAND [PARAMS] (openclaw); \
                 reconnect PEER, beat PEER, invalidate PEER true|false, dispatch PEER NAME [JSON], drop PEER, \
                 zombie on|off, stall on|off (discord)",
                line = owned.join(" ")
            ),
        };
        println!("{said}");
    });
}

/// Writes `frame` to `peer`, and says so.
async fn sent(
    gateway: &GatewayHandle,
    peer: &str,
    frame: tether_core::Frame,
    what: &str,
) -> String {
    match gateway.send(peer, frame).await {
        Ok(conn) => format!("{what} to {conn} {peer}"),
        Err(e) => format!("{what} to {peer}: {e}"),
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
        GatewayEvent::ResumeRefused { conn, reason } => {
            format!("{conn}: resume refused: {reason}")
        }
        GatewayEvent::Request {
            peer, conn, method, ..
        } => format!("{conn} {peer}: request {method}"),
        GatewayEvent::PairingRequested(p) => format!(
            "pairing {} waits: device {} as {} ({} {}); approve {} to let it in",
            p.request_id, p.device_id, p.role, p.client_id, p.platform, p.request_id
        ),
        GatewayEvent::Paired(p) => format!("paired device {} as {}", p.device_id, p.role),
        GatewayEvent::Closing { conn, peer, why } => match peer {
            Some(peer) => format!("{conn} {peer}: closing ({why:?})"),
            None => format!("{conn}: closing ({why:?})"),
        },
    }
}

/// Echoes what a peer sent back to it.
async fn echo(gateway: &GatewayHandle, profile: ServerKind, event: GatewayEvent) {
    if let GatewayEvent::Request {
        conn, id, params, ..
    } = &event
    {
        if let Ok(params) = RawValue::from_string(params.as_str().to_owned()) {
            let _ = gateway.respond(*conn, id, Ok(params)).await;
        }
        return;
    }
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
        // A node's reports are taken, not echoed.
        ServerKind::Openclaw | ServerKind::Plain => {}
    }
}
