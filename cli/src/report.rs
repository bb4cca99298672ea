//! How the command shows a session's events: one JSON object per line (`--json`), or one
//! human line each, coloured on a terminal and plain when piped.

use std::io::IsTerminal;
use std::time::Instant;

use serde_json::{Value, json};
use tether_core::{
    CloseCause, ConnId, Dispatch, Event, Frame, Phase, Reason, RpcMessage, Utf8Bytes,
};

/// A message type the command can show.
pub trait Shown {
    /// The message as a JSON event line.
    fn json(&self, conn: ConnId) -> Value;
    /// The message as text for stdout.
    fn text(&self) -> String;
    /// The frame that answers it, when the peer waits for an answer.
    fn answer(&self) -> Option<Frame> {
        None
    }
}

/// Raw JSON kept as JSON when it parses, as a string when it does not.
fn raw_json(text: &Utf8Bytes) -> Value {
    serde_json::from_str(text.as_str()).unwrap_or_else(|_| Value::from(text.as_str()))
}

impl Shown for Frame {
    fn json(&self, conn: ConnId) -> Value {
        match self {
            Frame::Text(text) => {
                json!({"event": "message", "conn": conn.get(), "text": text.as_str()})
            }
            other => json!({"event": "message", "conn": conn.get(), "binary": other.len()}),
        }
    }

    fn text(&self) -> String {
        match self {
            Frame::Text(text) => text.as_str().to_owned(),
            other => format!("<{} bytes of binary>", other.len()),
        }
    }
}

impl Shown for Dispatch {
    fn json(&self, conn: ConnId) -> Value {
        json!({"event": "dispatch", "conn": conn.get(), "seq": self.seq, "name": self.name.as_str(), "data": raw_json(&self.data)})
    }

    fn text(&self) -> String {
        format!("{} {}", self.name, self.data)
    }
}

impl Shown for RpcMessage {
    fn json(&self, conn: ConnId) -> Value {
        match self {
            RpcMessage::Event(e) => {
                json!({"event": "rpc_event", "conn": conn.get(), "name": e.name.as_str(), "seq": e.seq, "payload": raw_json(&e.payload)})
            }
            RpcMessage::Call(c) => {
                json!({"event": "call", "conn": conn.get(), "id": raw_json(&c.id), "method": c.method.as_str(), "params": raw_json(&c.params)})
            }
        }
    }

    fn text(&self) -> String {
        match self {
            RpcMessage::Event(e) => format!("{} {}", e.name, e.payload),
            RpcMessage::Call(c) => format!("call {} {}", c.method, c.params),
        }
    }

    /// An interactive client runs no methods: it says so at once, so the server's invoke
    /// ends now instead of at its timeout.
    fn answer(&self) -> Option<Frame> {
        match self {
            RpcMessage::Call(c) => {
                Some(c.reply_error("NOT_IMPLEMENTED", "tether connect answers no calls"))
            }
            RpcMessage::Event(_) => None,
        }
    }
}

/// The close code behind a reason, when a close frame carried it.
pub fn close_code(reason: &Reason) -> Option<u16> {
    match reason {
        Reason::Closed(CloseCause::Frame(frame)) => Some(frame.code),
        _ => None,
    }
}

/// An event as a JSON line; `None` for those only the human view shows (transitions).
pub fn event_json<M: Shown, R: std::fmt::Debug>(event: &Event<M, R>) -> Option<Value> {
    Some(match event {
        Event::Transition(t) => match t.reason {
            Reason::InvalidSession { resumable }
                if t.conn.is_some() && t.to == Phase::Handshaking =>
            {
                json!({"event": "invalid_session", "conn": t.conn.map(ConnId::get), "resumable": resumable, "after_ms": t.next_delay.map(|d| d.as_millis() as u64)})
            }
            _ => return None,
        },
        Event::Connecting { conn, attempt } => {
            json!({"event": "connecting", "conn": conn.get(), "attempt": attempt})
        }
        Event::Ready { conn, resumed } => {
            json!({"event": "ready", "conn": conn.get(), "resumed": resumed})
        }
        Event::Message { conn, message } => message.json(*conn),
        Event::Disconnected { conn, reason } => {
            json!({"event": "disconnected", "conn": conn.get(), "code": close_code(reason), "reason": reason.to_string()})
        }
        Event::Reconnecting {
            delay,
            attempt,
            resume,
            reason,
        } => {
            json!({"event": "reconnecting", "attempt": attempt, "after_ms": delay.as_millis() as u64, "resume": resume, "reason": reason.to_string()})
        }
        Event::Returned { id, reason, .. } => {
            json!({"event": "returned", "id": id.get(), "reason": format!("{reason:?}")})
        }
        Event::ProtocolError { conn, error } => {
            json!({"event": "protocol_error", "conn": conn.get(), "error": error.to_string()})
        }
        Event::Response { id, outcome } => {
            json!({"event": "response", "id": id.get(), "outcome": format!("{outcome:?}")})
        }
        Event::Stopped { reason } => json!({"event": "stopped", "reason": reason.to_string()}),
    })
}

/// Writes human lines with the time since start, coloured when the stream is a terminal.
pub struct Timeline {
    start: Instant,
    colour: bool,
}

/// What a line is about, for its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Good news: ready, resumed.
    Good,
    /// Trouble the library handles: disconnects, zombies, stale work dropped.
    Trouble,
    /// A fault the demo injects, or a failure.
    Fault,
    /// Everything else.
    Plain,
}

impl Timeline {
    /// A timeline on stderr (`stdout: false`) or stdout.
    pub fn new(stdout: bool) -> Self {
        let colour = if stdout {
            std::io::stdout().is_terminal()
        } else {
            std::io::stderr().is_terminal()
        } && std::env::var_os("NO_COLOR").is_none();
        Self {
            start: Instant::now(),
            colour,
        }
    }

    /// One line, prefixed with the seconds since start.
    pub fn line(&self, tone: Tone, text: &str) -> String {
        let at = self.start.elapsed().as_secs_f64();
        let code = match tone {
            Tone::Good => "32",
            Tone::Trouble => "33",
            Tone::Fault => "35",
            Tone::Plain => "0",
        };
        if self.colour && tone != Tone::Plain {
            format!("[{at:7.3}s] \x1b[{code}m{text}\x1b[0m")
        } else {
            format!("[{at:7.3}s] {text}")
        }
    }
}

/// An event as a human line with its tone; `None` for messages (they go to stdout).
pub fn event_line<M, R: std::fmt::Debug>(event: &Event<M, R>) -> Option<(Tone, String)> {
    Some(match event {
        // A session refused while the socket stays: the one transition worth a line.
        Event::Transition(t) => match (&t.reason, t.conn, t.next_delay) {
            (Reason::InvalidSession { .. }, Some(conn), Some(delay))
                if t.to == Phase::Handshaking =>
            {
                (
                    Tone::Trouble,
                    format!(
                        "{conn} invalid session: identifying afresh on it in {} ms",
                        delay.as_millis()
                    ),
                )
            }
            _ => return None,
        },
        Event::Connecting { conn, attempt } => (
            Tone::Plain,
            format!("{conn} connecting (attempt {attempt})"),
        ),
        Event::Ready {
            conn,
            resumed: true,
        } => (Tone::Good, format!("{conn} resumed")),
        Event::Ready {
            conn,
            resumed: false,
        } => (Tone::Good, format!("{conn} ready (new session)")),
        Event::Message { .. } => return None,
        Event::Disconnected { conn, reason } => {
            (Tone::Trouble, format!("{conn} disconnected: {reason}"))
        }
        Event::Reconnecting {
            delay,
            attempt,
            resume,
            ..
        } => (
            Tone::Trouble,
            format!(
                "reconnecting in {} ms (attempt {attempt}, {})",
                delay.as_millis(),
                if *resume { "resume" } else { "fresh" }
            ),
        ),
        Event::Returned { id, reason, .. } => (
            Tone::Trouble,
            format!("send {} handed back: {reason:?}", id.get()),
        ),
        Event::ProtocolError { conn, error } => {
            (Tone::Trouble, format!("{conn} protocol error: {error}"))
        }
        Event::Response { id, outcome } => {
            (Tone::Plain, format!("request {} -> {outcome:?}", id.get()))
        }
        Event::Stopped { reason } => (Tone::Plain, format!("stopped: {reason}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_core::RpcCall;

    #[test]
    fn calls_are_answered_and_events_are_not() {
        let call = RpcMessage::Call(RpcCall {
            id: Utf8Bytes::from("7".to_owned()),
            method: Utf8Bytes::from("status".to_owned()),
            params: Utf8Bytes::from("{}".to_owned()),
        });
        let Some(Frame::Text(answer)) = call.answer() else {
            panic!("a call is answered");
        };
        let answer: serde_json::Value = serde_json::from_str(answer.as_str()).unwrap_or_default();
        assert_eq!(answer["id"], 7);
        assert_eq!(answer["ok"], false);
        assert_eq!(answer["error"]["code"], "NOT_IMPLEMENTED");
        let event = RpcMessage::Event(tether_core::RpcEvent {
            name: Utf8Bytes::from("tick".to_owned()),
            payload: Utf8Bytes::from("null".to_owned()),
            seq: None,
        });
        assert!(event.answer().is_none());
        assert!(Frame::text("x").answer().is_none());
    }
}
