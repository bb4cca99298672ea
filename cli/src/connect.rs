//! `tether connect URL`: a resilient interactive client. Lines on stdin are sent; messages
//! go to stdout; lifecycle events to stderr (or everything as JSON lines on stdout with
//! `--json`). End of stdin or Ctrl-C shuts down gracefully.

use std::time::Duration;

use serde_json::{Map, Value};
use tether_core::{Config, Discord, Event, Frame, Identify, Plain, StopReason, Token};
use tether_tokio::{Events, Handle, IntoClientRequest, Profile};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};

use crate::report::{Shown, Timeline, event_json, event_line};

/// The settings of `tether connect`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// The ws:// or wss:// URL.
    pub url: String,
    /// The session protocol.
    #[arg(long, value_enum, default_value = "plain")]
    pub profile: ClientKind,
    /// A JSON file: the identify payload (discord).
    #[arg(long)]
    pub identify: Option<std::path::PathBuf>,
    /// Take the token from this environment variable (discord: it overrides the file's;
    /// openclaw: the gateway's shared token, `auth.token`).
    #[arg(long)]
    pub token_env: Option<String>,
    /// openclaw: the role to connect as.
    #[arg(long, value_enum, default_value = "operator")]
    pub role: crate::openclaw::RoleArg,
    /// openclaw: the device file (identity and device token), created on first use.
    /// Without one, a new identity is made for this run only.
    #[arg(long)]
    pub device: Option<std::path::PathBuf>,
    /// openclaw node: a command the node offers. Repeatable.
    #[arg(long = "command")]
    pub commands: Vec<String>,
    /// openclaw: a scope to ask for (default for operators: operator.read and
    /// operator.write). Repeatable.
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// An extra header on every upgrade request, `Name: value`. Repeatable.
    #[arg(long = "header")]
    pub headers: Vec<String>,
    /// Heartbeat interval for the plain profile (ping frames), ms; 0 for none.
    #[arg(long, default_value_t = 15_000)]
    pub heartbeat_ms: u64,
    /// The first reconnect delay, ms.
    #[arg(long, default_value_t = 1000)]
    pub backoff_initial_ms: u64,
    /// The longest reconnect delay, ms.
    #[arg(long, default_value_t = 60_000)]
    pub backoff_max_ms: u64,
    /// Print one JSON object per line on stdout for every event.
    #[arg(long)]
    pub json: bool,
}

/// The client profiles `tether connect` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientKind {
    /// Text and binary frames as they are.
    Plain,
    /// Discord gateway v10.
    Discord,
    /// OpenClaw's gateway protocol, as operator or node.
    Openclaw,
}

/// Why `tether connect` did not run; `usage` errors exit 2.
#[derive(Debug)]
pub struct ConnectFailure {
    /// The message.
    pub message: String,
    /// A bad argument (exit 2) rather than a failed session (exit 1).
    pub usage: bool,
}

pub(crate) fn usage(message: impl Into<String>) -> ConnectFailure {
    ConnectFailure {
        message: message.into(),
        usage: true,
    }
}

impl ConnectArgs {
    fn config(&self) -> Result<Config, ConnectFailure> {
        Config::builder()
            .backoff_initial(Duration::from_millis(self.backoff_initial_ms))
            .backoff_max(Duration::from_millis(self.backoff_max_ms))
            .build()
            .map_err(|e| usage(e.to_string()))
    }

    /// The identify file as a JSON object (empty without one), with the token from the
    /// environment when asked.
    fn credentials(&self) -> Result<Map<String, Value>, ConnectFailure> {
        let mut fields = match &self.identify {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| usage(format!("--identify {}: {e}", path.display())))?;
                match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(fields)) => fields,
                    Ok(_) => {
                        return Err(usage(format!(
                            "--identify {}: not a JSON object",
                            path.display()
                        )));
                    }
                    Err(e) => return Err(usage(format!("--identify {}: {e}", path.display()))),
                }
            }
            None => Map::new(),
        };
        if let Some(var) = &self.token_env {
            let token =
                std::env::var(var).map_err(|_| usage(format!("--token-env: {var} is not set")))?;
            fields.insert("token".into(), Value::from(token));
        }
        Ok(fields)
    }

    fn request(
        &self,
    ) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request, ConnectFailure> {
        let mut request = self
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| usage(format!("{}: {e}", self.url)))?;
        // A header's value is often a secret (`Authorization: Bearer ...`): errors name the
        // header and never echo the value.
        for header in &self.headers {
            let (name, value) = header.split_once(':').ok_or_else(|| {
                usage(format!(
                    "--header: expected `Name: value`, got {} bytes with no colon",
                    header.len()
                ))
            })?;
            let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|e| {
                usage(format!(
                    "--header: the name {:?} is invalid: {e}",
                    name.trim()
                ))
            })?;
            let value = HeaderValue::from_str(value.trim()).map_err(|_| {
                usage(format!(
                    "--header {}: the value is not a valid header value",
                    name.as_str()
                ))
            })?;
            request.headers_mut().append(name, value);
        }
        Ok(request)
    }
}

/// Runs the client until stdin ends or Ctrl-C. `Ok(true)`: it shut down as asked.
pub async fn run(args: ConnectArgs) -> Result<bool, ConnectFailure> {
    let request = args.request()?;
    let config = args.config()?;
    match args.profile {
        ClientKind::Plain => {
            let heartbeat =
                (args.heartbeat_ms > 0).then(|| Duration::from_millis(args.heartbeat_ms));
            let profile = Plain::builder()
                .heartbeat_interval(heartbeat)
                .build()
                .map_err(|e| usage(e.to_string()))?;
            let (handle, events) = start(request, config, profile)?;
            session(handle, events, args.json, |line| Some(Frame::text(line))).await
        }
        ClientKind::Discord => {
            let mut fields = args.credentials()?;
            let token = match fields.remove("token") {
                Some(Value::String(token)) => token,
                _ => {
                    return Err(usage(
                        "discord needs a token: a \"token\" in --identify, or --token-env",
                    ));
                }
            };
            let intents = fields
                .remove("intents")
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            let mut identify = Identify::new(Token::new(token), intents);
            for (name, value) in fields {
                identify = identify.field(name, value);
            }
            let profile = Discord::builder(identify)
                .build()
                .map_err(|e| usage(e.to_string()))?;
            let (handle, events) = start(request, config, profile)?;
            session(handle, events, args.json, |line| {
                json_line(&line).map(|_| Frame::text(line))
            })
            .await
        }
        ClientKind::Openclaw => crate::openclaw::run(&args, request, config).await,
    }
}

fn start<P: Profile>(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
    config: Config,
    profile: P,
) -> Result<(Handle<P>, Events<P>), ConnectFailure> {
    tether_tokio::connect(request, config, profile).map_err(|e| usage(e.to_string()))
}

/// A stdin line that must be JSON; otherwise said so on stderr and skipped.
fn json_line(line: &str) -> Option<Value> {
    match serde_json::from_str::<Value>(line) {
        Ok(value) => Some(value),
        Err(e) => {
            eprintln!("not sent: not JSON ({e})");
            None
        }
    }
}

async fn session<P, F>(
    handle: Handle<P>,
    mut events: Events<P>,
    json: bool,
    read: F,
) -> Result<bool, ConnectFailure>
where
    P: Profile,
    P::Message: Shown + Send + 'static,
    P::Response: std::fmt::Debug + Send + 'static,
    F: Fn(String) -> Option<Frame>,
{
    let timeline = Timeline::new(false);
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let mut input_open = true;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    // The signal future is polled once more after it resolved otherwise.
    let mut interrupted = false;
    loop {
        tokio::select! {
            event = events.next() => {
                let Some(event) = event else { return Ok(false) };
                show(&timeline, json, &event);
                if let Event::Stopped { reason } = event {
                    return Ok(stopped(&reason));
                }
            }
            line = stdin.next_line(), if input_open => match line {
                Ok(Some(line)) if line.trim().is_empty() => {}
                Ok(Some(line)) => {
                    if let Some(frame) = read(line) {
                        if let Err(e) = handle.send(frame).await {
                            eprintln!("not sent: {e}");
                        }
                    }
                }
                // End of input: leave gracefully; the Stopped event ends the loop.
                Ok(None) | Err(_) => {
                    input_open = false;
                    start_shutdown(&handle);
                }
            },
            _ = &mut ctrl_c, if !interrupted => {
                interrupted = true;
                start_shutdown(&handle);
            }
        }
    }
}

/// Says why the session stopped, unless it was asked to; whether it was.
pub(crate) fn stopped(reason: &StopReason) -> bool {
    if *reason != StopReason::Shutdown {
        eprintln!("tether connect: stopped: {reason}");
    }
    *reason == StopReason::Shutdown
}

/// Shuts the client down without waiting; its `Stopped` event ends the session.
pub(crate) fn start_shutdown<P: Profile>(handle: &Handle<P>) {
    let handle = handle.clone();
    tokio::spawn(async move {
        let unsent = handle.shutdown().await;
        if !unsent.is_empty() {
            eprintln!("{} frames were not sent before shutdown", unsent.len());
        }
    });
}

/// Shows an event: a JSON line on stdout with `json`, else messages on stdout and the rest
/// as timeline lines on stderr.
pub(crate) fn show<M: Shown, R: std::fmt::Debug>(
    timeline: &Timeline,
    json: bool,
    event: &Event<M, R>,
) {
    if json {
        if let Some(line) = event_json(event) {
            println!("{line}");
        }
        return;
    }
    if let Event::Message { message, .. } = event {
        println!("{}", message.text());
    } else if let Some((tone, text)) = event_line(event) {
        eprintln!("{}", timeline.line(tone, &text));
    }
}
