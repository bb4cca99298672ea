//! The Discord gateway v10 session protocol.
//!
//! Only the envelope of each frame (`op`, `s`, `t`) is parsed; `d` stays raw JSON, shared
//! with the frame's buffer, for the application to deserialize as it likes. The frames
//! themselves, both ways, are in [`wire`].

mod compression;
pub mod wire;

pub use compression::Compression;
use compression::Inflater;

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use self::wire::ServerFrame;
use crate::command::Endpoint;
use crate::error::ConfigError;
use crate::event::{ProtocolError, ReconnectMode, RequestId};
use crate::frame::{CloseFrame, Frame, Utf8Bytes};
use crate::input::CloseCause;
use crate::protocol::{
    CloseClass, CloseIntent, InSequence, Inbound, Liveness, OnOpen, Protocol, RateLimit, Sequence,
};

/// A secret credential: a bot token, a gateway token, a device token, a password. Its
/// `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token itself, for writing it where it belongs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The identify payload (op 2): the token and whatever else the application sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Identify {
    token: Token,
    fields: Map<String, Value>,
}

impl Identify {
    /// An identify with `token` and `intents`, and default connection properties.
    pub fn new(token: Token, intents: u64) -> Self {
        let mut fields = Map::new();
        fields.insert("intents".into(), Value::from(intents));
        fields.insert(
            "properties".into(),
            serde_json::json!({
                "os": std::env::consts::OS,
                "browser": "tether",
                "device": "tether",
            }),
        );
        Self { token, fields }
    }

    /// The connection properties object.
    pub fn properties(self, properties: Value) -> Self {
        self.field("properties", properties)
    }

    /// The shard: `[id, count]`.
    pub fn shard(self, id: u32, count: u32) -> Self {
        self.field("shard", serde_json::json!([id, count]))
    }

    /// The initial presence object.
    pub fn presence(self, presence: Value) -> Self {
        self.field("presence", presence)
    }

    /// Any other identify field (`large_threshold`, `compress`...). `token` cannot be set
    /// this way: it is always the one given to [`new`](Self::new).
    pub fn field(mut self, name: impl Into<String>, value: Value) -> Self {
        let name = name.into();
        if name != "token" {
            self.fields.insert(name, value);
        }
        self
    }

    fn frame(&self) -> Frame {
        wire::identify(self.token.expose(), &self.fields)
    }
}

/// What it takes to resume a session, possibly in another process: export it with
/// [`Discord::session`], import it with [`DiscordBuilder::session`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscordSession {
    /// The session id from READY.
    pub session_id: String,
    /// The last dispatch sequence seen.
    pub sequence: Option<u64>,
    /// The `resume_gateway_url` from READY.
    pub resume_url: Option<String>,
}

/// A dispatch (op 0): its sequence, its event name, and its data as raw JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch {
    /// The sequence number.
    pub seq: u64,
    /// The event name (`t`), such as `MESSAGE_CREATE`.
    pub name: Utf8Bytes,
    /// The data (`d`), raw JSON shared with the frame's buffer.
    pub data: Utf8Bytes,
}

impl Dispatch {
    /// Deserializes the data into the application's type.
    pub fn deserialize<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.data.as_str())
    }
}

/// How the discord profile treats each close code from the server. Every code not listed
/// (1000 and 1001 included, and a drop without a close frame) resumes.
pub const CLOSE_CODES: [(u16, &str, CloseClass); 14] = [
    (4000, "unknown error", CloseClass::Resume),
    (4001, "unknown opcode", CloseClass::Resume),
    (4002, "decode error", CloseClass::Resume),
    (4003, "not authenticated", CloseClass::Resume),
    (4004, "authentication failed", CloseClass::Fatal),
    (4005, "already authenticated", CloseClass::Resume),
    (4007, "invalid seq", CloseClass::Fresh),
    (4008, "rate limited", CloseClass::Resume),
    (4009, "session timed out", CloseClass::Fresh),
    (4010, "invalid shard", CloseClass::Fatal),
    (4011, "sharding required", CloseClass::Fatal),
    (4012, "invalid api version", CloseClass::Fatal),
    (4013, "invalid intents", CloseClass::Fatal),
    (4014, "disallowed intents", CloseClass::Fatal),
];

/// The class of a close code under [`CLOSE_CODES`].
pub fn close_class(code: u16) -> CloseClass {
    CLOSE_CODES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map_or(CloseClass::Resume, |(_, _, class)| *class)
}

/// The Discord gateway v10 session protocol: hello, identify or resume, heartbeats with
/// the last sequence, dispatches, reconnect, invalid session, and its close codes.
#[derive(Debug, Clone)]
pub struct Discord {
    identify: Identify,
    session: Option<Session>,
    seq: Sequence,
    interval: Option<Duration>,
    any_frame_is_ack: bool,
    max_resume_failures: u32,
    resume_failures: u32,
    resuming: bool,
    rate_limit: RateLimit,
    pending_error: Option<ProtocolError>,
    heartbeat_bounds: (Duration, Duration),
    compression: Option<Compression>,
    max_inflated: usize,
    /// The current connection's inflating context: made when its socket opens, dropped
    /// with it.
    inflater: ConnInflater,
}

/// A connection's inflating context. A clone of the profile has no connection, so none.
#[derive(Debug, Default)]
struct ConnInflater(Option<Inflater>);

impl Clone for ConnInflater {
    fn clone(&self) -> Self {
        Self(None)
    }
}

/// The most bytes a compressed message may inflate to, by default: Discord's largest
/// payloads (a big guild's GUILD_CREATE) run to a few MiB.
pub const DEFAULT_MAX_INFLATED: usize = 16 << 20;

/// The largest bound [`DiscordBuilder::max_inflated`] accepts.
pub const MAX_INFLATED_LIMIT: usize = 256 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Session {
    id: String,
    resume_url: Option<String>,
}

/// Settings of the discord profile; [`build`](Self::build) checks them.
#[derive(Debug, Clone)]
pub struct DiscordBuilder {
    profile: Discord,
}

impl Discord {
    /// A profile identifying with `identify`.
    pub fn builder(identify: Identify) -> DiscordBuilder {
        DiscordBuilder {
            profile: Self {
                identify,
                session: None,
                seq: Sequence::default(),
                interval: None,
                any_frame_is_ack: false,
                max_resume_failures: 3,
                resume_failures: 0,
                resuming: false,
                rate_limit: RateLimit {
                    max: 120,
                    per: Duration::from_secs(60),
                    reserved: 5,
                },
                pending_error: None,
                heartbeat_bounds: (Duration::from_millis(10), Duration::from_secs(600)),
                compression: None,
                max_inflated: DEFAULT_MAX_INFLATED,
                inflater: ConnInflater::default(),
            },
        }
    }

    /// The session to resume, if any, for the application to keep across its restarts.
    pub fn session(&self) -> Option<DiscordSession> {
        self.session.as_ref().map(|s| DiscordSession {
            session_id: s.id.clone(),
            sequence: self.seq.last(),
            resume_url: s.resume_url.clone(),
        })
    }

    /// The last dispatch sequence seen.
    pub fn sequence(&self) -> Option<u64> {
        self.seq.last()
    }

    fn resume_frame(&self, session: &Session) -> Frame {
        wire::resume(self.identify.token.expose(), &session.id, self.seq.last())
    }

    fn dispatch(
        &mut self,
        text: &Utf8Bytes,
        (seq, name, data): (Option<u64>, Option<Cow<'_, str>>, Option<&RawValue>),
    ) -> Inbound<Dispatch, Never> {
        let (Some(seq), Some(name)) = (seq, name) else {
            return error("dispatch without s or t");
        };
        match self.seq.advance(seq, "dispatch") {
            InSequence::Next => {}
            InSequence::Gap(gap) => self.pending_error = Some(gap),
            InSequence::Stale(stale) => return Inbound::Error(stale),
        }
        let data = data.map_or_else(|| Utf8Bytes::from_static("null"), |d| text.share(d.get()));
        let name = match name {
            Cow::Borrowed(name) => text.share(name),
            Cow::Owned(name) => Utf8Bytes::from(name),
        };
        let dispatch = Dispatch { seq, name, data };
        match dispatch.name.as_str() {
            "READY" => self.ready(dispatch),
            "RESUMED" => {
                self.resumed();
                Inbound::Ready {
                    resumed: true,
                    message: Some(dispatch),
                }
            }
            _ => Inbound::Message(dispatch),
        }
    }

    fn ready(&mut self, dispatch: Dispatch) -> Inbound<Dispatch, Never> {
        #[derive(Deserialize)]
        struct Ready {
            session_id: String,
            resume_gateway_url: Option<String>,
        }
        match dispatch.deserialize::<Ready>() {
            Ok(ready) => {
                self.session = Some(Session {
                    id: ready.session_id,
                    resume_url: ready.resume_gateway_url,
                });
                self.resumed();
                Inbound::Ready {
                    resumed: false,
                    message: Some(dispatch),
                }
            }
            Err(e) => Inbound::Error(ProtocolError::fatal(format!("READY unreadable: {e}"))),
        }
    }

    fn resumed(&mut self) {
        self.resuming = false;
        self.resume_failures = 0;
    }

    /// The server's heartbeat interval, taken within the configured bounds: a peer cannot
    /// turn liveness off with an interval of centuries, nor make the client beat in a loop
    /// with one of nothing. A clamped interval is reported (a protocol error the connection
    /// survives); one that is not a positive number is a protocol error that ends it.
    fn hello(&mut self, heartbeat_interval_ms: Option<f64>) -> Inbound<Dispatch, Never> {
        let ms = match heartbeat_interval_ms {
            Some(ms) if ms.is_finite() && ms > 0.0 => ms,
            _ => {
                return Inbound::Error(ProtocolError::fatal(
                    "hello without a positive heartbeat_interval",
                ));
            }
        };
        let (min, max) = self.heartbeat_bounds;
        let asked = Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(Duration::MAX);
        let interval = asked.clamp(min, max);
        if interval != asked {
            self.pending_error = Some(ProtocolError::new(format!(
                "hello's heartbeat_interval {ms} ms is outside {}..={} ms: {} ms is used",
                min.as_millis(),
                max.as_millis(),
                interval.as_millis()
            )));
        }
        self.interval = Some(interval);
        Inbound::Hello
    }

    fn invalid_session(resumable: Option<bool>) -> Inbound<Dispatch, Never> {
        match resumable {
            Some(true) => Inbound::InvalidSession {
                resumable: true,
                wait: (Duration::ZERO, Duration::ZERO),
            },
            Some(false) => Inbound::InvalidSession {
                resumable: false,
                wait: (Duration::from_secs(1), Duration::from_secs(5)),
            },
            None => error("invalid session without a boolean d"),
        }
    }
}

impl DiscordBuilder {
    /// The session to resume first (imported from an earlier run).
    pub fn session(mut self, session: DiscordSession) -> Self {
        self.profile.session = Some(Session {
            id: session.session_id,
            resume_url: session.resume_url,
        });
        self.profile.seq = Sequence::new(session.sequence);
        self
    }

    /// Count any inbound frame as the heartbeat's ack, for gateways that ack late under
    /// load (the protocol itself acks with op 11: the default).
    pub fn any_frame_is_ack(mut self, yes: bool) -> Self {
        self.profile.any_frame_is_ack = yes;
        self
    }

    /// After this many failed resumes in a row, identify afresh (default 3).
    pub fn max_resume_failures(mut self, n: u32) -> Self {
        self.profile.max_resume_failures = n;
        self
    }

    /// The gateway's command rate limit (default 120 per 60 s, 5 reserved for heartbeats
    /// and handshakes).
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.profile.rate_limit = limit;
        self
    }

    /// The heartbeat intervals accepted from the server's hello (10 ms to 10 min by
    /// default); one outside is clamped to them and reported.
    pub fn heartbeat_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.profile.heartbeat_bounds = (min, max);
        self
    }

    /// Transport compression: the URL asks for it (`compress=zlib-stream` or
    /// `zstd-stream`), and each connection inflates what it reads with a context of its
    /// own. Off by default.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.profile.compression = Some(compression);
        self
    }

    /// The most bytes a compressed message may inflate to (16 MiB by default, at most
    /// 256 MiB); a larger one is a protocol error that ends its connection.
    pub fn max_inflated(mut self, bytes: usize) -> Self {
        self.profile.max_inflated = bytes;
        self
    }

    /// Checks the settings.
    pub fn build(self) -> Result<Discord, ConfigError> {
        let p = &self.profile;
        if p.max_inflated == 0 {
            return Err(ConfigError::Zero {
                field: "max_inflated",
            });
        }
        ConfigError::check_at_most(&[("max_inflated", p.max_inflated, MAX_INFLATED_LIMIT)])?;
        let (min, max) = p.heartbeat_bounds;
        if min.is_zero() {
            return Err(ConfigError::Zero {
                field: "heartbeat_bounds",
            });
        }
        if max < min {
            return Err(ConfigError::Conflict {
                field: "heartbeat_bounds",
                problem: "the longest interval must not be below the shortest",
            });
        }
        crate::timer::check_delays(&[("heartbeat_bounds", max)])?;
        if p.max_resume_failures == 0 {
            return Err(ConfigError::Zero {
                field: "max_resume_failures",
            });
        }
        if p.rate_limit.max == 0 || p.rate_limit.per.is_zero() {
            return Err(ConfigError::Zero {
                field: "rate_limit",
            });
        }
        crate::timer::check_delays(&[("rate_limit", p.rate_limit.per)])?;
        if p.rate_limit.reserved >= p.rate_limit.max {
            return Err(ConfigError::Conflict {
                field: "rate_limit",
                problem: "reserved slots must leave some for the application",
            });
        }
        Ok(self.profile)
    }
}

/// Discord has no request/response of its own.
type Never = std::convert::Infallible;

fn error(reason: impl Into<Cow<'static, str>>) -> Inbound<Dispatch, Never> {
    Inbound::Error(ProtocolError::new(reason))
}

impl Protocol for Discord {
    type Message = Dispatch;
    type Request = Never;
    type Response = Never;
    type Answer = std::convert::Infallible;

    /// The resume URL READY gave, as given: the adapter adds the application's own query
    /// to it, and `v` and `encoding` where missing ([`query_defaults`](Self::query_defaults)).
    fn endpoint(&self) -> Endpoint {
        match &self.session {
            Some(Session {
                resume_url: Some(url),
                ..
            }) => Endpoint::Url(url.clone()),
            _ => Endpoint::Primary,
        }
    }

    fn query_defaults(&self) -> &'static [(&'static str, &'static str)] {
        match self.compression {
            None => &[("v", "10"), ("encoding", "json")],
            Some(Compression::ZlibStream) => &[
                ("v", "10"),
                ("encoding", "json"),
                ("compress", "zlib-stream"),
            ],
            Some(Compression::ZstdStream) => &[
                ("v", "10"),
                ("encoding", "json"),
                ("compress", "zstd-stream"),
            ],
        }
    }

    fn on_open(&mut self) -> OnOpen {
        self.interval = None;
        self.resuming = false;
        // The last connection's context goes with it; this one's starts empty.
        self.inflater = ConnInflater(None);
        if let Some(compression) = self.compression {
            match Inflater::new(compression, self.max_inflated) {
                Ok(inflater) => self.inflater = ConnInflater(Some(inflater)),
                Err(e) => self.pending_error = Some(ProtocolError::new(e.to_string())),
            }
        }
        OnOpen::AwaitHello
    }

    fn handshake(&mut self) -> Option<Frame> {
        match &self.session {
            Some(session) => {
                self.resuming = true;
                Some(self.resume_frame(session))
            }
            // A fresh session numbers its dispatches from the start: whatever an earlier,
            // unfinished one saw (a READY that could not be read) must not make the new
            // READY look stale.
            None => {
                self.seq = Sequence::default();
                Some(self.identify.frame())
            }
        }
    }

    fn on_frame(&mut self, frame: Frame) -> Inbound<Dispatch, Never> {
        let text = match frame {
            Frame::Text(text) => text,
            Frame::Binary(bytes) => match self.inflater.0.as_mut() {
                Some(inflater) => match inflater.push(&bytes) {
                    Ok(Some(text)) => Utf8Bytes::from(text),
                    // A zlib message goes on in the next frame.
                    Ok(None) => return Inbound::Ignored,
                    // The stream is out of step: nothing more can be read on this socket.
                    Err(e) => {
                        return Inbound::Error(ProtocolError::fatal(format!(
                            "transport compression: {e}"
                        )));
                    }
                },
                None => {
                    return error(
                        "binary frame: compression was not asked for, and ETF is not spoken",
                    );
                }
            },
            _ => return Inbound::Ignored,
        };
        let frame = match wire::read_server(text.as_str()) {
            Ok(frame) => frame,
            Err(e) => return error(format!("malformed frame: {e}")),
        };
        match frame {
            ServerFrame::Dispatch { seq, name, data } => self.dispatch(&text, (seq, name, data)),
            ServerFrame::HeartbeatRequest => Inbound::HeartbeatRequest,
            ServerFrame::Reconnect => Inbound::Reconnect,
            ServerFrame::InvalidSession { resumable } => Self::invalid_session(resumable),
            ServerFrame::Hello {
                heartbeat_interval_ms,
            } => self.hello(heartbeat_interval_ms),
            ServerFrame::HeartbeatAck => Inbound::HeartbeatAck,
            ServerFrame::Unknown(op) => error(format!("unknown opcode {op}")),
        }
    }

    fn poll_protocol_error(&mut self) -> Option<ProtocolError> {
        self.pending_error.take()
    }

    fn liveness(&self) -> Liveness {
        Liveness {
            heartbeat_interval: self.interval,
            silence_timeout: None,
            any_frame_is_ack: self.any_frame_is_ack,
        }
    }

    fn heartbeat(&mut self) -> Option<Frame> {
        Some(wire::heartbeat(self.seq.last()))
    }

    fn encode_request(&mut self, _id: RequestId, request: Never) -> Frame {
        match request {}
    }

    fn classify_close(&self, cause: &CloseCause) -> CloseClass {
        cause.code().map_or(CloseClass::Resume, close_class)
    }

    fn close_frame(&self, intent: CloseIntent) -> CloseFrame {
        match intent {
            // 1000 and 1001 end the session: right for shutdown and a fresh start, never
            // for a close that means to resume.
            CloseIntent::Shutdown => CloseFrame::new(1000, "shutdown"),
            CloseIntent::Reconnect(ReconnectMode::Fresh) => CloseFrame::new(1000, "new session"),
            CloseIntent::Reconnect(ReconnectMode::Resume) => CloseFrame::new(4000, "resuming"),
        }
    }

    fn can_resume(&self) -> bool {
        self.session.is_some()
    }

    fn clear_resume(&mut self) {
        self.session = None;
        self.seq = Sequence::default();
        self.resume_failures = 0;
    }

    /// A connect to the resume URL failed: the next attempts go to the main URL (still
    /// resuming), and the failure counts toward the circuit breaker.
    fn on_open_failed(&mut self) {
        if let Some(session) = &mut self.session {
            if session.resume_url.take().is_some() {
                self.count_resume_failure();
            }
        }
    }

    fn on_connection_end(&mut self, reached_ready: bool) {
        if self.resuming && !reached_ready {
            self.count_resume_failure();
        }
        self.resuming = false;
    }

    fn rate_limit(&self) -> Option<RateLimit> {
        Some(self.rate_limit)
    }
}

impl Discord {
    /// The resume circuit breaker: after `max_resume_failures` in a row, start afresh on
    /// the main URL, so a stale resume URL or session cannot trap the client.
    fn count_resume_failure(&mut self) {
        self.resume_failures += 1;
        if self.resume_failures >= self.max_resume_failures {
            self.clear_resume();
        }
    }
}
