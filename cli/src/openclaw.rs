//! `tether connect --profile openclaw`: an OpenClaw operator or node on the command line.
//!
//! As an operator, each stdin line `{"method":..,"params":..}` is a request; its outcome is
//! printed as a JSON line on stdout. As a node (`--role node --command NAME...`), each
//! invoke is printed as a JSON line (`{"event":"invoke","id":..,"command":..,"params":..}`)
//! and stdin takes the answers as JSON lines, `{"id":..,"ok":true,"payload":..}` or
//! `{"id":..,"ok":false,"error":{"code":..,"message":..}}`, so any script can be a node.
//! The device file keeps the identity and the device token across runs; it is written
//! owner-only, and neither its key nor any token is ever printed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::value::RawValue;
use serde_json::{Value, json};
use tether_core::protocol::openclaw::{
    DeviceIdentity, InvokeAnswer, OpenClaw, OpenClawMessage, OpenClawRequest, Role,
};
use tether_core::{CallId, Config, Event, Outcome, Token};
use tether_tokio::{Events, Handle};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::connect::{ConnectArgs, ConnectFailure, start_shutdown, stopped, usage};
use crate::report::Timeline;

/// The role `--role` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    /// A control-plane client: requests and events.
    Operator,
    /// A capability host: answers the gateway's invokes.
    Node,
}

/// What the device file holds.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeviceFile {
    device_id: String,
    private_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_token: Option<String>,
}

/// The device identity (and kept device token) of `path`, created on first use.
fn load_device(path: &Path) -> Result<(DeviceIdentity, Option<Token>), ConnectFailure> {
    let shown = path.display();
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let file: DeviceFile = serde_json::from_str(&text)
                .map_err(|_| usage(format!("--device {shown}: not a tether device file")))?;
            let identity = DeviceIdentity::import(&file.private_key)
                .map_err(|e| usage(format!("--device {shown}: {e}")))?;
            if identity.id() != file.device_id {
                return Err(usage(format!(
                    "--device {shown}: the device id does not match its key"
                )));
            }
            Ok((identity, file.device_token.map(Token::new)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let identity = DeviceIdentity::generate().map_err(|e| usage(e.to_string()))?;
            save_device(path, &identity, None)?;
            eprintln!("created device {} in {shown}", identity.id());
            Ok((identity, None))
        }
        Err(e) => Err(usage(format!("--device {shown}: {e}"))),
    }
}

/// Writes the device file, owner-only, through a temporary file so a crash never leaves
/// it half written.
fn save_device(
    path: &Path,
    identity: &DeviceIdentity,
    device_token: Option<&Token>,
) -> Result<(), ConnectFailure> {
    let file = DeviceFile {
        device_id: identity.id().to_owned(),
        private_key: identity.export().expose().to_owned(),
        device_token: device_token.map(|t| t.expose().to_owned()),
    };
    let text = serde_json::to_string_pretty(&file).map_err(|e| usage(e.to_string()))?;
    let temporary = path.with_extension("tmp");
    let written = {
        use std::io::Write;
        #[cfg(unix)]
        use std::os::unix::fs::OpenOptionsExt;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        options.mode(0o600);
        options
            .open(&temporary)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .and_then(|()| std::fs::rename(&temporary, path))
    };
    written.map_err(|e| usage(format!("--device {}: {e}", path.display())))
}

/// Runs an OpenClaw operator or node until stdin ends or Ctrl-C.
pub async fn run(
    args: &ConnectArgs,
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
    config: Config,
) -> Result<bool, ConnectFailure> {
    let role = match args.role {
        RoleArg::Operator => Role::Operator,
        RoleArg::Node => Role::Node,
    };
    let (identity, device_token) = match &args.device {
        Some(path) => load_device(path)?,
        None => (
            DeviceIdentity::generate().map_err(|e| usage(e.to_string()))?,
            None,
        ),
    };
    let mut builder = OpenClaw::builder(role, identity.clone()).commands(args.commands.clone());
    if !args.scopes.is_empty() {
        builder = builder.scopes(args.scopes.clone());
    }
    if let Some(var) = &args.token_env {
        let token =
            std::env::var(var).map_err(|_| usage(format!("--token-env: {var} is not set")))?;
        builder = builder.token(Token::new(token));
    }
    if let Some(token) = device_token.clone() {
        builder = builder.device_token(token);
    }
    let profile = builder.build().map_err(|e| usage(e.to_string()))?;
    let (handle, events) =
        tether_tokio::connect(request, config, profile).map_err(|e| usage(e.to_string()))?;
    let keeper = TokenKeeper {
        path: args.device.clone(),
        identity,
        kept: device_token,
    };
    session(handle, events, args.json, keeper).await
}

/// Writes a newly issued device token to the device file.
struct TokenKeeper {
    path: Option<PathBuf>,
    identity: DeviceIdentity,
    kept: Option<Token>,
}

impl TokenKeeper {
    fn hello(&mut self, issued: Option<&Token>) {
        let (Some(path), Some(issued)) = (&self.path, issued) else {
            return;
        };
        if self.kept.as_ref() == Some(issued) {
            return;
        }
        match save_device(path, &self.identity, Some(issued)) {
            Ok(()) => {
                self.kept = Some(issued.clone());
                eprintln!("device token kept in {}", path.display());
            }
            Err(e) => eprintln!("device token not kept: {}", e.message),
        }
    }
}

/// The most invokes waiting for an answer from stdin: the gateway times the rest out.
const MAX_WAITING_INVOKES: usize = 4096;

async fn session(
    handle: Handle<OpenClaw>,
    mut events: Events<OpenClaw>,
    json: bool,
    mut keeper: TokenKeeper,
) -> Result<bool, ConnectFailure> {
    let timeline = Timeline::new(false);
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let mut input_open = true;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut interrupted = false;
    // The gateway's invoke id -> the call to answer.
    let mut waiting: HashMap<String, CallId> = HashMap::new();
    loop {
        tokio::select! {
            event = events.next() => {
                let Some(event) = event else { return Ok(false) };
                match &event {
                    Event::Message { message: OpenClawMessage::Hello(hello), .. } => {
                        keeper.hello(hello.device_token.as_ref());
                    }
                    Event::Call { id, message: OpenClawMessage::Invoke(invoke) } => {
                        if waiting.len() >= MAX_WAITING_INVOKES {
                            waiting.retain(|_, call| call.conn() == id.conn());
                        }
                        waiting.insert(invoke.id.clone(), *id);
                    }
                    _ => {}
                }
                show(&timeline, json, &event);
                if let Event::Stopped { reason } = event {
                    return Ok(stopped(&reason));
                }
            }
            line = stdin.next_line(), if input_open => match line {
                Ok(Some(line)) if line.trim().is_empty() => {}
                Ok(Some(line)) => read_line(&handle, &line, &mut waiting).await,
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

/// One stdin line: an answer to an invoke (it has `id` and `ok`), or a request (it has
/// `method`).
async fn read_line(handle: &Handle<OpenClaw>, line: &str, waiting: &mut HashMap<String, CallId>) {
    let value = match serde_json::from_str::<Value>(line) {
        Ok(value) => value,
        Err(e) => {
            eprintln!("ignored: not JSON ({e})");
            return;
        }
    };
    if let (Some(id), Some(ok)) = (value.get("id").and_then(Value::as_str), value.get("ok")) {
        let Some(call) = waiting.remove(id) else {
            eprintln!("ignored: no invoke {id} is waiting for an answer");
            return;
        };
        let answer = if ok.as_bool() == Some(true) {
            let payload = value
                .get("payload")
                .and_then(|p| RawValue::from_string(p.to_string()).ok());
            InvokeAnswer::Ok(payload)
        } else {
            let error = value.get("error").cloned().unwrap_or(Value::Null);
            InvokeAnswer::Error {
                code: error["code"].as_str().unwrap_or("UNAVAILABLE").to_owned(),
                message: error["message"].as_str().unwrap_or("failed").to_owned(),
            }
        };
        if let Err(e) = handle.answer(call, answer).await {
            eprintln!("answer to {id} not written: {e}");
        }
        return;
    }
    let Some(method) = value.get("method").and_then(Value::as_str) else {
        eprintln!(
            "ignored: a line is a request {{\"method\":..}} or an answer {{\"id\":..,\"ok\":..}}"
        );
        return;
    };
    let request = OpenClawRequest::new(
        method.to_owned(),
        value.get("params").cloned().unwrap_or(Value::Null),
    );
    let handle = handle.clone();
    let method = method.to_owned();
    tokio::spawn(async move {
        let outcome = handle.request(request, Duration::from_secs(30)).await;
        println!("{}", response_line(&method, outcome));
    });
}

/// A request's outcome as a JSON line.
fn response_line(
    method: &str,
    outcome: Result<Outcome<tether_core::Utf8Bytes>, tether_core::RequestError>,
) -> Value {
    match outcome {
        Ok(Outcome::Response(payload)) => {
            let payload = serde_json::from_str::<Value>(payload.as_str()).unwrap_or(Value::Null);
            json!({"event": "response", "method": method, "ok": true, "payload": payload})
        }
        Ok(Outcome::Remote(e)) => {
            json!({"event": "response", "method": method, "ok": false, "error": {"code": e.code, "message": e.message}})
        }
        Ok(other) => {
            json!({"event": "response", "method": method, "ok": false, "outcome": format!("{other:?}")})
        }
        Err(e) => {
            json!({"event": "response", "method": method, "ok": false, "refused": e.to_string()})
        }
    }
}

/// Invokes and pairing requests always go to stdout as JSON lines (a script reads them);
/// the rest as `tether connect` shows it.
fn show(timeline: &Timeline, json: bool, event: &Event<OpenClawMessage, tether_core::Utf8Bytes>) {
    let always_json = matches!(
        event,
        Event::Call { .. }
            | Event::Message {
                message: OpenClawMessage::PairingRequired(_),
                ..
            }
    );
    crate::connect::show(timeline, json || always_json, event);
}
