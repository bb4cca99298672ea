//! The OpenClaw gateway protocol (protocol 4, and 3 for nodes), as operator and as node.
//!
//! ```text
//! gateway: {"type":"event","event":"connect.challenge","payload":{"nonce":"..","ts":1737264000000}}
//! client:  {"type":"req","id":"connect","method":"connect","params":{"minProtocol":3,
//!           "maxProtocol":4,"client":{..},"role":"node","scopes":[],"caps":[],
//!           "commands":["tether.echo"],"permissions":{},"auth":{"token":".."},
//!           "device":{"id":"..","publicKey":"..","signature":"..","signedAt":..,"nonce":".."}}}
//! gateway: {"type":"res","id":"connect","ok":true,"payload":{"type":"hello-ok",..}}
//! gateway: {"type":"event","event":"tick","payload":{"ts":..},"seq":1}
//! gateway: {"type":"event","event":"node.invoke.request","payload":{"id":"..","nodeId":"..",
//!           "command":"tether.echo","paramsJSON":"{..}","timeoutMs":30000},"seq":2}
//! client:  {"type":"req","id":"answer-1","method":"node.invoke.result",
//!           "params":{"id":"..","nodeId":"..","ok":true,"payload":{..}}}
//! ```
//!
//! The handshake waits for the challenge (the machine's hello deadline bounds it), signs
//! it with the device identity, and is ready at `hello-ok`. Liveness is the gateway's
//! `tick`: silence for twice `policy.tickIntervalMs` is a dead peer, left with close 4000
//! "tick timeout" as OpenClaw's own client does. Event sequences are per connection and
//! count ticks. A refused connect is judged by [`ConnectVerdict`], a close by
//! [`CloseVerdict`]. A node's invokes are calls bound to their connection
//! ([`Client::answer`](crate::Client::answer)); one left unanswered is answered with an
//! error before its `timeoutMs`.

mod hello;
mod identity;
mod verdict;
pub mod wire;

use std::borrow::Cow;
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::error::ConfigError;
use crate::event::{ProtocolError, RemoteError, RequestId};
use crate::frame::{CloseFrame, Frame, Utf8Bytes};
use crate::input::CloseCause;
use crate::protocol::discord::Token;
use crate::protocol::{
    CloseClass, CloseIntent, InSequence, Inbound, Liveness, OnOpen, Protocol, Refusal, Sequence,
};

pub use hello::{DEFAULT_TICK_INTERVAL, HelloOk, Policy};
pub use identity::{DeviceIdentity, IdentityError, SignedConnect};
pub use verdict::{CloseVerdict, ConnectVerdict, PAIRING_RETRY};
use wire::{Envelope, WireError};

/// The protocol versions this profile speaks: 4, and 3 for nodes (the gateway's N-1 node
/// window).
pub const PROTOCOLS: (u32, u32) = (3, 4);

/// The role a connection asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A control-plane client: requests and events.
    Operator,
    /// A capability host: the gateway invokes its commands.
    Node,
}

impl Role {
    /// The role as the protocol names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Node => "node",
        }
    }
}

/// Who the client says it is, from the gateway's allowed lists (`client.id` such as `cli`
/// or `node-host`, `client.mode` such as `cli` or `node`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// `client.id`.
    pub id: String,
    /// `client.mode`.
    pub mode: String,
    /// `client.version`.
    pub version: String,
    /// `client.platform` (signed, lowercased, into the device signature).
    pub platform: String,
    /// `client.deviceFamily`, if any (signed too).
    pub device_family: Option<String>,
    /// `client.displayName`, if any.
    pub display_name: Option<String>,
}

impl ClientInfo {
    /// The identity OpenClaw's own clients use for `role`: `cli`/`cli` for an operator,
    /// `node-host`/`node` for a node, this crate's version, this system's platform.
    pub fn for_role(role: Role) -> Self {
        let (id, mode) = match role {
            Role::Operator => ("cli", "cli"),
            Role::Node => ("node-host", "node"),
        };
        Self {
            id: id.into(),
            mode: mode.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            platform: std::env::consts::OS.into(),
            device_family: None,
            display_name: None,
        }
    }
}

/// A request to the gateway: a method and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenClawRequest {
    /// The method name.
    pub method: Cow<'static, str>,
    /// The parameters (`Value::Null` sends `{}`).
    pub params: Value,
}

impl OpenClawRequest {
    /// A request of `method` with `params`.
    pub fn new(method: impl Into<Cow<'static, str>>, params: Value) -> Self {
        Self {
            method: method.into(),
            params,
        }
    }
}

/// An event of the gateway's, with its raw payload and its sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenClawEvent {
    /// The event name (`tick`, `presence`, `shutdown`, `agent`, `chat`...).
    pub name: Utf8Bytes,
    /// The payload, raw JSON (`null` when absent).
    pub payload: Utf8Bytes,
    /// The sequence number, per connection.
    pub seq: Option<u64>,
}

/// A `node.invoke.request`: the gateway asks this node to run a command. Answer it with
/// [`Client::answer`](crate::Client::answer) and an [`InvokeAnswer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInvoke {
    /// The invoke's id.
    pub id: String,
    /// The node addressed (this one).
    pub node_id: String,
    /// The command.
    pub command: String,
    /// The parameters, as the JSON text the gateway sent, if any.
    pub params_json: Option<String>,
    /// How long the gateway waits for the answer.
    pub timeout: Duration,
    /// The caller's idempotency key, if any.
    pub idempotency_key: Option<String>,
}

/// A pairing the gateway waits for someone to approve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingRequired {
    /// The gateway's error.
    pub error: RemoteError,
    /// The pending request's id, to approve it by.
    pub request_id: Option<String>,
    /// Why (`not-paired`, `role-upgrade`, `scope-upgrade`, `metadata-upgrade`).
    pub reason: Option<String>,
}

/// What the gateway sent the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenClawMessage {
    /// The connection is up: what the gateway granted.
    Hello(Box<HelloOk>),
    /// An event.
    Event(OpenClawEvent),
    /// An invoke of this node's (arrives as [`Event::Call`](crate::Event::Call)).
    Invoke(NodeInvoke),
    /// The device waits for approval. Reported once per pairing request; the profile keeps
    /// asking at the pairing pace.
    PairingRequired(PairingRequired),
}

/// How the application answers an invoke.
#[derive(Debug, Clone)]
pub enum InvokeAnswer {
    /// The command ran: its result, raw JSON (`None`: no payload).
    Ok(Option<Box<RawValue>>),
    /// It failed.
    Error {
        /// An error code (`UNAVAILABLE`, `INVALID_REQUEST`...).
        code: String,
        /// What went wrong.
        message: String,
    },
}

/// The OpenClaw profile.
#[derive(Debug, Clone)]
pub struct OpenClaw {
    role: Role,
    client: ClientInfo,
    scopes: Vec<String>,
    caps: Vec<String>,
    commands: Vec<String>,
    permissions: Map<String, Value>,
    token: Option<Token>,
    password: Option<Token>,
    device_token: Option<Token>,
    identity: Option<DeviceIdentity>,
    protocols: (u32, u32),
    pairing_retry: (Duration, Duration),
    // Learnt from the gateway, kept across connections until it says otherwise:
    max_payload: Option<usize>,
    pairing_reported: Option<String>,
    // Per connection:
    challenge: Option<Challenge>,
    tick: Option<Duration>,
    sequence: Sequence,
    restart_hint: Option<Duration>,
    answers_sent: u64,
    pending_error: Option<ProtocolError>,
}

#[derive(Debug, Clone)]
struct Challenge {
    nonce: String,
    ts: u64,
}

/// Settings of the OpenClaw profile; [`build`](Self::build) checks them.
#[derive(Debug, Clone)]
pub struct OpenClawBuilder {
    profile: OpenClaw,
}

impl OpenClaw {
    /// A profile connecting as `role` with the device `identity`. Operators ask for
    /// `operator.read` and `operator.write` unless told otherwise.
    pub fn builder(role: Role, identity: DeviceIdentity) -> OpenClawBuilder {
        let scopes = match role {
            Role::Operator => vec!["operator.read".into(), "operator.write".into()],
            Role::Node => Vec::new(),
        };
        OpenClawBuilder {
            profile: Self {
                role,
                client: ClientInfo::for_role(role),
                scopes,
                caps: Vec::new(),
                commands: Vec::new(),
                permissions: Map::new(),
                token: None,
                password: None,
                device_token: None,
                identity: Some(identity),
                protocols: PROTOCOLS,
                pairing_retry: PAIRING_RETRY,
                max_payload: None,
                pairing_reported: None,
                challenge: None,
                tick: None,
                sequence: Sequence::default(),
                restart_hint: None,
                answers_sent: 0,
                pending_error: None,
            },
        }
    }

    /// The device token the gateway issued, kept for the next connect: store it with the
    /// identity to connect without the shared token next time.
    pub fn device_token(&self) -> Option<&Token> {
        self.device_token.as_ref()
    }

    /// The device identity.
    pub fn identity(&self) -> Option<&DeviceIdentity> {
        self.identity.as_ref()
    }

    /// The role asked for.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The credentials as the reference client picks them: the shared token or password
    /// when given; the device token otherwise. The signature binds the token presented.
    fn auth(&self) -> (Map<String, Value>, &str) {
        let mut auth = Map::new();
        if let Some(token) = &self.token {
            auth.insert("token".into(), Value::from(token.expose()));
        }
        if let Some(password) = &self.password {
            auth.insert("password".into(), Value::from(password.expose()));
        }
        let device_token = match (&self.token, &self.password, &self.device_token) {
            (None, None, Some(device_token)) => {
                auth.insert("deviceToken".into(), Value::from(device_token.expose()));
                Some(device_token)
            }
            _ => None,
        };
        let signed = self
            .token
            .as_ref()
            .or(device_token)
            .map_or("", Token::expose);
        (auth, signed)
    }

    fn connect_frame(&self) -> Option<Frame> {
        let challenge = self.challenge.as_ref()?;
        let (auth, signed_token) = self.auth();
        let mut client = Map::new();
        client.insert("id".into(), Value::from(self.client.id.as_str()));
        client.insert("version".into(), Value::from(self.client.version.as_str()));
        client.insert(
            "platform".into(),
            Value::from(self.client.platform.as_str()),
        );
        client.insert("mode".into(), Value::from(self.client.mode.as_str()));
        if let Some(family) = &self.client.device_family {
            client.insert("deviceFamily".into(), Value::from(family.as_str()));
        }
        if let Some(name) = &self.client.display_name {
            client.insert("displayName".into(), Value::from(name.as_str()));
        }
        let mut params = Map::new();
        params.insert("minProtocol".into(), Value::from(self.protocols.0));
        params.insert("maxProtocol".into(), Value::from(self.protocols.1));
        params.insert("client".into(), Value::Object(client));
        params.insert("role".into(), Value::from(self.role.as_str()));
        params.insert("scopes".into(), json!(self.scopes));
        params.insert("caps".into(), json!(self.caps));
        params.insert("commands".into(), json!(self.commands));
        params.insert(
            "permissions".into(),
            Value::Object(self.permissions.clone()),
        );
        if !auth.is_empty() {
            params.insert("auth".into(), Value::Object(auth));
        }
        if let Some(identity) = &self.identity {
            let signed = identity::SignedConnect {
                device_id: identity.id(),
                client_id: &self.client.id,
                client_mode: &self.client.mode,
                role: self.role.as_str(),
                scopes: &self.scopes,
                signed_at: challenge.ts,
                token: signed_token,
                nonce: &challenge.nonce,
                platform: &self.client.platform,
                device_family: self.client.device_family.as_deref().unwrap_or(""),
            };
            params.insert(
                "device".into(),
                json!({
                    "id": identity.id(),
                    "publicKey": identity.public_key(),
                    "signature": identity.sign(&signed.payload_v3()),
                    "signedAt": challenge.ts,
                    "nonce": challenge.nonce,
                }),
            );
        }
        let frame = wire::request(CONNECT_ID, "connect", &Value::Object(params));
        Some(Frame::Text(Utf8Bytes::secret(frame)))
    }

    fn response(
        &mut self,
        envelope: Envelope<'_>,
        text: &Utf8Bytes,
    ) -> Inbound<OpenClawMessage, Utf8Bytes> {
        let Some(id) = envelope.id.and_then(wire::string_id) else {
            return error("response without a string id");
        };
        let result = match (envelope.ok, envelope.error) {
            (Some(true), _) => Ok(envelope
                .payload
                .map_or_else(|| Utf8Bytes::from_static("null"), |p| text.share(p.get()))),
            (Some(false), Some(e)) => Err(e),
            _ => return error("response without ok, or an error without details"),
        };
        if id == CONNECT_ID {
            return match result {
                Ok(payload) => self.connected(&payload),
                Err(e) => self.refused(&e),
            };
        }
        if id.starts_with(ANSWER_ID) {
            // The gateway's receipt for an invoke's answer: only a refusal is news.
            return match result {
                Ok(_) => Inbound::Ignored,
                Err(e) => error(format!("node.invoke.result refused: {}", e.to_remote())),
            };
        }
        match id.parse::<u64>() {
            Ok(n) => Inbound::Response {
                id: RequestId::new(n),
                result: result.map_err(|e| e.to_remote()),
            },
            Err(_) => error("response to an id never sent"),
        }
    }

    fn connected(&mut self, payload: &Utf8Bytes) -> Inbound<OpenClawMessage, Utf8Bytes> {
        let hello = match HelloOk::parse(payload) {
            Ok(hello) => hello,
            Err(reason) => return Inbound::Error(ProtocolError::fatal(reason)),
        };
        self.tick = Some(hello.policy.tick_interval);
        self.max_payload = hello.policy.max_payload;
        self.pairing_reported = None;
        if let Some(token) = &hello.device_token {
            self.device_token = Some(token.clone());
        }
        Inbound::Ready {
            resumed: false,
            message: Some(OpenClawMessage::Hello(Box::new(hello))),
        }
    }

    fn refused(&mut self, error: &WireError) -> Inbound<OpenClawMessage, Utf8Bytes> {
        let remote = error.to_remote();
        let refusal = match verdict::connect_verdict(error) {
            ConnectVerdict::RetryAfterHint => Refusal::Retry {
                error: remote,
                after: error.retry_after(),
            },
            ConnectVerdict::Retry | ConnectVerdict::RetryFreshChallenge => Refusal::Retry {
                error: remote,
                after: None,
            },
            ConnectVerdict::AwaitApproval => {
                let details = error.details.clone().unwrap_or_default();
                let key = details.request_id.clone().unwrap_or_default();
                let first = self.pairing_reported.as_deref() != Some(key.as_str());
                self.pairing_reported = Some(key);
                let message = first.then(|| {
                    OpenClawMessage::PairingRequired(PairingRequired {
                        error: remote.clone(),
                        request_id: details.request_id,
                        reason: details.reason,
                    })
                });
                return Inbound::Refused {
                    refusal: Refusal::Await {
                        error: remote,
                        wait: self.pairing_retry,
                    },
                    message,
                };
            }
            ConnectVerdict::ForgetDeviceToken => {
                self.device_token = None;
                if self.token.is_some() || self.password.is_some() {
                    Refusal::Retry {
                        error: remote,
                        after: None,
                    }
                } else {
                    Refusal::Stop(remote)
                }
            }
            ConnectVerdict::Stop => Refusal::Stop(remote),
        };
        Inbound::Refused {
            refusal,
            message: None,
        }
    }

    fn event(
        &mut self,
        envelope: Envelope<'_>,
        text: &Utf8Bytes,
    ) -> Inbound<OpenClawMessage, Utf8Bytes> {
        let Some(name) = envelope.event else {
            return error("event without a name");
        };
        if name == "connect.challenge" {
            return self.on_challenge(envelope.payload);
        }
        if let Some(seq) = envelope.seq {
            match self.sequence.advance(seq, "event") {
                InSequence::Next => {}
                InSequence::Gap(gap) => self.pending_error = Some(gap),
                InSequence::Stale(stale) => return Inbound::Error(stale),
            }
        }
        let payload = envelope.payload;
        match name.as_ref() {
            "node.invoke.request" => return self.invoke(payload),
            "shutdown" => self.restart_hint = restart_expected(payload),
            _ => {}
        }
        let name = match name {
            Cow::Borrowed(name) => text.share(name),
            Cow::Owned(name) => Utf8Bytes::from(name),
        };
        let payload =
            payload.map_or_else(|| Utf8Bytes::from_static("null"), |p| text.share(p.get()));
        Inbound::Message(OpenClawMessage::Event(OpenClawEvent {
            name,
            payload,
            seq: envelope.seq,
        }))
    }

    fn on_challenge(&mut self, payload: Option<&RawValue>) -> Inbound<OpenClawMessage, Utf8Bytes> {
        #[derive(Deserialize)]
        struct Wire {
            nonce: String,
            ts: u64,
        }
        if self.challenge.is_some() {
            return error("a second connect.challenge on one connection");
        }
        match payload.map(|p| serde_json::from_str::<Wire>(p.get())) {
            Some(Ok(Wire { nonce, ts })) if !nonce.is_empty() => {
                self.challenge = Some(Challenge { nonce, ts });
                Inbound::Hello
            }
            _ => Inbound::Error(ProtocolError::fatal(
                "connect.challenge without a nonce and a non-negative integer ts",
            )),
        }
    }

    fn invoke(&mut self, payload: Option<&RawValue>) -> Inbound<OpenClawMessage, Utf8Bytes> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire {
            id: String,
            node_id: String,
            command: String,
            #[serde(default, rename = "paramsJSON")]
            params_json: Option<String>,
            #[serde(default)]
            timeout_ms: Option<u64>,
            #[serde(default)]
            idempotency_key: Option<String>,
        }
        let Some(Ok(wire)) = payload.map(|p| serde_json::from_str::<Wire>(p.get())) else {
            return error("node.invoke.request without id, nodeId and command");
        };
        let timeout = wire
            .timeout_ms
            .map_or(DEFAULT_INVOKE_TIMEOUT, Duration::from_millis)
            .min(crate::timer::MAX_DELAY);
        let key = json!({ "id": wire.id, "nodeId": wire.node_id }).to_string();
        Inbound::Call {
            key: Utf8Bytes::from(key),
            answer_within: timeout,
            message: OpenClawMessage::Invoke(NodeInvoke {
                id: wire.id,
                node_id: wire.node_id,
                command: wire.command,
                params_json: wire.params_json,
                timeout,
                idempotency_key: wire.idempotency_key,
            }),
        }
    }

    fn result_frame(&mut self, call: &Utf8Bytes, answer: InvokeAnswer) -> Option<Frame> {
        let Ok(Value::Object(mut params)) = serde_json::from_str::<Value>(call.as_str()) else {
            return None;
        };
        match answer {
            InvokeAnswer::Ok(payload) => {
                params.insert("ok".into(), Value::Bool(true));
                if let Some(payload) = payload {
                    params.insert("payloadJSON".into(), Value::from(payload.get()));
                }
            }
            InvokeAnswer::Error { code, message } => {
                params.insert("ok".into(), Value::Bool(false));
                params.insert("error".into(), json!({ "code": code, "message": message }));
            }
        }
        self.answers_sent += 1;
        let id = format!("{ANSWER_ID}{}", self.answers_sent);
        let frame = wire::request(&id, "node.invoke.result", &Value::Object(params));
        Some(Frame::text(frame))
    }
}

/// The `connect` request's id.
const CONNECT_ID: &str = "connect";
/// The prefix of the ids of invoke answers (`answer-1`, ...).
const ANSWER_ID: &str = "answer-";
/// The gateway's invoke timeout when it names none.
const DEFAULT_INVOKE_TIMEOUT: Duration = Duration::from_secs(30);

fn restart_expected(payload: Option<&RawValue>) -> Option<Duration> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Wire {
        restart_expected_ms: Option<u64>,
    }
    let wire: Wire = serde_json::from_str(payload?.get()).ok()?;
    wire.restart_expected_ms.map(Duration::from_millis)
}

fn error(reason: impl Into<Cow<'static, str>>) -> Inbound<OpenClawMessage, Utf8Bytes> {
    Inbound::Error(ProtocolError::new(reason))
}

impl OpenClawBuilder {
    /// Who the client says it is (default: [`ClientInfo::for_role`]).
    pub fn client(mut self, client: ClientInfo) -> Self {
        self.profile.client = client;
        self
    }

    /// The scopes asked for.
    pub fn scopes<S: Into<String>>(mut self, scopes: impl IntoIterator<Item = S>) -> Self {
        self.profile.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// A node's capability categories (`camera`, `canvas`...).
    pub fn caps<S: Into<String>>(mut self, caps: impl IntoIterator<Item = S>) -> Self {
        self.profile.caps = caps.into_iter().map(Into::into).collect();
        self
    }

    /// A node's commands: the only ones the gateway may invoke.
    pub fn commands<S: Into<String>>(mut self, commands: impl IntoIterator<Item = S>) -> Self {
        self.profile.commands = commands.into_iter().map(Into::into).collect();
        self
    }

    /// A node's permission toggles.
    pub fn permissions(mut self, permissions: Map<String, Value>) -> Self {
        self.profile.permissions = permissions;
        self
    }

    /// The gateway's shared token (`auth.token`).
    pub fn token(mut self, token: Token) -> Self {
        self.profile.token = Some(token);
        self
    }

    /// The gateway's shared password (`auth.password`).
    pub fn password(mut self, password: Token) -> Self {
        self.profile.password = Some(password);
        self
    }

    /// A device token kept from an earlier `hello-ok`: used when no shared token or
    /// password is given.
    pub fn device_token(mut self, token: Token) -> Self {
        self.profile.device_token = Some(token);
        self
    }

    /// Connect with no device identity: only the gateway's trusted local backend clients
    /// may, and their scopes are cleared.
    pub fn without_device(mut self) -> Self {
        self.profile.identity = None;
        self
    }

    /// The protocol range offered (default [`PROTOCOLS`]).
    pub fn protocols(mut self, min: u32, max: u32) -> Self {
        self.profile.protocols = (min, max);
        self
    }

    /// How soon a device waiting for approval asks again (default [`PAIRING_RETRY`]).
    pub fn pairing_retry(mut self, min: Duration, max: Duration) -> Self {
        self.profile.pairing_retry = (min, max);
        self
    }

    /// Checks the settings.
    pub fn build(self) -> Result<OpenClaw, ConfigError> {
        let p = &self.profile;
        if p.client.id.is_empty() {
            return Err(ConfigError::Conflict {
                field: "client.id",
                problem: "empty",
            });
        }
        if p.protocols.0 > p.protocols.1 || p.protocols.0 == 0 {
            return Err(ConfigError::Conflict {
                field: "protocols",
                problem: "min must be at least 1 and at most max",
            });
        }
        if p.pairing_retry.0.is_zero() || p.pairing_retry.0 > p.pairing_retry.1 {
            return Err(ConfigError::Conflict {
                field: "pairing_retry",
                problem: "min must be above zero and at most max",
            });
        }
        crate::timer::check_delays(&[("pairing_retry", p.pairing_retry.1)])?;
        Ok(self.profile)
    }
}

impl Protocol for OpenClaw {
    type Message = OpenClawMessage;
    type Request = OpenClawRequest;
    type Response = Utf8Bytes;
    type Answer = InvokeAnswer;

    fn on_open(&mut self) -> OnOpen {
        self.challenge = None;
        self.tick = None;
        self.sequence = Sequence::default();
        self.restart_hint = None;
        self.pending_error = None;
        OnOpen::AwaitHello
    }

    fn handshake(&mut self) -> Option<Frame> {
        self.connect_frame()
    }

    fn on_frame(&mut self, frame: Frame) -> Inbound<OpenClawMessage, Utf8Bytes> {
        let text = match frame {
            Frame::Text(text) => text,
            Frame::Ping(_) | Frame::Pong(_) => return Inbound::Ignored,
            Frame::Binary(_) => return error("binary frame: this protocol is JSON text"),
        };
        let envelope: Envelope<'_> = match serde_json::from_str(text.as_str()) {
            // The reason is serde's without the input: it could quote a token.
            Ok(envelope) => envelope,
            Err(e) => {
                return error(format!(
                    "malformed frame at line {} column {}",
                    e.line(),
                    e.column()
                ));
            }
        };
        match envelope.kind.as_ref() {
            "res" => self.response(envelope, &text),
            "event" => self.event(envelope, &text),
            "req" => error("a request from the gateway: not part of the protocol"),
            other => error(format!("unknown frame type {other:?}")),
        }
    }

    fn poll_protocol_error(&mut self) -> Option<ProtocolError> {
        self.pending_error.take()
    }

    fn liveness(&self) -> Liveness {
        Liveness {
            heartbeat_interval: None,
            silence_timeout: self.tick.map(|tick| tick.saturating_mul(2)),
            any_frame_is_ack: false,
        }
    }

    fn heartbeat(&mut self) -> Option<Frame> {
        // F6: the gateway has no application ping; its ticks are the liveness signal.
        None
    }

    fn encode_request(&mut self, id: RequestId, request: OpenClawRequest) -> Frame {
        let params = match request.params {
            Value::Null => Value::Object(Map::new()),
            params => params,
        };
        Frame::text(wire::request(
            &id.get().to_string(),
            &request.method,
            &params,
        ))
    }

    fn classify_close(&self, cause: &CloseCause) -> CloseClass {
        verdict::close_verdict(cause).class()
    }

    fn close_frame(&self, intent: CloseIntent) -> CloseFrame {
        match intent {
            CloseIntent::Shutdown => CloseFrame::new(1000, "shutdown"),
            CloseIntent::Reconnect(_) => CloseFrame::new(1000, "reconnecting"),
        }
    }

    fn unresponsive_close(&self) -> Option<CloseFrame> {
        Some(CloseFrame::new(4000, "tick timeout"))
    }

    fn can_resume(&self) -> bool {
        false
    }

    fn clear_resume(&mut self) {}

    fn on_connection_end(&mut self, _reached_ready: bool) {}

    fn max_frame(&self) -> Option<usize> {
        self.max_payload
    }

    fn encode_answer(&mut self, call: &Utf8Bytes, answer: InvokeAnswer) -> Option<Frame> {
        self.result_frame(call, answer)
    }

    fn encode_unanswered(&mut self, call: &Utf8Bytes) -> Option<Frame> {
        self.result_frame(
            call,
            InvokeAnswer::Error {
                code: "TIMEOUT".into(),
                message: "the node's application did not answer in time".into(),
            },
        )
    }

    fn retry_hint(&self) -> Option<Duration> {
        self.restart_hint
    }
}
