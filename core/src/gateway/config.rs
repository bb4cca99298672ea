//! The gateway's settings, checked once by [`GatewayConfigBuilder::build`].

use std::time::Duration;

use crate::error::ConfigError;

/// Which server side the gateway speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerProfile {
    /// Discord gateway v10: hello, identify or resume, heartbeats and acks, numbered
    /// dispatches kept for resuming.
    Discord,
    /// JSON rpc: an optional challenge, a `connect` request, ticks, requests both ways.
    Rpc,
}

/// The gateway's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    pub(crate) profile: ServerProfile,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) handshake_timeout: Duration,
    pub(crate) resume_window: Duration,
    pub(crate) replay_capacity: usize,
    pub(crate) client_silence: Duration,
    pub(crate) challenge: bool,
    pub(crate) max_invokes: usize,
    pub(crate) resume_url: Option<String>,
}

/// Builds a [`GatewayConfig`]; nothing is checked before [`build`](Self::build).
#[derive(Debug, Clone)]
pub struct GatewayConfigBuilder {
    config: GatewayConfig,
}

impl GatewayConfig {
    /// Settings for `profile`, with defaults: a 41.25 s heartbeat interval (Discord's), 10 s
    /// to complete the handshake, sessions resumable for 60 s after their socket ends with
    /// the last 256 dispatches kept, 90 s of silence tolerated from rpc clients, no
    /// challenge, at most 10,000 invokes pending.
    pub fn builder(profile: ServerProfile) -> GatewayConfigBuilder {
        GatewayConfigBuilder {
            config: Self {
                profile,
                heartbeat_interval: Duration::from_millis(41_250),
                handshake_timeout: Duration::from_secs(10),
                resume_window: Duration::from_secs(60),
                replay_capacity: 256,
                client_silence: Duration::from_secs(90),
                challenge: false,
                max_invokes: 10_000,
                resume_url: None,
            },
        }
    }

    /// The profile spoken.
    pub fn profile(&self) -> ServerProfile {
        self.profile
    }

    /// The heartbeat interval announced in hello (discord) or the tick interval (rpc).
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

    /// How long a silent connection is kept: 1.5 heartbeat intervals after its last
    /// heartbeat (discord), or [`client_silence`](GatewayConfigBuilder::client_silence)
    /// after its last frame (rpc).
    pub fn liveness_bound(&self) -> Duration {
        match self.profile {
            ServerProfile::Discord => self.heartbeat_interval.saturating_mul(3) / 2,
            ServerProfile::Rpc => self.client_silence,
        }
    }
}

impl GatewayConfigBuilder {
    /// The heartbeat interval announced in hello (discord), or how often ticks are sent
    /// (rpc).
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

    /// How long an rpc client may send nothing at all before it is closed.
    pub fn client_silence(mut self, silence: Duration) -> Self {
        self.config.client_silence = silence;
        self
    }

    /// Send a `connect.challenge` nonce that the `connect` request must echo (rpc).
    pub fn challenge(mut self, yes: bool) -> Self {
        self.config.challenge = yes;
        self
    }

    /// The most invokes waiting for an answer at once, over all peers.
    pub fn max_invokes(mut self, max: usize) -> Self {
        self.config.max_invokes = max;
        self
    }

    /// The `resume_gateway_url` announced in READY (discord).
    pub fn resume_url(mut self, url: impl Into<String>) -> Self {
        self.config.resume_url = Some(url.into());
        self
    }

    /// Checks the settings.
    pub fn build(self) -> Result<GatewayConfig, ConfigError> {
        let c = &self.config;
        let zero = [
            ("heartbeat_interval", c.heartbeat_interval.is_zero()),
            ("handshake_timeout", c.handshake_timeout.is_zero()),
            ("client_silence", c.client_silence.is_zero()),
            ("max_invokes", c.max_invokes == 0),
        ];
        if let Some((field, _)) = zero.iter().find(|(_, is_zero)| *is_zero) {
            return Err(ConfigError::Zero { field });
        }
        if c.heartbeat_interval > Duration::from_millis(u64::from(u32::MAX)) {
            return Err(ConfigError::Conflict {
                field: "heartbeat_interval",
                problem: "must fit in a u32 of milliseconds on the wire",
            });
        }
        Ok(self.config)
    }
}
