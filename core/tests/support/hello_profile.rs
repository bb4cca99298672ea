//! A small session protocol for tests, written against the `Protocol` trait alone: the
//! server sends a hello with the heartbeat interval, the client identifies or resumes, the
//! server says ready or resumed. It shows what the plain profile cannot (hello, resume,
//! server reconnect, invalid session, fatal and fresh close codes) without changing the
//! machine.
//!
//! Frames are text: `hello:<ms>` (or `hello`, with no heartbeat), `ready`, `resumed`, `ack`, `beat?`, `reconnect`,
//! `invalid:true` / `invalid:false`, `bad` (malformed), `broken` (a fatal error); anything else is a message. The
//! client writes `identify`, `resume`, and `beat` as its heartbeat.

use std::time::Duration;

use tether_core::protocol::{CloseClass, CloseIntent, Inbound, Liveness, OnOpen};
use tether_core::{
    CloseCause, CloseFrame, Frame, Protocol, ProtocolError, ReconnectMode, RequestId,
};

#[derive(Debug, Clone, Default)]
pub struct HelloProfile {
    /// Set once a session was ready; the next handshake resumes it.
    pub session: Option<u32>,
    /// The peer advertised no application heartbeat (F6): the profile offers none.
    pub no_heartbeat: bool,
    interval: Option<Duration>,
    sessions_started: u32,
}

impl Protocol for HelloProfile {
    type Message = Frame;
    type Request = std::convert::Infallible;
    type Response = std::convert::Infallible;
    type Answer = std::convert::Infallible;

    fn on_open(&mut self) -> OnOpen {
        self.interval = None;
        OnOpen::AwaitHello
    }

    fn handshake(&mut self) -> Option<Frame> {
        Some(Frame::text(if self.session.is_some() {
            "resume"
        } else {
            "identify"
        }))
    }

    fn on_frame(&mut self, frame: Frame) -> Inbound<Frame, Self::Response> {
        let Frame::Text(text) = &frame else {
            return Inbound::Ignored;
        };
        match text.as_str() {
            "ready" => {
                self.sessions_started += 1;
                self.session = Some(self.sessions_started);
                Inbound::Ready {
                    resumed: false,
                    message: None,
                }
            }
            "resumed" => Inbound::Ready {
                resumed: true,
                message: None,
            },
            "ack" => Inbound::HeartbeatAck,
            "beat?" => Inbound::HeartbeatRequest,
            "reconnect" => Inbound::Reconnect,
            "invalid:true" => Inbound::InvalidSession {
                resumable: true,
                wait: (Duration::ZERO, Duration::ZERO),
            },
            "invalid:false" => Inbound::InvalidSession {
                resumable: false,
                wait: (Duration::from_secs(1), Duration::from_secs(5)),
            },
            "hello" => Inbound::Hello,
            "bad" => Inbound::Error(ProtocolError::new("not a frame of this protocol")),
            "broken" => Inbound::Error(ProtocolError::fatal("cannot go on")),
            s => match s.strip_prefix("hello:").map(str::parse::<u64>) {
                Some(Ok(ms)) => {
                    self.interval = Some(Duration::from_millis(ms));
                    Inbound::Hello
                }
                Some(Err(_)) => Inbound::Error(ProtocolError::new("bad hello")),
                None => Inbound::Message(frame),
            },
        }
    }

    fn liveness(&self) -> Liveness {
        Liveness {
            heartbeat_interval: self.interval,
            ..Liveness::default()
        }
    }

    fn heartbeat(&mut self) -> Option<Frame> {
        (!self.no_heartbeat).then(|| Frame::text("beat"))
    }

    fn encode_request(&mut self, _id: RequestId, request: Self::Request) -> Frame {
        match request {}
    }

    fn classify_close(&self, cause: &CloseCause) -> CloseClass {
        match cause.code() {
            Some(4004) => CloseClass::Fatal,
            Some(4007) => CloseClass::Fresh,
            _ => CloseClass::Resume,
        }
    }

    fn close_frame(&self, intent: CloseIntent) -> CloseFrame {
        match intent {
            CloseIntent::Shutdown | CloseIntent::Reconnect(ReconnectMode::Fresh) => {
                CloseFrame::new(1000, "bye")
            }
            CloseIntent::Reconnect(ReconnectMode::Resume) => CloseFrame::new(4000, "resume"),
        }
    }

    fn can_resume(&self) -> bool {
        self.session.is_some()
    }

    fn clear_resume(&mut self) {
        self.session = None;
    }
}
