//! The OpenClaw server side of the gateway, as the real gateway enforces it: the challenge,
//! a `connect` validated field by field (unknown fields refused), the protocol range
//! negotiated, the shared token or a device token, the device's signed proof over this
//! connection's challenge, pairing, `hello-ok`; then requests (`health` and `status`
//! answered here, the application's methods passed on, others refused), events from
//! clients, and invoke results from nodes. Nodes (and operators with a device) are kept by
//! device id, so a device's new connection replaces its old one (S1).

use std::borrow::Cow;
use std::time::Instant;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tether_core::protocol::openclaw::SignedConnect;
use tether_core::{CloseFrame, ConnId, RemoteError, Utf8Bytes};

use super::devices::{self, ClientFields, PairingRequest, Proof, Standing};
use super::{AutoApprove, CloseWhy, Credentials, Gateway, GatewayEvent, PeerId};
use crate::registry::InvokeId;
use tether_core::protocol::openclaw::wire::{self, ClientFrame, InvokePayload};

/// The protocol version this gateway speaks, and the oldest a node may use.
const PROTOCOL: u32 = 4;
const MIN_NODE_PROTOCOL: u32 = 3;

/// The `client.id`s the real gateway knows.
const CLIENT_IDS: [&str; 17] = [
    "webchat-ui",
    "openclaw-control-ui",
    "openclaw-browser-copilot",
    "openclaw-tui",
    "webchat",
    "cli",
    "gateway-client",
    "openclaw-macos",
    "openclaw-linux",
    "openclaw-ios",
    "openclaw-watchos",
    "openclaw-android",
    "node-host",
    "openclaw-worker",
    "test",
    "fingerprint",
    "openclaw-probe",
];

/// The `client.mode`s it knows.
const CLIENT_MODES: [&str; 8] = [
    "webchat", "cli", "ui", "backend", "node", "worker", "probe", "test",
];

/// The methods answered by the gateway itself.
const BUILT_IN: [&str; 2] = ["health", "status"];

/// `connect`'s parameters, every field the real gateway's schema has, unknown ones refused.
/// Fields the gateway does not use are listed all the same, so that they are not refused.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ConnectParams<'a> {
    min_protocol: u32,
    max_protocol: u32,
    #[serde(borrow)]
    client: Client<'a>,
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    commands: Vec<String>,
    #[serde(default)]
    permissions: Option<serde_json::Map<String, Value>>,
    #[serde(borrow, default)]
    role: Option<Cow<'a, str>>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(borrow, default)]
    device: Option<Device<'a>>,
    #[serde(borrow, default)]
    auth: Option<Auth<'a>>,
    #[serde(default)]
    computer_use: Option<IgnoredAny>,
    #[serde(default)]
    worker_runs: Option<IgnoredAny>,
    #[serde(default)]
    path_env: Option<IgnoredAny>,
    #[serde(default)]
    model_catalog: Option<IgnoredAny>,
    #[serde(default)]
    locale: Option<IgnoredAny>,
    #[serde(default)]
    user_agent: Option<IgnoredAny>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Client<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    version: Cow<'a, str>,
    #[serde(borrow)]
    platform: Cow<'a, str>,
    #[serde(borrow)]
    mode: Cow<'a, str>,
    #[serde(borrow, default)]
    display_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    device_family: Option<Cow<'a, str>>,
    #[serde(default)]
    build_id: Option<IgnoredAny>,
    #[serde(default)]
    model_identifier: Option<IgnoredAny>,
    #[serde(default)]
    time_zone: Option<IgnoredAny>,
    #[serde(default)]
    instance_id: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Device<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    public_key: Cow<'a, str>,
    #[serde(borrow)]
    signature: Cow<'a, str>,
    signed_at: u64,
    #[serde(borrow)]
    nonce: Cow<'a, str>,
}

#[allow(dead_code)]
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Auth<'a> {
    #[serde(borrow, default)]
    token: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    bootstrap_token: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    device_token: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    password: Option<Cow<'a, str>>,
    #[serde(default)]
    approval_runtime_token: Option<IgnoredAny>,
    #[serde(default)]
    agent_runtime_identity_token: Option<IgnoredAny>,
}

/// A refused connect: the error answered, then the close, as the real gateway sends them.
struct Refusal {
    code: &'static str,
    message: String,
    details: Option<Value>,
    close: u16,
}

impl Refusal {
    fn new(code: &'static str, message: impl Into<String>, close: u16) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
            close,
        }
    }

    fn details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    fn auth(detail: &'static str, message: &'static str) -> Self {
        Self::new("INVALID_REQUEST", message, 1008).details(json!({ "code": detail }))
    }
}

/// What serde found wrong with a connect, by field name only: its own message for a value
/// of the wrong type quotes the value, which may be a token.
fn params_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let reason = if text.starts_with("unknown field") || text.starts_with("missing field") {
        text.split(", expected").next().unwrap_or("").to_owned()
    } else {
        "a field of the wrong type".to_owned()
    };
    format!("invalid connect params: {reason}")
}

/// A close frame's reason: at most 123 bytes on the wire (RFC 6455), cut at a character.
fn close_reason(text: &str) -> Utf8Bytes {
    let mut end = text.len().min(123);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Utf8Bytes::from(text[..end].to_owned())
}

/// A connect the gateway accepts: who it is and what it gets.
struct Admitted {
    peer: PeerId,
    role: String,
    scopes: Vec<String>,
    device_token: Option<String>,
}

impl Gateway {
    pub(super) fn openclaw_frame(
        &mut self,
        conn: ConnId,
        ready: Option<PeerId>,
        text: Utf8Bytes,
        now: Instant,
    ) {
        let frame = match wire::read_client(text.as_str()) {
            Ok(frame) => frame,
            Err(reason) => return self.bad_frame(conn, reason),
        };
        if ready.is_some() {
            self.registry.beat(conn, now);
        }
        match (frame, ready) {
            (ClientFrame::Connect { params, id }, None) => {
                let id = id.get().to_owned();
                match self.admit(conn, params) {
                    Ok(admitted) => self.connected(conn, &id, admitted, now),
                    Err(refusal) => self.refuse(conn, &id, refusal),
                }
            }
            (ClientFrame::Connect { id, .. }, Some(_)) => {
                let reply = wire::res_error(id.get(), "INVALID_REQUEST", "already connected");
                self.write(conn, reply);
            }
            (ClientFrame::Request { id, method, params }, Some(peer)) => {
                self.request(conn, peer, id, &method, params, &text, now);
            }
            (ClientFrame::Event, Some(peer)) => {
                self.events
                    .push_back(GatewayEvent::Message { peer, conn, text });
            }
            (ClientFrame::InvokeResult { id, invoke, answer }, Some(_)) => {
                let receipt = wire::res_ok(id.get(), "{\"ok\":true}");
                self.answer(conn, invoke, answer, &text);
                self.write(conn, receipt);
            }
            (ClientFrame::Request { id, .. }, None) => {
                let reply = wire::res_error(
                    id.get(),
                    "INVALID_REQUEST",
                    "invalid handshake: first request must be connect",
                );
                self.write(conn, reply);
                let frame =
                    CloseFrame::new(1008, "invalid handshake: first request must be connect");
                self.close_with(conn, CloseWhy::NotAuthenticated, frame);
            }
            (ClientFrame::Event | ClientFrame::InvokeResult { .. }, None) => {
                self.close(conn, CloseWhy::NotAuthenticated);
            }
        }
    }

    /// Decides a connect, in the real gateway's order: the parameters, the protocol, the
    /// role, the credentials, the device's proof, its pairing.
    fn admit(&mut self, conn: ConnId, params: Option<&RawValue>) -> Result<Admitted, Refusal> {
        let raw = params.map_or("null", RawValue::get);
        let p: ConnectParams<'_> = serde_json::from_str(raw)
            .map_err(|e| Refusal::new("INVALID_REQUEST", params_error(&e), 1008))?;
        let allowed = |list: &[&str], value: &str| list.contains(&value);
        if !allowed(&CLIENT_IDS, &p.client.id) {
            return Err(Refusal::new(
                "INVALID_REQUEST",
                "invalid connect params: at /client/id: must be equal to one of the allowed values",
                1008,
            ));
        }
        if !allowed(&CLIENT_MODES, &p.client.mode) {
            return Err(Refusal::new(
                "INVALID_REQUEST",
                "invalid connect params: at /client/mode: must be equal to one of the allowed values",
                1008,
            ));
        }
        let role = p.role.as_deref().unwrap_or("operator").to_owned();
        if role != "operator" && role != "node" {
            return Err(Refusal::new("INVALID_REQUEST", "invalid role", 1008));
        }
        let in_range = |v: u32| p.min_protocol <= v && v <= p.max_protocol;
        let node = role == "node" && p.client.mode == "node";
        if !(in_range(PROTOCOL) || (node && in_range(MIN_NODE_PROTOCOL))) {
            return Err(
                Refusal::new("INVALID_REQUEST", "protocol mismatch", 1002).details(json!({
                    "code": "PROTOCOL_MISMATCH",
                    "clientMinProtocol": p.min_protocol,
                    "clientMaxProtocol": p.max_protocol,
                    "expectedProtocol": PROTOCOL,
                })),
            );
        }
        let scopes = p.scopes.clone().unwrap_or_default();
        let auth = p.auth.unwrap_or_default();
        let shared = auth.token.as_deref().or(auth.password.as_deref());
        let signed_token = auth
            .token
            .as_deref()
            .or(auth.device_token.as_deref())
            .or(auth.bootstrap_token.as_deref())
            .unwrap_or("");
        // The shared secret, when presented, decides through the authenticator; a device's
        // own token in its place (as `openclaw-node` sends it) is taken for a device token.
        let device_token_in_token = |devices: &devices::Devices, token: &str| {
            p.device
                .as_ref()
                .is_some_and(|d| devices.token_matches(&d.id, &role, token))
        };
        let auth_peer = match shared {
            Some(secret) if device_token_in_token(&self.devices, secret) => None,
            Some(secret) => {
                let credentials = Credentials {
                    conn,
                    token: Some(secret),
                    payload: raw,
                };
                Some(self.authenticate(&credentials).map_err(|_| {
                    Refusal::auth(
                        "AUTH_TOKEN_MISMATCH",
                        "unauthorized: gateway token mismatch",
                    )
                })?)
            }
            None if auth.device_token.is_none() => {
                return Err(Refusal::auth(
                    "AUTH_TOKEN_MISSING",
                    "unauthorized: gateway token missing",
                ));
            }
            None => None,
        };
        let Some(device) = p.device else {
            if role == "node" {
                return Err(Refusal::new("NOT_PAIRED", "device identity required", 1008)
                    .details(json!({ "code": "DEVICE_IDENTITY_REQUIRED" })));
            }
            let Some(peer) = auth_peer else {
                return Err(Refusal::auth(
                    "AUTH_DEVICE_TOKEN_MISMATCH",
                    "unauthorized: device token mismatch",
                ));
            };
            return Ok(Admitted {
                peer,
                role,
                scopes,
                device_token: None,
            });
        };
        let proof = Proof {
            id: &device.id,
            public_key: &device.public_key,
            signature: &device.signature,
            signed_at: device.signed_at,
            nonce: &device.nonce,
        };
        let challenge = self
            .conns
            .get(&conn)
            .and_then(|c| c.challenge.clone())
            .ok_or_else(|| Refusal::auth("DEVICE_AUTH_NONCE_MISMATCH", "device nonce mismatch"))?;
        let signed = SignedConnect {
            device_id: &device.id,
            client_id: &p.client.id,
            client_mode: &p.client.mode,
            role: &role,
            scopes: &scopes,
            signed_at: device.signed_at,
            token: signed_token,
            nonce: &device.nonce,
            platform: &p.client.platform,
            device_family: p.client.device_family.as_deref().unwrap_or(""),
        };
        if let Err(e) = devices::verify(&proof, &challenge, &signed) {
            return Err(Refusal::new("INVALID_REQUEST", e.to_string(), 1008)
                .details(json!({ "code": e.detail_code(), "reason": e.reason() })));
        }
        if auth_peer.is_none() {
            // A device token alone: it must be this device's, for this role.
            let token = shared.or(auth.device_token.as_deref()).unwrap_or("");
            if !self.devices.token_matches(&device.id, &role, token) {
                return Err(Refusal::auth(
                    "AUTH_DEVICE_TOKEN_MISMATCH",
                    "unauthorized: device token mismatch",
                ));
            }
        }
        let client = ClientFields {
            id: &p.client.id,
            mode: &p.client.mode,
            platform: &p.client.platform,
            display_name: p.client.display_name.as_deref(),
            commands: &p.commands,
        };
        let token = self.pair(conn, PairingRequest::new(&proof, &role, client))?;
        Ok(Admitted {
            peer: PeerId::from(device.id.as_ref()),
            role,
            scopes,
            device_token: Some(token),
        })
    }

    /// The device's token for its role: it is paired, or pairs now (auto-approval), or
    /// waits for the application, which learns of it once.
    fn pair(&mut self, conn: ConnId, request: PairingRequest) -> Result<String, Refusal> {
        let random = || Refusal::new("UNAVAILABLE", "gateway cannot issue tokens now", 1013);
        let (pending, new) = match self.devices.standing(request).ok_or_else(random)? {
            (Standing::Paired { token }, _) => return Ok(token),
            (Standing::Pending(pending), new) => (pending, new),
        };
        let loopback = self.conns.get(&conn).is_some_and(|c| c.loopback);
        let auto = match self.config.auto_approve {
            AutoApprove::Always => true,
            AutoApprove::Loopback => loopback,
            AutoApprove::Never => false,
        };
        if auto {
            if let Some(approved) = self.devices.approve(&pending.request_id) {
                self.events
                    .push_back(GatewayEvent::Paired(approved.clone()));
                if let Some((Standing::Paired { token }, _)) = self.devices.standing(approved) {
                    return Ok(token);
                }
            }
            return Err(random());
        }
        if new {
            self.events
                .push_back(GatewayEvent::PairingRequested(pending.clone()));
        }
        let message = "pairing required: device is not approved yet";
        Err(Refusal {
            code: "NOT_PAIRED",
            message: message.to_owned(),
            // `pauseReconnect: false`: the real node host stops reconnecting on a pairing
            // refusal without it, and would never see the approval.
            details: Some(json!({
                "code": "PAIRING_REQUIRED",
                "reason": "not-paired",
                "recommendedNextStep": "wait_then_retry",
                "pauseReconnect": false,
                "requestId": pending.request_id,
                "deviceId": pending.device_id,
                "requestedRole": pending.role,
            })),
            close: 1008,
        })
    }

    fn connected(&mut self, conn: ConnId, id: &str, admitted: Admitted, now: Instant) {
        let mut methods: Vec<&str> = BUILT_IN.to_vec();
        methods.extend(self.config.methods.iter().map(String::as_str));
        let grant = wire::Grant {
            conn_id: &conn.to_string(),
            role: &admitted.role,
            scopes: &admitted.scopes,
            device_token: admitted.device_token.as_deref(),
            methods: &methods,
            tick: self.config.heartbeat_interval,
            max_payload: self.config.max_message,
        };
        let hello = wire::hello_ok(&grant);
        self.write(conn, wire::res_ok(id, &hello));
        if let Some(state) = self.conns.get_mut(&conn) {
            state.role = Some(if admitted.role == "node" {
                "node"
            } else {
                "operator"
            });
        }
        self.ready(conn, admitted.peer, now);
    }

    fn refuse(&mut self, conn: ConnId, id: &str, refusal: Refusal) {
        let reply =
            wire::res_error_details(id, refusal.code, &refusal.message, refusal.details.clone());
        self.write(conn, reply);
        self.stats.rejected += 1;
        let reason = match refusal
            .details
            .as_ref()
            .and_then(|d| d["requestId"].as_str())
        {
            Some(request) => format!("{} (requestId: {request})", refusal.message),
            None => refusal.message,
        };
        let frame = CloseFrame {
            code: refusal.close,
            reason: close_reason(&reason),
        };
        self.close_with(conn, CloseWhy::Rejected, frame);
    }

    /// A request of a ready client: the gateway's own methods, the application's, or an
    /// unknown method refused.
    #[allow(clippy::too_many_arguments)]
    fn request(
        &mut self,
        conn: ConnId,
        peer: PeerId,
        id: &RawValue,
        method: &str,
        params: Option<&RawValue>,
        text: &Utf8Bytes,
        now: Instant,
    ) {
        let id = id.get();
        match method {
            "health" => {
                let health = json!({
                    "ok": true,
                    "ts": self.clock_ms(now),
                    "connections": self.conns.len(),
                });
                self.write(conn, wire::res_ok(id, &health.to_string()));
            }
            "status" => {
                let status = json!({
                    "ok": true,
                    "server": concat!("tether-", env!("CARGO_PKG_VERSION")),
                    "connections": self.conns.len(),
                    "pendingInvokes": self.registry.pending_invokes(),
                    "pendingPairings": self.devices.pending().count(),
                });
                self.write(conn, wire::res_ok(id, &status.to_string()));
            }
            // A node's own reports (`node.event`, `node.skills.update`...): taken, and
            // passed to the application as they are.
            m if m.starts_with("node.") && self.role_of(conn) == Some("node") => {
                self.write(conn, wire::res_ok(id, "{\"ok\":true}"));
                self.events.push_back(GatewayEvent::Message {
                    peer,
                    conn,
                    text: text.clone(),
                });
            }
            m if self.config.methods.contains(m) => {
                let params =
                    params.map_or_else(|| Utf8Bytes::from_static("null"), |p| text.share(p.get()));
                self.events.push_back(GatewayEvent::Request {
                    peer,
                    conn,
                    id: id.to_owned(),
                    method: m.to_owned(),
                    params,
                });
            }
            m => {
                let message = format!("unknown method: {m}");
                self.write(conn, wire::res_error(id, "INVALID_REQUEST", &message));
            }
        }
    }

    pub(super) fn answer(
        &mut self,
        conn: ConnId,
        invoke: Option<u64>,
        answer: Result<InvokePayload<'_>, RemoteError>,
        text: &Utf8Bytes,
    ) {
        let answer = answer.map(|payload| match payload {
            InvokePayload::Raw(raw) => text.share(raw),
            InvokePayload::Text(json) => Utf8Bytes::from(json),
        });
        // An id that is no number of ours can only be stray: the registry counts it.
        let id = InvokeId::from_wire(invoke.unwrap_or(0));
        self.registry.result(conn, id, answer);
    }
}
