//! The Discord gateway's frames, both ways, written once: the client profile, the server
//! half (`tether-gateway`) and the scripted test server all read and write them here.
//!
//! ```text
//! {"op":10,"d":{"heartbeat_interval":41250}}          hello            server -> client
//! {"op":2,"d":{"token":"..","intents":513,..}}       identify         client -> server
//! {"op":0,"s":1,"t":"READY","d":{..}}                 dispatch         server -> client
//! {"op":1,"d":1}                                      heartbeat        either way
//! {"op":11}                                           heartbeat ack    server -> client
//! {"op":6,"d":{"token":"..","session_id":"..","seq":1}} resume         client -> server
//! {"op":7,"d":null}                                   reconnect        server -> client
//! {"op":9,"d":false}                                  invalid session  server -> client
//! ```
//!
//! Reading parses the envelope and what each opcode's `d` must hold for the session to go
//! on; the rest of `d` stays raw JSON, shared with the frame's buffer. Judging what was read
//! (a hello whose interval is not positive, a dispatch without a sequence) is the reader's
//! business: the wire says what is there, not what it means to whom.

use std::borrow::Cow;
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::frame::{Frame, Utf8Bytes};
use crate::protocol::Malformed;

/// The opcodes of gateway v10.
pub mod op {
    /// An event, numbered (server).
    pub const DISPATCH: u64 = 0;
    /// A heartbeat (client), or a request for one at once (server).
    pub const HEARTBEAT: u64 = 1;
    /// Start a session (client).
    pub const IDENTIFY: u64 = 2;
    /// Presence update (client).
    pub const PRESENCE_UPDATE: u64 = 3;
    /// Voice state update (client).
    pub const VOICE_STATE_UPDATE: u64 = 4;
    /// Resume a session (client).
    pub const RESUME: u64 = 6;
    /// Reconnect and resume (server).
    pub const RECONNECT: u64 = 7;
    /// Request guild members (client).
    pub const REQUEST_GUILD_MEMBERS: u64 = 8;
    /// The session is invalid; `d` says whether it may be resumed (server).
    pub const INVALID_SESSION: u64 = 9;
    /// The first frame, with the heartbeat interval (server).
    pub const HELLO: u64 = 10;
    /// A heartbeat acknowledged (server).
    pub const HEARTBEAT_ACK: u64 = 11;
    /// Request soundboard sounds (client).
    pub const REQUEST_SOUNDBOARD_SOUNDS: u64 = 31;

    /// The opcodes a client may send.
    pub const FROM_CLIENT: [u64; 7] = [
        HEARTBEAT,
        IDENTIFY,
        PRESENCE_UPDATE,
        VOICE_STATE_UPDATE,
        RESUME,
        REQUEST_GUILD_MEMBERS,
        REQUEST_SOUNDBOARD_SOUNDS,
    ];
}

/// The envelope of a frame, either way. `d` stays raw.
#[derive(Debug, Deserialize)]
pub struct Envelope<'a> {
    /// The opcode.
    pub op: u64,
    /// A dispatch's sequence number.
    pub s: Option<u64>,
    /// A dispatch's event name.
    #[serde(borrow)]
    pub t: Option<Cow<'a, str>>,
    /// The payload, raw.
    #[serde(borrow)]
    pub d: Option<&'a RawValue>,
}

impl<'a> Envelope<'a> {
    /// Reads the envelope of `text`.
    pub fn read(text: &'a str) -> Result<Self, Malformed> {
        serde_json::from_str(text).map_err(|e| Malformed::unreadable("", &e))
    }
}

/// A frame a server sends, as read by a client.
#[derive(Debug)]
pub enum ServerFrame<'a> {
    /// Op 0. Without `seq` or `name` it is no dispatch a session can count.
    Dispatch {
        /// `s`.
        seq: Option<u64>,
        /// `t`.
        name: Option<Cow<'a, str>>,
        /// `d`, raw.
        data: Option<&'a RawValue>,
    },
    /// Op 1: beat now.
    HeartbeatRequest,
    /// Op 7: reconnect and resume.
    Reconnect,
    /// Op 9; `None` when `d` is not a boolean.
    InvalidSession {
        /// Whether the session may be resumed.
        resumable: Option<bool>,
    },
    /// Op 10; `None` when `d.heartbeat_interval` is missing or not a number.
    Hello {
        /// The interval asked for, in milliseconds.
        heartbeat_interval_ms: Option<f64>,
    },
    /// Op 11.
    HeartbeatAck,
    /// Any other opcode.
    Unknown(u64),
}

/// Reads a server's frame.
pub fn read_server(text: &str) -> Result<ServerFrame<'_>, Malformed> {
    #[derive(Deserialize)]
    struct Hello {
        heartbeat_interval: f64,
    }
    let envelope = Envelope::read(text)?;
    let d = envelope.d;
    Ok(match envelope.op {
        op::DISPATCH => ServerFrame::Dispatch {
            seq: envelope.s,
            name: envelope.t,
            data: d,
        },
        op::HEARTBEAT => ServerFrame::HeartbeatRequest,
        op::RECONNECT => ServerFrame::Reconnect,
        op::INVALID_SESSION => ServerFrame::InvalidSession {
            resumable: d.and_then(|d| serde_json::from_str::<bool>(d.get()).ok()),
        },
        op::HELLO => ServerFrame::Hello {
            heartbeat_interval_ms: d
                .and_then(|d| serde_json::from_str::<Hello>(d.get()).ok())
                .map(|hello| hello.heartbeat_interval),
        },
        op::HEARTBEAT_ACK => ServerFrame::HeartbeatAck,
        other => ServerFrame::Unknown(other),
    })
}

/// A frame a client sends, as read by a server.
#[derive(Debug)]
pub enum ClientFrame<'a> {
    /// Op 1, with the last sequence the client saw (`None` for `null`).
    Heartbeat {
        /// `d`.
        seq: Option<u64>,
    },
    /// Op 2.
    Identify {
        /// `d.token`; `None` when missing.
        token: Option<Cow<'a, str>>,
        /// The whole `d`, raw (intents, properties, shard...).
        d: &'a RawValue,
    },
    /// Op 6.
    Resume {
        /// `d.token`; `None` when missing.
        token: Option<Cow<'a, str>>,
        /// `d.session_id`.
        session_id: Cow<'a, str>,
        /// `d.seq`: the last sequence the client saw.
        seq: Option<u64>,
    },
    /// Another opcode a client may send (presence, voice state, member requests): for the
    /// application.
    Application(u64),
    /// An opcode no client sends.
    Unknown(u64),
}

/// Reads a client's frame. An identify or resume whose `d` is missing or unreadable is
/// malformed: the session cannot go on from it.
pub fn read_client(text: &str) -> Result<ClientFrame<'_>, Malformed> {
    #[derive(Deserialize)]
    struct Identify<'a> {
        #[serde(borrow)]
        token: Option<Cow<'a, str>>,
    }
    #[derive(Deserialize)]
    struct Resume<'a> {
        #[serde(borrow)]
        token: Option<Cow<'a, str>>,
        #[serde(borrow)]
        session_id: Cow<'a, str>,
        seq: Option<u64>,
    }
    let envelope = Envelope::read(text)?;
    let d = envelope.d;
    match envelope.op {
        op::HEARTBEAT => Ok(ClientFrame::Heartbeat {
            seq: d.and_then(|d| serde_json::from_str::<Option<u64>>(d.get()).ok().flatten()),
        }),
        op::IDENTIFY => {
            let d = d.ok_or("identify without d")?;
            let identify: Identify<'_> = serde_json::from_str(d.get())
                .map_err(|e| Malformed::unreadable("identify: ", &e))?;
            Ok(ClientFrame::Identify {
                token: identify.token,
                d,
            })
        }
        op::RESUME => {
            let d = d.ok_or("resume without d")?;
            let resume: Resume<'_> =
                serde_json::from_str(d.get()).map_err(|e| Malformed::unreadable("resume: ", &e))?;
            Ok(ClientFrame::Resume {
                token: resume.token,
                session_id: resume.session_id,
                seq: resume.seq,
            })
        }
        op if op::FROM_CLIENT.contains(&op) => Ok(ClientFrame::Application(op)),
        op => Ok(ClientFrame::Unknown(op)),
    }
}

/// `text` as a JSON string.
pub fn json_string(text: &str) -> String {
    Value::from(text).to_string()
}

// Server to client.

/// Op 10 with `interval`.
pub fn hello(interval: Duration) -> Frame {
    Frame::text(format!(
        "{{\"op\":10,\"d\":{{\"heartbeat_interval\":{}}}}}",
        interval.as_millis()
    ))
}

/// Op 11.
pub fn heartbeat_ack() -> Frame {
    Frame::text(Utf8Bytes::from_static("{\"op\":11}"))
}

/// Op 1 from the server: beat now.
pub fn heartbeat_request() -> Frame {
    Frame::text(Utf8Bytes::from_static("{\"op\":1,\"d\":null}"))
}

/// Op 7.
pub fn reconnect() -> Frame {
    Frame::text(Utf8Bytes::from_static("{\"op\":7,\"d\":null}"))
}

/// Op 9.
pub fn invalid_session(resumable: bool) -> Frame {
    Frame::text(format!("{{\"op\":9,\"d\":{resumable}}}"))
}

/// Op 0: event `name` numbered `seq`, its data `data` (JSON text).
pub fn dispatch(seq: u64, name: &str, data: &str) -> Frame {
    Frame::text(format!(
        "{{\"op\":0,\"s\":{seq},\"t\":{},\"d\":{data}}}",
        json_string(name)
    ))
}

// Client to server.

/// Op 1 with the last sequence seen.
pub fn heartbeat(seq: Option<u64>) -> Frame {
    match seq {
        Some(seq) => Frame::text(format!("{{\"op\":1,\"d\":{seq}}}")),
        None => Frame::text(Utf8Bytes::from_static("{\"op\":1,\"d\":null}")),
    }
}

/// Op 2: `fields` with `token` set. The frame is secret text (it never reaches `Debug`).
pub fn identify(token: &str, fields: &Map<String, Value>) -> Frame {
    let mut d = fields.clone();
    d.insert("token".into(), Value::from(token));
    let frame = serde_json::json!({ "op": op::IDENTIFY, "d": d });
    Frame::Text(Utf8Bytes::secret(frame.to_string()))
}

/// Op 6. The frame is secret text.
pub fn resume(token: &str, session_id: &str, seq: Option<u64>) -> Frame {
    let frame = serde_json::json!({
        "op": op::RESUME,
        "d": { "token": token, "session_id": session_id, "seq": seq },
    });
    Frame::Text(Utf8Bytes::secret(frame.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn text(frame: &Frame) -> &str {
        match frame {
            Frame::Text(text) => text.as_str(),
            other => panic!("a text frame, not {other:?}"),
        }
    }

    #[test]
    fn what_a_server_writes_a_client_reads_back() {
        let read = |frame: &Frame| format!("{:?}", read_server(text(frame)).unwrap());
        assert_eq!(
            read(&hello(Duration::from_millis(41_250))),
            "Hello { heartbeat_interval_ms: Some(41250.0) }"
        );
        assert_eq!(read(&heartbeat_ack()), "HeartbeatAck");
        assert_eq!(read(&heartbeat_request()), "HeartbeatRequest");
        assert_eq!(read(&reconnect()), "Reconnect");
        assert_eq!(
            read(&invalid_session(true)),
            "InvalidSession { resumable: Some(true) }"
        );
        let frame = dispatch(3, "MESSAGE_CREATE", "{\"n\":1}");
        let ServerFrame::Dispatch { seq, name, data } = read_server(text(&frame)).unwrap() else {
            panic!("a dispatch");
        };
        assert_eq!(
            (seq, name.as_deref(), data.map(RawValue::get)),
            (Some(3), Some("MESSAGE_CREATE"), Some("{\"n\":1}"))
        );
    }

    #[test]
    fn what_a_client_writes_a_server_reads_back() {
        let mut fields = Map::new();
        fields.insert("intents".into(), Value::from(513));
        let frame = identify("secret-token", &fields);
        assert!(!format!("{frame:?}").contains("secret-token"));
        let ClientFrame::Identify { token, d } = read_client(text(&frame)).unwrap() else {
            panic!("an identify");
        };
        assert_eq!(token.as_deref(), Some("secret-token"));
        assert!(d.get().contains("\"intents\":513"));
        let frame = resume("t", "s-1", Some(9));
        let ClientFrame::Resume {
            token,
            session_id,
            seq,
        } = read_client(text(&frame)).unwrap()
        else {
            panic!("a resume");
        };
        assert_eq!(
            (token.as_deref(), session_id.as_ref(), seq),
            (Some("t"), "s-1", Some(9))
        );
        let beat = |seq| format!("{:?}", read_client(text(&heartbeat(seq))).unwrap());
        assert_eq!(beat(Some(4)), "Heartbeat { seq: Some(4) }");
        assert_eq!(beat(None), "Heartbeat { seq: None }");
        assert_eq!(
            format!("{:?}", read_client("{\"op\":3,\"d\":{}}").unwrap()),
            "Application(3)"
        );
        assert_eq!(
            format!("{:?}", read_client("{\"op\":10}").unwrap()),
            "Unknown(10)"
        );
    }

    #[test]
    fn unreadable_frames_are_malformed_and_never_quoted() {
        let leaked = "{\"op\":2,\"d\":{\"token\":[\"tok-abc\"]}}";
        let e = read_client(leaked).unwrap_err();
        assert!(!e.reason().contains("tok-abc"), "{e}");
        assert!(e.reason().starts_with("identify: "), "{e}");
        assert_eq!(
            read_client("{\"op\":6}").unwrap_err().reason(),
            "resume without d"
        );
        assert!(read_server("not json").is_err());
    }
}
