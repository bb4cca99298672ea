//! `hello-ok`: what the gateway grants a connection, read once per connect.

use std::time::Duration;

use serde::Deserialize;

use crate::frame::Utf8Bytes;
use crate::protocol::discord::Token;

/// The gateway's answer to a successful `connect`, as the application needs it. The whole
/// payload (snapshot and all) stays in [`raw`](Self::raw).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloOk {
    /// The protocol version agreed.
    pub protocol: u32,
    /// The gateway's version.
    pub server_version: String,
    /// The gateway's name for this connection.
    pub server_conn_id: Option<String>,
    /// The methods this connection may call.
    pub methods: Vec<String>,
    /// The events the gateway may send.
    pub events: Vec<String>,
    /// The role granted.
    pub role: String,
    /// The scopes this connection holds now.
    pub scopes: Vec<String>,
    /// A device token issued for this device and role: the credential for its next
    /// connects. The profile keeps it ([`OpenClaw::device_token`](super::OpenClaw::device_token)).
    pub device_token: Option<Token>,
    /// The connection's limits and liveness.
    pub policy: Policy,
    /// The payload as sent (with the snapshot). Redacted in `Debug` when it carries a
    /// device token.
    pub raw: Utf8Bytes,
}

/// Limits and liveness the gateway sets for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The largest frame the gateway accepts.
    pub max_payload: Option<usize>,
    /// How much the gateway buffers for this connection before it gives up on it.
    pub max_buffered_bytes: Option<usize>,
    /// How often the gateway sends `tick`: silence for twice this is a dead peer.
    pub tick_interval: Duration,
}

/// The tick interval OpenClaw's own client assumes until `hello-ok` says otherwise.
pub const DEFAULT_TICK_INTERVAL: Duration = Duration::from_secs(30);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    #[serde(rename = "type")]
    kind: String,
    protocol: u32,
    #[serde(default)]
    server: WireServer,
    #[serde(default)]
    features: WireFeatures,
    #[serde(default)]
    auth: WireAuth,
    #[serde(default)]
    policy: WirePolicy,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireServer {
    #[serde(default)]
    version: String,
    conn_id: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireFeatures {
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default)]
    events: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireAuth {
    #[serde(default)]
    role: String,
    #[serde(default)]
    scopes: Vec<String>,
    device_token: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WirePolicy {
    max_payload: Option<u64>,
    max_buffered_bytes: Option<u64>,
    tick_interval_ms: Option<u64>,
}

impl HelloOk {
    /// Reads a `hello-ok` payload. The error never quotes the payload: it may hold a
    /// device token.
    pub(crate) fn parse(raw: &Utf8Bytes) -> Result<Self, &'static str> {
        let wire: Wire = serde_json::from_str(raw.as_str()).map_err(|_| "hello-ok unreadable")?;
        if wire.kind != "hello-ok" {
            return Err("connect answered without hello-ok");
        }
        let tick_interval = wire
            .policy
            .tick_interval_ms
            .filter(|&ms| ms > 0)
            .map_or(DEFAULT_TICK_INTERVAL, Duration::from_millis)
            .min(crate::timer::MAX_DELAY / 2);
        let size = |n: Option<u64>| n.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let device_token = wire.auth.device_token.map(Token::new);
        let raw = if device_token.is_some() {
            Utf8Bytes::secret(raw.as_str().to_owned())
        } else {
            raw.clone()
        };
        Ok(Self {
            protocol: wire.protocol,
            server_version: wire.server.version,
            server_conn_id: wire.server.conn_id,
            methods: wire.features.methods,
            events: wire.features.events,
            role: wire.auth.role,
            scopes: wire.auth.scopes,
            device_token,
            policy: Policy {
                max_payload: size(wire.policy.max_payload),
                max_buffered_bytes: size(wire.policy.max_buffered_bytes),
                tick_interval,
            },
            raw,
        })
    }
}
