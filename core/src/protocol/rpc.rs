//! JSON request, response and event frames.
//!
//! ```text
//! {"type":"req","id":1,"method":"sum","params":[1,2]}
//! {"type":"res","id":1,"ok":true,"payload":3}
//! {"type":"res","id":1,"ok":false,"error":{"code":"BAD","message":"no"}}
//! {"type":"event","event":"price","payload":{..},"seq":7}
//! ```
//!
//! The server may ask too: a `req` frame from it reaches the application as an
//! [`RpcMessage::Call`], answered with [`RpcCall::reply`] or [`RpcCall::reply_error`].
//!
//! Handshake: optionally a `connect.challenge` event carrying `{"nonce":..}`, then a
//! `connect` request (id `"connect"`) whose ok response is ready and may advertise
//! `{"methods":[..],"tick_interval_ms":..}`. The server's `tick` events prove it alive:
//! no frame for two tick intervals is a zombie. An application-level `ping` request is
//! sent only when the server advertised `ping`, or the application demands it (F6).
//! Payloads stay raw JSON, shared with the frame's buffer.

use std::borrow::Cow;
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::ConfigError;
use crate::event::{ProtocolError, RemoteError, RequestId};
use crate::frame::{CloseFrame, Frame, Utf8Bytes};
use crate::input::CloseCause;
use crate::protocol::{
    CloseClass, CloseIntent, InSequence, Inbound, Liveness, OnOpen, Protocol, Sequence,
    fatal_or_resume,
};

/// A request to the server: a method and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcRequest {
    /// The method name.
    pub method: Cow<'static, str>,
    /// The parameters (`Value::Null` to send none).
    pub params: Value,
}

impl RpcRequest {
    /// A request of `method` with `params`.
    pub fn new(method: impl Into<Cow<'static, str>>, params: Value) -> Self {
        Self {
            method: method.into(),
            params,
        }
    }
}

/// An event from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcEvent {
    /// The event name.
    pub name: Utf8Bytes,
    /// The payload, raw JSON (`null` when absent).
    pub payload: Utf8Bytes,
    /// The sequence number, when the server numbers its events.
    pub seq: Option<u64>,
}

/// A request the server made of this client (an invoke): answer it on the same connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcCall {
    /// The request id as it was on the wire (raw JSON), echoed in the answer.
    pub id: Utf8Bytes,
    /// The method asked for.
    pub method: Utf8Bytes,
    /// The parameters, raw JSON (`null` when absent).
    pub params: Utf8Bytes,
}

impl RpcCall {
    /// The frame answering this call with `payload`.
    pub fn reply(&self, payload: &RawValue) -> Frame {
        Frame::text(format!(
            "{{\"type\":\"res\",\"id\":{},\"ok\":true,\"payload\":{}}}",
            self.id.as_str(),
            payload.get()
        ))
    }

    /// The frame answering this call with an error.
    pub fn reply_error(&self, code: &str, message: &str) -> Frame {
        let error = serde_json::json!({ "code": code, "message": message });
        Frame::text(format!(
            "{{\"type\":\"res\",\"id\":{},\"ok\":false,\"error\":{error}}}",
            self.id.as_str()
        ))
    }
}

/// What the server sent the application: an event, or a call to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcMessage {
    /// An event.
    Event(RpcEvent),
    /// A request of the server's, to answer with [`RpcCall::reply`].
    Call(RpcCall),
}

/// The rpc profile.
#[derive(Debug, Clone)]
pub struct Rpc {
    connect_params: Map<String, Value>,
    expect_challenge: bool,
    force_ping: bool,
    ping_interval: Duration,
    fatal_codes: Vec<u16>,
    // Per connection:
    awaiting_challenge: bool,
    nonce: Option<String>,
    ping_advertised: bool,
    tick: Option<Duration>,
    pings_sent: u64,
    sequence: Sequence,
    pending_error: Option<ProtocolError>,
}

/// Settings of the rpc profile; [`build`](Self::build) checks them.
#[derive(Debug, Clone)]
pub struct RpcBuilder {
    profile: Rpc,
}

impl Rpc {
    /// A profile whose `connect` request carries `params` (credentials, client name...).
    pub fn builder(params: Map<String, Value>) -> RpcBuilder {
        RpcBuilder {
            profile: Self {
                connect_params: params,
                expect_challenge: false,
                force_ping: false,
                ping_interval: Duration::from_secs(30),
                fatal_codes: Vec::new(),
                awaiting_challenge: false,
                nonce: None,
                ping_advertised: false,
                tick: None,
                pings_sent: 0,
                sequence: Sequence::default(),
                pending_error: None,
            },
        }
    }

    /// Whether pings go out on this connection.
    fn pinging(&self) -> bool {
        self.force_ping || self.ping_advertised
    }

    fn connect_frame(&self) -> Frame {
        let mut params = self.connect_params.clone();
        if let Some(nonce) = &self.nonce {
            params.insert("nonce".into(), Value::from(nonce.as_str()));
        }
        let frame = serde_json::json!({
            "type": "req",
            "id": "connect",
            "method": "connect",
            "params": params,
        });
        Frame::Text(Utf8Bytes::secret(frame.to_string()))
    }

    fn response(
        &mut self,
        envelope: Envelope<'_>,
        text: &Utf8Bytes,
    ) -> Inbound<RpcMessage, Utf8Bytes> {
        let Some(id) = envelope.id else {
            return error("response without id");
        };
        let result = match (envelope.ok, envelope.error) {
            (Some(true), _) => Ok(envelope
                .payload
                .map_or_else(|| Utf8Bytes::from_static("null"), |p| text.share(p.get()))),
            (Some(false), Some(e)) => Err(e.into_remote()),
            _ => return error("response without ok, or an error without details"),
        };
        if let Ok(n) = serde_json::from_str::<u64>(id.get()) {
            return Inbound::Response {
                id: RequestId::new(n),
                result,
            };
        }
        match serde_json::from_str::<Cow<'_, str>>(id.get()).as_deref() {
            Ok("connect") => self.connected(result),
            Ok(ping) if ping.strip_prefix("ping-") == Some(&self.pings_sent.to_string()) => {
                Inbound::HeartbeatAck
            }
            Ok(ping) if ping.starts_with("ping-") => Inbound::Ignored,
            _ => error("response to an id never sent"),
        }
    }

    fn connected(
        &mut self,
        result: Result<Utf8Bytes, RemoteError>,
    ) -> Inbound<RpcMessage, Utf8Bytes> {
        #[derive(Deserialize, Default)]
        struct Welcome {
            #[serde(default)]
            methods: Vec<String>,
            tick_interval_ms: Option<u64>,
        }
        let payload = match result {
            Ok(payload) => payload,
            Err(e) => {
                return Inbound::Error(ProtocolError::fatal(format!(
                    "connect rejected: {} {}",
                    e.code, e.message
                )));
            }
        };
        let welcome = match payload.as_str() {
            "null" => Welcome::default(),
            json => match serde_json::from_str::<Welcome>(json) {
                Ok(welcome) => welcome,
                Err(e) => {
                    return Inbound::Error(ProtocolError::fatal(format!(
                        "connect response unreadable: {e}"
                    )));
                }
            },
        };
        self.ping_advertised = welcome.methods.iter().any(|m| m == "ping");
        self.tick = welcome
            .tick_interval_ms
            .filter(|&ms| ms > 0)
            .map(Duration::from_millis);
        Inbound::Ready {
            resumed: false,
            message: None,
        }
    }

    fn event(
        &mut self,
        envelope: Envelope<'_>,
        text: &Utf8Bytes,
    ) -> Inbound<RpcMessage, Utf8Bytes> {
        let Some(name) = envelope.event else {
            return error("event without a name");
        };
        match name.as_ref() {
            "tick" => return Inbound::Ignored,
            "connect.challenge" if self.awaiting_challenge => {
                return self.challenge(envelope.payload);
            }
            _ => {}
        }
        if let Some(seq) = envelope.seq {
            match self.sequence.advance(seq, "event") {
                InSequence::Next => {}
                InSequence::Gap(gap) => self.pending_error = Some(gap),
                InSequence::Stale(stale) => return Inbound::Error(stale),
            }
        }
        let name = match name {
            Cow::Borrowed(name) => text.share(name),
            Cow::Owned(name) => Utf8Bytes::from(name),
        };
        let payload = envelope
            .payload
            .map_or_else(|| Utf8Bytes::from_static("null"), |p| text.share(p.get()));
        Inbound::Message(RpcMessage::Event(RpcEvent {
            name,
            payload,
            seq: envelope.seq,
        }))
    }

    fn call(envelope: Envelope<'_>, text: &Utf8Bytes) -> Inbound<RpcMessage, Utf8Bytes> {
        let (Some(id), Some(method)) = (envelope.id, envelope.method) else {
            return error("request without id or method");
        };
        let method = match method {
            Cow::Borrowed(method) => text.share(method),
            Cow::Owned(method) => Utf8Bytes::from(method),
        };
        let params = envelope
            .params
            .map_or_else(|| Utf8Bytes::from_static("null"), |p| text.share(p.get()));
        Inbound::Message(RpcMessage::Call(RpcCall {
            id: text.share(id.get()),
            method,
            params,
        }))
    }

    fn challenge(&mut self, payload: Option<&RawValue>) -> Inbound<RpcMessage, Utf8Bytes> {
        #[derive(Deserialize)]
        struct Challenge {
            nonce: String,
        }
        match payload.map(|p| serde_json::from_str::<Challenge>(p.get())) {
            Some(Ok(challenge)) => {
                self.awaiting_challenge = false;
                self.nonce = Some(challenge.nonce);
                Inbound::Hello
            }
            _ => Inbound::Error(ProtocolError::fatal("challenge without a nonce")),
        }
    }
}

impl RpcBuilder {
    /// Wait for a `connect.challenge` event and answer its nonce in `connect`.
    pub fn expect_challenge(mut self, yes: bool) -> Self {
        self.profile.expect_challenge = yes;
        self
    }

    /// Send `ping` requests even if the server did not advertise them.
    pub fn force_ping(mut self, yes: bool) -> Self {
        self.profile.force_ping = yes;
        self
    }

    /// How often to ping, when pinging (default 30 s).
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.profile.ping_interval = interval;
        self
    }

    /// Close codes after which retrying cannot help: the client stops.
    pub fn fatal_codes(mut self, codes: impl IntoIterator<Item = u16>) -> Self {
        self.profile.fatal_codes = codes.into_iter().collect();
        self
    }

    /// Checks the settings.
    pub fn build(self) -> Result<Rpc, ConfigError> {
        if self.profile.ping_interval.is_zero() {
            return Err(ConfigError::Zero {
                field: "ping_interval",
            });
        }
        crate::timer::check_delays(&[("ping_interval", self.profile.ping_interval)])?;
        Ok(self.profile)
    }
}

/// The envelope of an rpc frame, either way (the gateway reads clients' with it too): only
/// these fields are parsed; payloads and params stay raw.
#[derive(Deserialize)]
pub(crate) struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    pub(crate) kind: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) id: Option<&'a RawValue>,
    pub(crate) ok: Option<bool>,
    #[serde(borrow)]
    pub(crate) payload: Option<&'a RawValue>,
    pub(crate) error: Option<WireError>,
    #[serde(borrow)]
    pub(crate) event: Option<Cow<'a, str>>,
    pub(crate) seq: Option<u64>,
    #[serde(borrow)]
    pub(crate) method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) params: Option<&'a RawValue>,
}

/// An error as rpc frames carry it, either way (the gateway reads clients' with it too).
#[derive(Deserialize)]
pub(crate) struct WireError {
    code: Value,
    #[serde(default)]
    message: String,
}

impl WireError {
    /// The error as the application sees it; a code that is not a string keeps its JSON.
    pub(crate) fn into_remote(self) -> RemoteError {
        let code = match self.code {
            Value::String(s) => s,
            other => other.to_string(),
        };
        RemoteError {
            code,
            message: self.message,
        }
    }
}

fn error(reason: impl Into<Cow<'static, str>>) -> Inbound<RpcMessage, Utf8Bytes> {
    Inbound::Error(ProtocolError::new(reason))
}

impl Protocol for Rpc {
    type Message = RpcMessage;
    type Request = RpcRequest;
    type Response = Utf8Bytes;

    fn on_open(&mut self) -> OnOpen {
        self.awaiting_challenge = self.expect_challenge;
        self.nonce = None;
        self.ping_advertised = false;
        self.tick = None;
        self.sequence = Sequence::default();
        if self.expect_challenge {
            OnOpen::AwaitHello
        } else {
            OnOpen::Handshake
        }
    }

    fn handshake(&mut self) -> Option<Frame> {
        Some(self.connect_frame())
    }

    fn on_frame(&mut self, frame: Frame) -> Inbound<RpcMessage, Utf8Bytes> {
        let Frame::Text(text) = frame else {
            return error("binary frame: this protocol is JSON text");
        };
        let envelope: Envelope<'_> = match serde_json::from_str(text.as_str()) {
            Ok(envelope) => envelope,
            Err(e) => return error(format!("malformed frame: {e}")),
        };
        match envelope.kind.as_ref() {
            "res" => self.response(envelope, &text),
            "event" => self.event(envelope, &text),
            "req" => Self::call(envelope, &text),
            other => error(format!("unknown frame type {other:?}")),
        }
    }

    fn poll_protocol_error(&mut self) -> Option<ProtocolError> {
        self.pending_error.take()
    }

    fn liveness(&self) -> Liveness {
        Liveness {
            heartbeat_interval: self.pinging().then_some(self.ping_interval),
            silence_timeout: self.tick.map(|tick| tick * 2),
            any_frame_is_ack: false,
        }
    }

    fn heartbeat(&mut self) -> Option<Frame> {
        if !self.pinging() {
            return None;
        }
        self.pings_sent += 1;
        Some(Frame::text(format!(
            "{{\"type\":\"req\",\"id\":\"ping-{}\",\"method\":\"ping\"}}",
            self.pings_sent
        )))
    }

    fn encode_request(&mut self, id: RequestId, request: RpcRequest) -> Frame {
        let frame = serde_json::json!({
            "type": "req",
            "id": id.get(),
            "method": request.method,
            "params": request.params,
        });
        Frame::text(frame.to_string())
    }

    fn classify_close(&self, cause: &CloseCause) -> CloseClass {
        fatal_or_resume(&self.fatal_codes, cause)
    }

    fn close_frame(&self, intent: CloseIntent) -> CloseFrame {
        match intent {
            CloseIntent::Shutdown => CloseFrame::new(1000, "shutdown"),
            CloseIntent::Reconnect(_) => CloseFrame::new(4000, "reconnecting"),
        }
    }

    fn can_resume(&self) -> bool {
        false
    }

    fn clear_resume(&mut self) {}
}
