//! The server side's frames: what clients send, read with only their envelope parsed, and
//! what the gateway writes.

use std::borrow::Cow;
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::event::RemoteError;
use crate::frame::Frame;
use crate::protocol::rpc::Envelope;

/// Why a client frame could not be read. It never quotes the frame: a client's bytes may
/// be a secret (a token where an object was due), and reasons reach logs.
pub(crate) type Malformed = String;

/// What was wrong with a client's JSON, by kind and place only: serde's own message quotes
/// the offending value.
fn unreadable(context: &str, e: &serde_json::Error) -> Malformed {
    use serde_json::error::Category;
    let kind = match e.classify() {
        Category::Syntax => "not JSON",
        Category::Eof => "JSON cut short",
        Category::Data => "a field missing or of the wrong type",
        Category::Io => "unreadable",
    };
    format!("{context}{kind} (line {}, column {})", e.line(), e.column())
}

/// A discord client frame.
pub(crate) enum DiscordIn<'a> {
    Heartbeat,
    Identify {
        token: Option<Cow<'a, str>>,
        d: &'a RawValue,
    },
    Resume {
        token: Option<Cow<'a, str>>,
        session_id: Cow<'a, str>,
        seq: Option<u64>,
    },
    /// Presence updates, voice state, member requests: for the application.
    Application,
    Unknown(u64),
}

/// The discord opcodes a client may send.
const CLIENT_OPS: [u64; 6] = [1, 2, 3, 4, 6, 8];

pub(crate) fn read_discord(text: &str) -> Result<DiscordIn<'_>, Malformed> {
    #[derive(Deserialize)]
    struct Envelope<'a> {
        op: u64,
        #[serde(borrow)]
        d: Option<&'a RawValue>,
    }
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
    let envelope: Envelope<'_> = serde_json::from_str(text).map_err(|e| unreadable("", &e))?;
    let d = envelope.d;
    match envelope.op {
        1 => Ok(DiscordIn::Heartbeat),
        2 => {
            let d = d.ok_or("identify without d")?;
            let identify: Identify<'_> =
                serde_json::from_str(d.get()).map_err(|e| unreadable("identify: ", &e))?;
            Ok(DiscordIn::Identify {
                token: identify.token,
                d,
            })
        }
        6 => {
            let d = d.ok_or("resume without d")?;
            let resume: Resume<'_> =
                serde_json::from_str(d.get()).map_err(|e| unreadable("resume: ", &e))?;
            Ok(DiscordIn::Resume {
                token: resume.token,
                session_id: resume.session_id,
                seq: resume.seq,
            })
        }
        op if CLIENT_OPS.contains(&op) => Ok(DiscordIn::Application),
        op => Ok(DiscordIn::Unknown(op)),
    }
}

pub(crate) fn hello(interval: Duration) -> Frame {
    Frame::text(format!(
        "{{\"op\":10,\"d\":{{\"heartbeat_interval\":{}}}}}",
        interval.as_millis()
    ))
}

pub(crate) fn heartbeat_ack() -> Frame {
    Frame::text(crate::frame::Utf8Bytes::from_static("{\"op\":11}"))
}

pub(crate) fn invalid_session(resumable: bool) -> Frame {
    Frame::text(format!("{{\"op\":9,\"d\":{resumable}}}"))
}

/// `name` as a JSON string.
pub(crate) fn json_string(name: &str) -> String {
    serde_json::Value::from(name).to_string()
}

pub(crate) fn dispatch(seq: u64, name: &str, data: &str) -> Frame {
    Frame::text(format!(
        "{{\"op\":0,\"s\":{seq},\"t\":{},\"d\":{data}}}",
        json_string(name)
    ))
}

pub(crate) fn ready_data(session_id: &str, resume_url: Option<&str>) -> String {
    let mut d = serde_json::json!({ "v": 10, "session_id": session_id });
    if let Some(url) = resume_url {
        d["resume_gateway_url"] = url.into();
    }
    d.to_string()
}

/// An rpc client frame.
pub(crate) enum RpcIn<'a> {
    Connect {
        params: Option<&'a RawValue>,
        id: &'a RawValue,
    },
    Ping {
        id: &'a RawValue,
    },
    /// A request or event for the application.
    Application,
    /// An answer to one of our invokes.
    Answer {
        invoke: Option<u64>,
        answer: Result<&'a str, RemoteError>,
    },
}

pub(crate) fn read_rpc(text: &str) -> Result<RpcIn<'_>, Malformed> {
    let e: Envelope<'_> = serde_json::from_str(text).map_err(|e| unreadable("", &e))?;
    match e.kind.as_ref() {
        "req" => {
            let id = e.id.ok_or("request without id")?;
            match e.method.as_deref().ok_or("request without method")? {
                "connect" => Ok(RpcIn::Connect {
                    params: e.params,
                    id,
                }),
                "ping" => Ok(RpcIn::Ping { id }),
                _ => Ok(RpcIn::Application),
            }
        }
        "event" => Ok(RpcIn::Application),
        "res" => {
            let id = e.id.ok_or("response without id")?;
            let answer = match (e.ok, e.error) {
                (Some(true), _) => Ok(e.payload.map_or("null", RawValue::get)),
                (Some(false), Some(err)) => Err(err.into_remote()),
                _ => return Err("response without ok, or an error without details".into()),
            };
            Ok(RpcIn::Answer {
                invoke: serde_json::from_str::<u64>(id.get()).ok(),
                answer,
            })
        }
        other => Err(format!("unknown frame type ({} bytes)", other.len())),
    }
}

pub(crate) fn rpc_challenge(nonce: &str) -> Frame {
    Frame::text(format!(
        "{{\"type\":\"event\",\"event\":\"connect.challenge\",\"payload\":{{\"nonce\":{}}}}}",
        json_string(nonce)
    ))
}

pub(crate) fn rpc_ok(id: &str, payload: &str) -> Frame {
    Frame::text(format!(
        "{{\"type\":\"res\",\"id\":{id},\"ok\":true,\"payload\":{payload}}}"
    ))
}

pub(crate) fn rpc_error(id: &str, code: &str, message: &str) -> Frame {
    let error = serde_json::json!({ "code": code, "message": message });
    Frame::text(format!(
        "{{\"type\":\"res\",\"id\":{id},\"ok\":false,\"error\":{error}}}"
    ))
}

pub(crate) fn rpc_welcome(tick: Duration) -> String {
    format!(
        "{{\"methods\":[\"ping\"],\"tick_interval_ms\":{}}}",
        tick.as_millis()
    )
}

pub(crate) fn rpc_tick() -> Frame {
    Frame::text(crate::frame::Utf8Bytes::from_static(
        "{\"type\":\"event\",\"event\":\"tick\"}",
    ))
}

pub(crate) fn rpc_event(seq: u64, name: &str, payload: &str) -> Frame {
    Frame::text(format!(
        "{{\"type\":\"event\",\"event\":{},\"payload\":{payload},\"seq\":{seq}}}",
        json_string(name)
    ))
}

pub(crate) fn rpc_invoke(id: u64, method: &str, params: &str) -> Frame {
    Frame::text(format!(
        "{{\"type\":\"req\",\"id\":{id},\"method\":{},\"params\":{params}}}",
        json_string(method)
    ))
}
