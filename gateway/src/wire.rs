//! The server side's frames: what clients send, read with only their envelope parsed, and
//! what the gateway writes.

use std::borrow::Cow;
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;

use tether_core::Frame;
use tether_core::RemoteError;
use tether_core::protocol::openclaw::wire::{Envelope, WireError};

/// Why a client frame could not be read. It never quotes the frame: a client's bytes may
/// be a secret (a token where an object was due), and reasons reach logs.
pub(crate) type Malformed = String;

/// What was wrong with a client's JSON, by kind and place only: serde's own message quotes
/// the offending value.
fn unreadable(context: &str, e: &serde_json::Error) -> Malformed {
    use serde_json::error::Category;
    let kind = match e.classify() {
        Category::Syntax => "not JSON",
        Category::Eof => "JSON cut short",
        Category::Data => "a field missing or of the wrong type",
        Category::Io => "unreadable",
    };
    format!("{context}{kind} (line {}, column {})", e.line(), e.column())
}

/// A discord client frame.
pub(crate) enum DiscordIn<'a> {
    Heartbeat,
    Identify {
        token: Option<Cow<'a, str>>,
        d: &'a RawValue,
    },
    Resume {
        token: Option<Cow<'a, str>>,
        session_id: Cow<'a, str>,
        seq: Option<u64>,
    },
    /// Presence updates, voice state, member requests: for the application.
    Application,
    Unknown(u64),
}

/// The discord opcodes a client may send.
const CLIENT_OPS: [u64; 6] = [1, 2, 3, 4, 6, 8];

pub(crate) fn read_discord(text: &str) -> Result<DiscordIn<'_>, Malformed> {
    #[derive(Deserialize)]
    struct Envelope<'a> {
        op: u64,
        #[serde(borrow)]
        d: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct Identify<'a> {
        #[serde(borrow)]
        token: Option<Cow<'a, str>>,
    }
    #[derive(Deserialize)]
    struct Resume<'a> {
        #[serde(borrow)]
        token: Option<Cow<'a, str>>,
        #[serde(borrow)]
        session_id: Cow<'a, str>,
        seq: Option<u64>,
    }
    let envelope: Envelope<'_> = serde_json::from_str(text).map_err(|e| unreadable("", &e))?;
    let d = envelope.d;
    match envelope.op {
        1 => Ok(DiscordIn::Heartbeat),
        2 => {
            let d = d.ok_or("identify without d")?;
            let identify: Identify<'_> =
                serde_json::from_str(d.get()).map_err(|e| unreadable("identify: ", &e))?;
            Ok(DiscordIn::Identify {
                token: identify.token,
                d,
            })
        }
        6 => {
            let d = d.ok_or("resume without d")?;
            let resume: Resume<'_> =
                serde_json::from_str(d.get()).map_err(|e| unreadable("resume: ", &e))?;
            Ok(DiscordIn::Resume {
                token: resume.token,
                session_id: resume.session_id,
                seq: resume.seq,
            })
        }
        op if CLIENT_OPS.contains(&op) => Ok(DiscordIn::Application),
        op => Ok(DiscordIn::Unknown(op)),
    }
}

pub(crate) fn hello(interval: Duration) -> Frame {
    Frame::text(format!(
        "{{\"op\":10,\"d\":{{\"heartbeat_interval\":{}}}}}",
        interval.as_millis()
    ))
}

pub(crate) fn heartbeat_ack() -> Frame {
    Frame::text(tether_core::Utf8Bytes::from_static("{\"op\":11}"))
}

pub(crate) fn invalid_session(resumable: bool) -> Frame {
    Frame::text(format!("{{\"op\":9,\"d\":{resumable}}}"))
}

/// `name` as a JSON string.
pub(crate) fn json_string(name: &str) -> String {
    serde_json::Value::from(name).to_string()
}

pub(crate) fn dispatch(seq: u64, name: &str, data: &str) -> Frame {
    Frame::text(format!(
        "{{\"op\":0,\"s\":{seq},\"t\":{},\"d\":{data}}}",
        json_string(name)
    ))
}

pub(crate) fn ready_data(session_id: &str, resume_url: Option<&str>) -> String {
    let mut d = serde_json::json!({ "v": 10, "session_id": session_id });
    if let Some(url) = resume_url {
        d["resume_gateway_url"] = url.into();
    }
    d.to_string()
}

/// An OpenClaw client frame.
pub(crate) enum OpenClawIn<'a> {
    Connect {
        params: Option<&'a RawValue>,
        id: &'a RawValue,
    },
    /// A node's `node.invoke.result`: the answer to one of our invokes.
    InvokeResult {
        id: &'a RawValue,
        invoke: Option<u64>,
        answer: Result<InvokePayload<'a>, RemoteError>,
    },
    /// Any other request.
    Request {
        id: &'a RawValue,
        method: Cow<'a, str>,
        params: Option<&'a RawValue>,
    },
    /// An event of the client's (a node's `node.event`, say).
    Event,
}

/// An invoke's result as a node sends it: raw JSON, or JSON text in `payloadJSON`.
pub(crate) enum InvokePayload<'a> {
    Raw(&'a str),
    Text(String),
}

pub(crate) fn read_openclaw(text: &str) -> Result<OpenClawIn<'_>, Malformed> {
    let e: Envelope<'_> = serde_json::from_str(text).map_err(|e| unreadable("", &e))?;
    match e.kind.as_ref() {
        "req" => {
            let id = e.id.ok_or("request without id")?;
            match e.method.as_deref().ok_or("request without method")? {
                "connect" => Ok(OpenClawIn::Connect {
                    params: e.params,
                    id,
                }),
                "node.invoke.result" => read_invoke_result(id, e.params),
                _ => Ok(OpenClawIn::Request {
                    id,
                    method: e.method.unwrap_or_default(),
                    params: e.params,
                }),
            }
        }
        "event" => Ok(OpenClawIn::Event),
        other => Err(format!("unknown frame type ({} bytes)", other.len())),
    }
}

fn read_invoke_result<'a>(
    id: &'a RawValue,
    params: Option<&'a RawValue>,
) -> Result<OpenClawIn<'a>, Malformed> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Params<'a> {
        #[serde(borrow)]
        id: Cow<'a, str>,
        ok: bool,
        #[serde(borrow, default)]
        payload: Option<&'a RawValue>,
        #[serde(default, rename = "payloadJSON")]
        payload_json: Option<String>,
        #[serde(default)]
        error: Option<WireError>,
    }
    let params = params.ok_or("node.invoke.result without params")?;
    let p: Params<'_> =
        serde_json::from_str(params.get()).map_err(|e| unreadable("node.invoke.result: ", &e))?;
    let answer = match (p.ok, p.payload_json, p.payload, p.error) {
        (true, Some(text), _, _) => Ok(InvokePayload::Text(text)),
        (true, None, payload, _) => Ok(InvokePayload::Raw(payload.map_or("null", RawValue::get))),
        (false, _, _, Some(error)) => Err(error.to_remote()),
        (false, _, _, None) => Err(RemoteError {
            code: "UNAVAILABLE".into(),
            message: "the node answered with neither a payload nor an error".into(),
        }),
    };
    Ok(OpenClawIn::InvokeResult {
        id,
        invoke: p.id.parse::<u64>().ok(),
        answer,
    })
}

pub(crate) fn challenge(nonce: &str, ts: u64) -> Frame {
    Frame::text(format!(
        "{{\"type\":\"event\",\"event\":\"connect.challenge\",\"payload\":{{\"nonce\":{},\"ts\":{ts}}}}}",
        json_string(nonce)
    ))
}

pub(crate) fn res_ok(id: &str, payload: &str) -> Frame {
    Frame::text(format!(
        "{{\"type\":\"res\",\"id\":{id},\"ok\":true,\"payload\":{payload}}}"
    ))
}

pub(crate) fn res_error(id: &str, code: &str, message: &str) -> Frame {
    res_error_details(id, code, message, None)
}

/// A refusal with the structured `details` clients branch on.
pub(crate) fn res_error_details(
    id: &str,
    code: &str,
    message: &str,
    details: Option<serde_json::Value>,
) -> Frame {
    let mut error = serde_json::json!({ "code": code, "message": message });
    if let Some(details) = details {
        error["details"] = details;
    }
    Frame::text(format!(
        "{{\"type\":\"res\",\"id\":{id},\"ok\":false,\"error\":{error}}}"
    ))
}

/// What the gateway grants at `connect`, in `hello-ok`'s shape.
pub(crate) struct Grant<'a> {
    pub(crate) conn_id: &'a str,
    pub(crate) role: &'a str,
    pub(crate) scopes: &'a [String],
    pub(crate) device_token: Option<&'a str>,
    pub(crate) methods: &'a [&'a str],
    pub(crate) tick: Duration,
    pub(crate) max_payload: usize,
}

pub(crate) fn hello_ok(grant: &Grant<'_>) -> String {
    let mut auth = serde_json::json!({ "role": grant.role, "scopes": grant.scopes });
    if let Some(token) = grant.device_token {
        auth["deviceToken"] = token.into();
    }
    serde_json::json!({
        "type": "hello-ok",
        "protocol": 4,
        "server": { "version": concat!("tether-", env!("CARGO_PKG_VERSION")), "connId": grant.conn_id },
        "features": { "methods": grant.methods, "events": ["tick", "shutdown", "node.invoke.request"] },
        "snapshot": {
            "presence": [],
            "health": {},
            "stateVersion": { "presence": 0, "health": 0 },
            "uptimeMs": 0,
        },
        "auth": auth,
        "policy": {
            "maxPayload": grant.max_payload,
            "maxBufferedBytes": grant.max_payload.saturating_mul(2),
            "tickIntervalMs": u64::try_from(grant.tick.as_millis()).unwrap_or(u64::MAX),
        },
    })
    .to_string()
}

pub(crate) fn event(seq: u64, name: &str, payload: &str) -> Frame {
    Frame::text(format!(
        "{{\"type\":\"event\",\"event\":{},\"payload\":{payload},\"seq\":{seq}}}",
        json_string(name)
    ))
}

pub(crate) fn tick(seq: u64, ts: u64) -> Frame {
    event(seq, "tick", &format!("{{\"ts\":{ts}}}"))
}

pub(crate) fn invoke_request(
    seq: u64,
    id: u64,
    node: &str,
    command: &str,
    params: &str,
    timeout: Duration,
) -> Frame {
    let payload = serde_json::json!({
        "id": id.to_string(),
        "nodeId": node,
        "command": command,
        "paramsJSON": params,
        "timeoutMs": u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
    });
    event(seq, "node.invoke.request", &payload.to_string())
}
