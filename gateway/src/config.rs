//! The gateway's settings, checked once by [`GatewayConfigBuilder::build`].

use std::time::Duration;

use tether_core::ConfigError;

/// Which server side the gateway speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerProfile {
    /// Discord gateway v10: hello, identify or resume, heartbeats and acks, numbered
    /// dispatches kept for resuming.
    Discord,
    /// OpenClaw's gateway protocol: `connect.challenge`, a `connect` request answered with
    /// `hello-ok`, numbered ticks and events, requests from clients, `node.invoke.request`
    /// to nodes.
    OpenClaw,
    /// A bare WebSocket: ready once upgraded, a ping every heartbeat interval, and any
    /// frame from the client (its pongs too) shows it alive. Messages of either kind go to
    /// the application as they are.
    Plain,
}

/// Which new OpenClaw devices are paired at once, without the application's approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AutoApprove {
    /// None: each waits for [`Gateway::approve_pairing`](crate::Gateway::approve_pairing).
    Never,
    /// Those whose connection came over loopback ([`Gateway::accept_loopback`](crate::Gateway::accept_loopback)).
    Loopback,
    /// All: for tests and closed networks only.
    Always,
}

/// The gateway's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    pub(crate) profile: ServerProfile,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) handshake_timeout: Duration,
    pub(crate) resume_window: Duration,
    pub(crate) replay_capacity: usize,
    pub(crate) pong_window: Duration,
    pub(crate) auto_approve: AutoApprove,
    pub(crate) methods: std::collections::BTreeSet<String>,
    pub(crate) max_invokes: usize,
    pub(crate) resume_url: Option<String>,
    pub(crate) guilds: Vec<u64>,
    pub(crate) identify_limit: Option<IdentifyLimit>,
    pub(crate) max_message_before_ready: usize,
    pub(crate) max_message: usize,
    pub(crate) max_token: usize,
    pub(crate) replay_bytes: usize,
    pub(crate) replay_bytes_total: usize,
}

/// How many sessions a bot may start, as Discord limits them (discord): each of
/// `max_concurrency` buckets (shard id modulo it) starts one session per `spacing`, and at
/// most `per_window` sessions start per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentifyLimit {
    /// Buckets of shards that may identify at the same time.
    pub max_concurrency: u16,
    /// The time between two identifies of one bucket (Discord: 5 s).
    pub spacing: Duration,
    /// Sessions a bot may start per window (Discord: 1000).
    pub per_window: u32,
    /// The window (Discord: 24 h).
    pub window: Duration,
}

impl IdentifyLimit {
    /// Discord's own: `max_concurrency` buckets, one identify each per 5 s, 1000 sessions
    /// a day.
    pub fn discord(max_concurrency: u16) -> Self {
        Self {
            max_concurrency,
            spacing: Duration::from_secs(5),
            per_window: 1000,
            window: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// The largest message size any setting may name: 64 MiB.
pub const MAX_MESSAGE_LIMIT: usize = 64 << 20;

/// The largest replay budget, per session or in total: 4 GiB.
pub const MAX_REPLAY_BUDGET: usize = 4 << 30;

/// Builds a [`GatewayConfig`]; nothing is checked before [`build`](Self::build).
#[derive(Debug, Clone)]
pub struct GatewayConfigBuilder {
    config: GatewayConfig,
}

impl GatewayConfig {
    /// Settings for `profile`, with defaults: a 41.25 s heartbeat interval (Discord's), 10 s
    /// to complete the handshake (15 s under OpenClaw, as its gateway), sessions resumable
    /// for 60 s after their socket ends with the last 256 dispatches kept, OpenClaw clients
    /// pinged every heartbeat interval and given 25 s to answer, pairings of loopback
    /// devices approved, at most 10,000 invokes pending; messages of at most 8 KiB before ready
    /// and 1 MiB after, tokens of at most 2 KiB; at most 1 MiB of dispatches kept per session
    /// for replay and 256 MiB over all sessions.
    pub fn builder(profile: ServerProfile) -> GatewayConfigBuilder {
        GatewayConfigBuilder {
            config: Self {
                profile,
                heartbeat_interval: Duration::from_millis(41_250),
                // The real OpenClaw gateway gives a connect 15 s; Discord's own is shorter.
                handshake_timeout: match profile {
                    ServerProfile::OpenClaw => Duration::from_secs(15),
                    _ => Duration::from_secs(10),
                },
                resume_window: Duration::from_secs(60),
                replay_capacity: 256,
                pong_window: Duration::from_secs(25),
                auto_approve: AutoApprove::Loopback,
                methods: std::collections::BTreeSet::new(),
                max_invokes: 10_000,
                resume_url: None,
                guilds: Vec::new(),
                identify_limit: None,
                max_message_before_ready: 8 << 10,
                max_message: 1 << 20,
                max_token: 2 << 10,
                replay_bytes: 1 << 20,
                replay_bytes_total: 256 << 20,
            },
        }
    }

    /// The `resume_gateway_url` announced in READY (discord), if one was set.
    pub fn resume_url(&self) -> Option<&str> {
        self.resume_url.as_deref()
    }

    /// These settings with `url` as the `resume_gateway_url` when none was set: a server
    /// fills in the address it serves, so READY always carries one.
    pub fn with_default_resume_url(mut self, url: impl FnOnce() -> String) -> Self {
        if self.resume_url.is_none() {
            self.resume_url = Some(url());
        }
        self
    }

    /// The profile spoken.
    pub fn profile(&self) -> ServerProfile {
        self.profile
    }

    /// The heartbeat interval announced in hello (discord) or the tick interval (OpenClaw).
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_interval
    }

    /// How many recent dispatches each session keeps for replay.
    pub fn replay_capacity(&self) -> usize {
        self.replay_capacity
    }

    /// How long a socket may take from accept to ready.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// The largest message a client may send before its handshake completes: what an
    /// unauthenticated socket can make the server hold.
    pub fn max_message_before_ready(&self) -> usize {
        self.max_message_before_ready
    }

    /// The largest message a ready client may send.
    pub fn max_message(&self) -> usize {
        self.max_message
    }

    /// The bytes of dispatches each session keeps for replay (discord).
    pub fn replay_bytes(&self) -> usize {
        self.replay_bytes
    }

    /// How long a silent connection is kept: 1.5 heartbeat intervals after its last
    /// heartbeat (discord) or frame (plain); under OpenClaw, the interval between the
    /// gateway's pings and then the [`pong_window`](GatewayConfigBuilder::pong_window) after
    /// its last frame, its pongs included.
    pub fn liveness_bound(&self) -> Duration {
        match self.profile {
            ServerProfile::Discord | ServerProfile::Plain => {
                self.heartbeat_interval.saturating_mul(3) / 2
            }
            ServerProfile::OpenClaw => self.heartbeat_interval.saturating_add(self.pong_window),
        }
    }

    /// Which new devices are paired without waiting for the application (OpenClaw).
    pub fn auto_approve(&self) -> AutoApprove {
        self.auto_approve
    }
}

impl GatewayConfigBuilder {
    /// The heartbeat interval announced in hello (discord), or how often ticks are sent
    /// (OpenClaw).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.config.heartbeat_interval = interval;
        self
    }

    /// How long a socket may take from accept to ready before it is closed.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.handshake_timeout = timeout;
        self
    }

    /// How long a session stays resumable after its socket ends (discord).
    pub fn resume_window(mut self, window: Duration) -> Self {
        self.config.resume_window = window;
        self
    }

    /// How many recent dispatches each session keeps for replay on resume (discord). A
    /// client further behind gets an invalid session.
    pub fn replay_capacity(mut self, frames: usize) -> Self {
        self.config.replay_capacity = frames;
        self
    }

    /// How long an OpenClaw client has to answer the gateway's ping (any frame will do)
    /// before it is closed as unresponsive (default 25 s, as the real gateway).
    pub fn pong_window(mut self, window: Duration) -> Self {
        self.config.pong_window = window;
        self
    }

    /// Which new OpenClaw devices are paired without waiting for the application
    /// (default: those connecting over loopback, as the real gateway does).
    pub fn auto_approve(mut self, which: AutoApprove) -> Self {
        self.config.auto_approve = which;
        self
    }

    /// OpenClaw methods the application answers ([`GatewayEvent::Request`](crate::GatewayEvent::Request),
    /// then [`Gateway::respond`](crate::Gateway::respond)); `health` and `status` are
    /// answered by the gateway itself, and any other is refused as unknown.
    pub fn methods<S: Into<String>>(mut self, methods: impl IntoIterator<Item = S>) -> Self {
        self.config.methods = methods.into_iter().map(Into::into).collect();
        self
    }

    /// The most invokes waiting for an answer at once, over all peers.
    pub fn max_invokes(mut self, max: usize) -> Self {
        self.config.max_invokes = max;
        self
    }

    /// The `resume_gateway_url` announced in READY (discord). A server that serves a
    /// listener fills in its own address when none is set.
    pub fn resume_url(mut self, url: impl Into<String>) -> Self {
        self.config.resume_url = Some(url.into());
        self
    }

    /// Limits how fast a bot starts sessions, as Discord does (discord; none by default):
    /// an identify too soon for its bucket gets an invalid session (op 9, not resumable),
    /// and one past the window's budget is closed 4004.
    pub fn identify_limit(mut self, limit: IdentifyLimit) -> Self {
        self.config.identify_limit = Some(limit);
        self
    }

    /// The guilds READY lists, as unavailable stubs (`{"id", "unavailable": true}`), as
    /// Discord lists a bot's guilds before their GUILD_CREATE (discord; none by default).
    pub fn guilds(mut self, ids: impl IntoIterator<Item = u64>) -> Self {
        self.config.guilds = ids.into_iter().collect();
        self
    }

    /// The largest message a client may send before its handshake completes (identify,
    /// resume, connect); a larger one is closed with 1009. Discord itself allows 4096
    /// bytes for any client payload.
    pub fn max_message_before_ready(mut self, bytes: usize) -> Self {
        self.config.max_message_before_ready = bytes;
        self
    }

    /// The largest message a ready client may send; a larger one is closed with 1009.
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.config.max_message = bytes;
        self
    }

    /// The longest token accepted; a longer one is refused before the authenticator sees
    /// it.
    pub fn max_token(mut self, bytes: usize) -> Self {
        self.config.max_token = bytes;
        self
    }

    /// The bytes of recent dispatches each session keeps for replay (discord); the oldest
    /// go first. A client further behind gets an invalid session.
    pub fn replay_bytes(mut self, bytes: usize) -> Self {
        self.config.replay_bytes = bytes;
        self
    }

    /// The bytes of dispatches kept for replay over all sessions (discord); past it, a
    /// session's oldest dispatches go first.
    pub fn replay_bytes_total(mut self, bytes: usize) -> Self {
        self.config.replay_bytes_total = bytes;
        self
    }

    /// Checks the settings.
    pub fn build(self) -> Result<GatewayConfig, ConfigError> {
        let c = &self.config;
        let zero = [
            ("heartbeat_interval", c.heartbeat_interval.is_zero()),
            ("handshake_timeout", c.handshake_timeout.is_zero()),
            ("pong_window", c.pong_window.is_zero()),
            ("max_invokes", c.max_invokes == 0),
            ("max_message_before_ready", c.max_message_before_ready == 0),
            ("max_message", c.max_message == 0),
            ("max_token", c.max_token == 0),
        ];
        if let Some((field, _)) = zero.iter().find(|(_, is_zero)| *is_zero) {
            return Err(ConfigError::Zero { field });
        }
        ConfigError::check_at_most(&[
            ("max_message", c.max_message, MAX_MESSAGE_LIMIT),
            (
                "max_message_before_ready",
                c.max_message_before_ready,
                c.max_message,
            ),
            ("max_token", c.max_token, c.max_message_before_ready),
            ("replay_bytes", c.replay_bytes, MAX_REPLAY_BUDGET),
            (
                "replay_bytes_total",
                c.replay_bytes_total,
                MAX_REPLAY_BUDGET,
            ),
            ("max_invokes", c.max_invokes, 1 << 24),
            // READY lists each: 10,000 stubs are some 400 KiB, one frame.
            ("guilds", c.guilds.len(), 10_000),
        ])?;
        if let Some(limit) = c.identify_limit {
            let zero = [
                ("identify_limit.max_concurrency", limit.max_concurrency == 0),
                ("identify_limit.per_window", limit.per_window == 0),
                ("identify_limit.window", limit.window.is_zero()),
            ];
            if let Some((field, _)) = zero.iter().find(|(_, is_zero)| *is_zero) {
                return Err(ConfigError::Zero { field });
            }
            tether_core::check_delays(&[
                ("identify_limit.spacing", limit.spacing),
                ("identify_limit.window", limit.window),
            ])?;
        }
        tether_core::check_delays(&[
            ("handshake_timeout", c.handshake_timeout),
            ("resume_window", c.resume_window),
            ("pong_window", c.pong_window),
        ])?;
        if c.heartbeat_interval > Duration::from_millis(u64::from(u32::MAX)) {
            return Err(ConfigError::Conflict {
                field: "heartbeat_interval",
                problem: "must fit in a u32 of milliseconds on the wire",
            });
        }
        Ok(self.config)
    }
}
