//! OpenClaw's frames, both ways, written once: the client profile, the server half
//! (`tether-gateway`) and the scripted test server all read and write them here.
//!
//! ```text
//! {"type":"req","id":"7","method":"health","params":{}}
//! {"type":"res","id":"7","ok":true,"payload":{..}}
//! {"type":"res","id":"7","ok":false,"error":{"code":"UNAVAILABLE","message":"..","retryAfterMs":500}}
//! {"type":"event","event":"tick","payload":{"ts":..},"seq":12}
//! ```
//!
//! Only the envelope is parsed; payloads and params stay raw JSON, shared with the frame's
//! buffer.

use std::borrow::Cow;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::event::RemoteError;
use crate::frame::Frame;
use crate::protocol::Malformed;

/// The envelope of a frame, either way (the gateway reads clients' with it too).
#[derive(Deserialize)]
pub struct Envelope<'a> {
    /// `req`, `res` or `event`.
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    /// A request's or response's id, raw.
    #[serde(borrow)]
    pub id: Option<&'a RawValue>,
    /// A response's verdict.
    pub ok: Option<bool>,
    /// A response's or event's payload, raw.
    #[serde(borrow)]
    pub payload: Option<&'a RawValue>,
    /// A refused response's error.
    pub error: Option<WireError>,
    /// An event's name.
    #[serde(borrow)]
    pub event: Option<Cow<'a, str>>,
    /// An event's sequence number, per connection.
    pub seq: Option<u64>,
    /// A request's method.
    #[serde(borrow)]
    pub method: Option<Cow<'a, str>>,
    /// A request's parameters, raw.
    #[serde(borrow)]
    pub params: Option<&'a RawValue>,
}

/// An error as frames carry it: `{code, message, details?, retryable?, retryAfterMs?}`.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub struct WireError {
    /// The code (`UNAVAILABLE`, `INVALID_REQUEST`...).
    pub code: Value,
    /// What went wrong, for people.
    #[serde(default)]
    pub message: String,
    /// What a client branches on.
    #[serde(default)]
    pub details: Option<ErrorDetails>,
    /// Whether trying again may help.
    #[serde(default)]
    pub retryable: Option<bool>,
    /// How long to wait before trying again.
    #[serde(default)]
    pub retry_after_ms: Option<u64>,
}

/// The structured part of an error: what a client branches on.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetails {
    /// The detail code (`AUTH_TOKEN_MISMATCH`, `PAIRING_REQUIRED`...).
    #[serde(default)]
    pub code: Option<String>,
    /// Why, as a stable word (`not-paired`, `startup-sidecars`...).
    #[serde(default)]
    pub reason: Option<String>,
    /// A pending pairing request's id.
    #[serde(default)]
    pub request_id: Option<String>,
    /// How long to wait before trying again.
    #[serde(default)]
    pub retry_after_ms: Option<u64>,
}

impl WireError {
    /// The top-level code as text; a code that is not a string keeps its JSON.
    pub fn code(&self) -> Cow<'_, str> {
        match &self.code {
            Value::String(s) => Cow::Borrowed(s),
            other => Cow::Owned(other.to_string()),
        }
    }

    /// The detail code (`AUTH_TOKEN_MISMATCH`, `PAIRING_REQUIRED`...), if any.
    pub fn detail_code(&self) -> Option<&str> {
        self.details.as_ref().and_then(|d| d.code.as_deref())
    }

    /// The wait the peer asked for, at the top level or in the details.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after_ms
            .or_else(|| self.details.as_ref().and_then(|d| d.retry_after_ms))
            .map(Duration::from_millis)
    }

    /// The error as the application sees it: the code, and the detail code when there is
    /// one (it says more: `INVALID_REQUEST` is many things, `AUTH_TOKEN_MISMATCH` one).
    pub fn to_remote(&self) -> RemoteError {
        let code = match self.detail_code() {
            Some(detail) if detail != self.code() => format!("{}/{detail}", self.code()),
            _ => self.code().into_owned(),
        };
        RemoteError {
            code,
            message: self.message.clone(),
        }
    }
}

/// An id as the client writes it: a JSON string.
pub fn string_id(id: &RawValue) -> Option<Cow<'_, str>> {
    serde_json::from_str::<Cow<'_, str>>(id.get()).ok()
}

/// `text` as a JSON string.
pub fn json_string(text: &str) -> String {
    Value::from(text).to_string()
}

// Client to server.

/// A request `{"type":"req","id","method","params"}` as JSON text; the caller makes it a
/// secret frame when it carries a credential (`connect`).
pub fn request(id: &str, method: &str, params: &Value) -> String {
    serde_json::json!({
        "type": "req",
        "id": id,
        "method": method,
        "params": params,
    })
    .to_string()
}

// Server to client, and what clients send a server.

/// A frame a client sends, as read by a server.
#[derive(Debug)]
pub enum ClientFrame<'a> {
    /// The `connect` request.
    Connect {
        /// Its params, raw: the server validates them strictly.
        params: Option<&'a RawValue>,
        /// Its id, raw.
        id: &'a RawValue,
    },
    /// A node's `node.invoke.result`: the answer to one of our invokes.
    InvokeResult {
        /// The request's own id, raw.
        id: &'a RawValue,
        /// The invoke it answers (`params.id`), when it is one of ours (a number).
        invoke: Option<u64>,
        /// The node's answer.
        answer: Result<InvokePayload<'a>, RemoteError>,
    },
    /// Any other request.
    Request {
        /// Its id, raw.
        id: &'a RawValue,
        /// The method.
        method: Cow<'a, str>,
        /// Its params, raw.
        params: Option<&'a RawValue>,
    },
    /// An event of the client's (a node's `node.event`, say).
    Event,
}

/// An invoke's result as a node sends it: raw JSON, or JSON text in `payloadJSON`.
#[derive(Debug)]
pub enum InvokePayload<'a> {
    /// `payload`, raw JSON.
    Raw(&'a str),
    /// `payloadJSON`: JSON as text.
    Text(String),
}

/// Reads a client's frame: a request (`connect`, `node.invoke.result`, any other) or an
/// event. Responses are no client's to send.
pub fn read_client(text: &str) -> Result<ClientFrame<'_>, Malformed> {
    let e: Envelope<'_> = serde_json::from_str(text).map_err(|e| Malformed::unreadable("", &e))?;
    match e.kind.as_ref() {
        "req" => {
            let id = e.id.ok_or("request without id")?;
            match e.method.as_deref().ok_or("request without method")? {
                "connect" => Ok(ClientFrame::Connect {
                    params: e.params,
                    id,
                }),
                "node.invoke.result" => read_invoke_result(id, e.params),
                _ => Ok(ClientFrame::Request {
                    id,
                    method: e.method.unwrap_or_default(),
                    params: e.params,
                }),
            }
        }
        "event" => Ok(ClientFrame::Event),
        other => Err(Malformed::new(format!(
            "unknown frame type ({} bytes)",
            other.len()
        ))),
    }
}

fn read_invoke_result<'a>(
    id: &'a RawValue,
    params: Option<&'a RawValue>,
) -> Result<ClientFrame<'a>, Malformed> {
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
    let p: Params<'_> = serde_json::from_str(params.get())
        .map_err(|e| Malformed::unreadable("node.invoke.result: ", &e))?;
    let answer = match (p.ok, p.payload_json, p.payload, p.error) {
        (true, Some(text), _, _) => Ok(InvokePayload::Text(text)),
        (true, None, payload, _) => Ok(InvokePayload::Raw(payload.map_or("null", RawValue::get))),
        (false, _, _, Some(error)) => Err(error.to_remote()),
        (false, _, _, None) => Err(RemoteError {
            code: "UNAVAILABLE".into(),
            message: "the node answered with neither a payload nor an error".into(),
        }),
    };
    Ok(ClientFrame::InvokeResult {
        id,
        invoke: p.id.parse::<u64>().ok(),
        answer,
    })
}

/// `connect.challenge` `{nonce, ts}`: the first frame on a socket.
pub fn challenge(nonce: &str, ts: u64) -> Frame {
    Frame::text(format!(
        "{{\"type\":\"event\",\"event\":\"connect.challenge\",\"payload\":{{\"nonce\":{},\"ts\":{ts}}}}}",
        json_string(nonce)
    ))
}

/// A response `ok` with `payload` (JSON text) to request `id` (raw JSON).
pub fn res_ok(id: &str, payload: &str) -> Frame {
    Frame::text(format!(
        "{{\"type\":\"res\",\"id\":{id},\"ok\":true,\"payload\":{payload}}}"
    ))
}

/// A response refusing request `id` (raw JSON) with `code`.
pub fn res_error(id: &str, code: &str, message: &str) -> Frame {
    res_error_details(id, code, message, None)
}

/// A refusal with the structured `details` clients branch on.
pub fn res_error_details(
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

/// What a gateway grants at `connect`, in `hello-ok`'s shape.
#[derive(Debug)]
pub struct Grant<'a> {
    /// The connection's id, as `server.connId`.
    pub conn_id: &'a str,
    /// The role granted.
    pub role: &'a str,
    /// The scopes granted.
    pub scopes: &'a [String],
    /// A device token issued to a paired device.
    pub device_token: Option<&'a str>,
    /// The methods served.
    pub methods: &'a [&'a str],
    /// The tick interval.
    pub tick: Duration,
    /// The largest frame accepted.
    pub max_payload: usize,
}

/// The `hello-ok` payload (JSON text) for `grant`.
pub fn hello_ok(grant: &Grant<'_>) -> String {
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

/// An event `name` numbered `seq` (per connection), its payload `payload` (JSON text).
pub fn event(seq: u64, name: &str, payload: &str) -> Frame {
    Frame::text(format!(
        "{{\"type\":\"event\",\"event\":{},\"payload\":{payload},\"seq\":{seq}}}",
        json_string(name)
    ))
}

/// A `tick` event `{ts}`.
pub fn tick(seq: u64, ts: u64) -> Frame {
    event(seq, "tick", &format!("{{\"ts\":{ts}}}"))
}

/// A `node.invoke.request` event: invoke `id` of `command` on `node`, its params as
/// JSON text in `paramsJSON`.
pub fn invoke_request(
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
