//! The plain profile: a bare WebSocket with no session protocol on top.

use std::time::Duration;

use bytes::Bytes;

use crate::config::is_sendable_close_code;
use crate::error::ConfigError;
use crate::event::ReconnectMode;
use crate::event::RequestId;
use crate::frame::{CloseFrame, Frame};
use crate::input::CloseCause;
use crate::protocol::{
    CloseClass, CloseIntent, Inbound, Liveness, OnOpen, Protocol, fatal_or_resume,
};

/// A bare WebSocket: ready as soon as the socket opens; the heartbeat is a WebSocket ping
/// carrying a counter, acknowledged by the pong that echoes the latest counter. Text and
/// binary frames are the application's messages. There is no session, so nothing resumes.
///
/// Pings from the peer are answered by the transport (RFC 6455 requires it of every
/// WebSocket implementation), so the profile consumes them.
#[derive(Debug, Clone)]
pub struct Plain {
    heartbeat_interval: Option<Duration>,
    fatal_codes: Vec<u16>,
    reconnect_close: CloseFrame,
    beats_sent: u64,
}

impl Plain {
    /// A plain profile with a 30 s heartbeat and no fatal close codes.
    pub fn new() -> Self {
        Self {
            heartbeat_interval: Some(Duration::from_secs(30)),
            fatal_codes: Vec::new(),
            reconnect_close: CloseFrame::new(4000, "reconnecting"),
            beats_sent: 0,
        }
    }

    /// A builder, for settings that are validated.
    pub fn builder() -> PlainBuilder {
        PlainBuilder {
            profile: Self::new(),
        }
    }
}

impl Default for Plain {
    fn default() -> Self {
        Self::new()
    }
}

/// Settings of the plain profile; [`build`](Self::build) rejects values that cannot work.
#[derive(Debug, Clone)]
pub struct PlainBuilder {
    profile: Plain,
}

impl PlainBuilder {
    /// The ping interval; `None` sends no heartbeat (dead peers are then found only by the
    /// transport).
    pub fn heartbeat_interval(mut self, interval: Option<Duration>) -> Self {
        self.profile.heartbeat_interval = interval;
        self
    }

    /// Close codes from the server after which retrying cannot help (an authentication
    /// failure of your server, say): the client stops instead of reconnecting.
    pub fn fatal_codes(mut self, codes: impl IntoIterator<Item = u16>) -> Self {
        self.profile.fatal_codes = codes.into_iter().collect();
        self
    }

    /// The close code sent when the client replaces a socket (default 4000).
    pub fn reconnect_code(mut self, code: u16) -> Self {
        self.profile.reconnect_close = CloseFrame::new(code, "reconnecting");
        self
    }

    /// Checks the settings.
    pub fn build(self) -> Result<Plain, ConfigError> {
        if self.profile.heartbeat_interval.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::Zero {
                field: "heartbeat_interval",
            });
        }
        crate::timer::check_delays(&[(
            "heartbeat_interval",
            self.profile.heartbeat_interval.unwrap_or_default(),
        )])?;
        if !is_sendable_close_code(self.profile.reconnect_close.code) {
            return Err(ConfigError::CloseCode {
                field: "reconnect_code",
                code: self.profile.reconnect_close.code,
            });
        }
        Ok(self.profile)
    }
}

impl Protocol for Plain {
    type Message = Frame;
    type Request = std::convert::Infallible;
    type Response = std::convert::Infallible;
    type Answer = std::convert::Infallible;

    fn on_open(&mut self) -> OnOpen {
        OnOpen::Ready
    }

    fn handshake(&mut self) -> Option<Frame> {
        None
    }

    fn on_frame(&mut self, frame: Frame) -> Inbound<Frame, Self::Response> {
        match frame {
            Frame::Text(_) | Frame::Binary(_) => Inbound::Message(frame),
            Frame::Pong(payload) if payload.as_ref() == self.beats_sent.to_be_bytes() => {
                Inbound::HeartbeatAck
            }
            // An unsolicited pong (RFC 6455 allows them) or the echo of an earlier beat: the
            // latest beat is still outstanding.
            Frame::Pong(_) | Frame::Ping(_) => Inbound::Ignored,
        }
    }

    fn liveness(&self) -> Liveness {
        Liveness {
            heartbeat_interval: self.heartbeat_interval,
            ..Liveness::default()
        }
    }

    fn heartbeat(&mut self) -> Option<Frame> {
        self.heartbeat_interval?;
        self.beats_sent = self.beats_sent.wrapping_add(1);
        Some(Frame::Ping(Bytes::copy_from_slice(
            &self.beats_sent.to_be_bytes(),
        )))
    }

    fn encode_request(&mut self, _id: RequestId, request: Self::Request) -> Frame {
        match request {}
    }

    fn classify_close(&self, cause: &CloseCause) -> CloseClass {
        fatal_or_resume(&self.fatal_codes, cause)
    }

    fn close_frame(&self, intent: CloseIntent) -> CloseFrame {
        match intent {
            CloseIntent::Shutdown => CloseFrame::new(1000, "shutdown"),
            CloseIntent::Reconnect(ReconnectMode::Resume | ReconnectMode::Fresh) => {
                self.reconnect_close.clone()
            }
        }
    }

    fn can_resume(&self) -> bool {
        false
    }

    fn clear_resume(&mut self) {}
}
