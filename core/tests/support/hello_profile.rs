//! A small session protocol for tests, written against the `Protocol` trait alone: the
//! server sends a hello with the heartbeat interval, the client identifies or resumes, the
//! server says ready or resumed. It shows what the plain profile cannot (hello, resume,
//! server reconnect, invalid session, fatal and fresh close codes) without changing the
//! machine.
//!
//! Frames are text: `hello:<ms>` (or `hello`, with no heartbeat), `ready`, `resumed`, `ack`, `beat?`, `reconnect`,
//! `invalid:true` / `invalid:false`, `bad` (malformed); anything else is a message. The
//! client writes `identify`, `resume`, and `beat` as its heartbeat.

use std::time::Duration;

use tether_core::protocol::{CloseClass, CloseIntent, Inbound, OnOpen};
use tether_core::{CloseCause, CloseFrame, Frame, Malformed, Protocol, ReconnectMode};

#[derive(Debug, Clone, Default)]
pub struct HelloProfile {
    /// Set once a session was ready; the next handshake resumes it.
    pub session: Option<u32>,
    /// The peer advertised no application heartbeat (F6): the profile offers none.
    pub no_heartbeat: bool,
    sessions_started: u32,
}

impl Protocol for HelloProfile {
    type Message = Frame;

    fn on_open(&mut self) -> OnOpen {
        OnOpen::AwaitHello
    }

    fn handshake(&mut self) -> Option<Frame> {
        Some(Frame::text(if self.session.is_some() {
            "resume"
        } else {
            "identify"
        }))
    }

    fn on_frame(&mut self, frame: Frame) -> Inbound<Frame> {
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
            "hello" => Inbound::Hello {
                heartbeat_interval: None,
            },
            "bad" => Inbound::Malformed(Malformed::new("not a frame of this protocol")),
            s => match s.strip_prefix("hello:").map(str::parse::<u64>) {
                Some(Ok(ms)) => Inbound::Hello {
                    heartbeat_interval: Some(Duration::from_millis(ms)),
                },
                Some(Err(_)) => Inbound::Malformed(Malformed::new("bad hello")),
                None => Inbound::Message(frame),
            },
        }
    }

    fn heartbeat_interval(&self) -> Option<Duration> {
        None
    }

    fn heartbeat(&mut self) -> Option<Frame> {
        (!self.no_heartbeat).then(|| Frame::text("beat"))
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
