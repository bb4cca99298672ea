//! How the command shows a session's events: one JSON object per line (`--json`), or one
//! human line each, coloured on a terminal and plain when piped.

use std::io::IsTerminal;
use std::time::Instant;

use serde_json::{Value, json};
use tether_core::protocol::openclaw::OpenClawMessage;
use tether_core::{CloseCause, ConnId, Dispatch, Event, Frame, Phase, Reason, Utf8Bytes};

/// A message type the command can show.
pub trait Shown {
    /// The message as a JSON event line.
    fn json(&self, conn: ConnId) -> Value;
    /// The message as text for stdout.
    fn text(&self) -> String;
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

impl Shown for OpenClawMessage {
    fn json(&self, conn: ConnId) -> Value {
        match self {
            OpenClawMessage::Hello(hello) => {
                // The device token stays out: output is for logs and scripts.
                json!({"event": "hello", "conn": conn.get(), "protocol": hello.protocol, "server": hello.server_version, "role": hello.role, "scopes": hello.scopes, "methods": hello.methods.len(), "tick_interval_ms": hello.policy.tick_interval.as_millis() as u64, "max_payload": hello.policy.max_payload, "device_token_issued": hello.device_token.is_some()})
            }
            OpenClawMessage::Event(e) => {
                json!({"event": "openclaw_event", "conn": conn.get(), "name": e.name.as_str(), "seq": e.seq, "payload": raw_json(&e.payload)})
            }
            OpenClawMessage::Invoke(invoke) => {
                json!({"event": "invoke", "conn": conn.get(), "id": invoke.id, "nodeId": invoke.node_id, "command": invoke.command, "params": invoke.params_json.as_deref().map(|p| serde_json::from_str::<Value>(p).unwrap_or_else(|_| Value::from(p))), "timeout_ms": invoke.timeout.as_millis() as u64})
            }
            OpenClawMessage::PairingRequired(p) => {
                json!({"event": "pairing_required", "conn": conn.get(), "request_id": p.request_id, "reason": p.reason, "code": p.error.code, "message": p.error.message})
            }
        }
    }

    fn text(&self) -> String {
        match self {
            OpenClawMessage::Hello(hello) => format!(
                "hello-ok: protocol {}, server {}, role {}, {} methods, tick {} ms",
                hello.protocol,
                hello.server_version,
                hello.role,
                hello.methods.len(),
                hello.policy.tick_interval.as_millis()
            ),
            OpenClawMessage::Event(e) => format!("{} {}", e.name, e.payload),
            OpenClawMessage::Invoke(i) => format!(
                "invoke {} {} {}",
                i.id,
                i.command,
                i.params_json.as_deref().unwrap_or("null")
            ),
            OpenClawMessage::PairingRequired(p) => format!(
                "pairing required ({}): approve request {}",
                p.error,
                p.request_id.as_deref().unwrap_or("?")
            ),
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
        Event::Call { id, message } => {
            let mut line = message.json(id.conn());
            if let Value::Object(fields) = &mut line {
                fields.insert("call".into(), Value::from(id.get()));
            }
            line
        }
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
        Event::Message { .. } | Event::Call { .. } => return None,
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
    use tether_core::protocol::openclaw::{NodeInvoke, OpenClawEvent};

    #[test]
    fn openclaw_messages_show_as_json_lines() {
        let invoke = OpenClawMessage::Invoke(NodeInvoke {
            id: "inv-1".into(),
            node_id: "node-a".into(),
            command: "tether.echo".into(),
            params_json: Some("{\"x\":1}".into()),
            timeout: std::time::Duration::from_secs(5),
            idempotency_key: None,
        });
        let line = invoke.json(ConnId::new(3));
        assert_eq!(line["event"], "invoke");
        assert_eq!(line["id"], "inv-1");
        assert_eq!(line["params"]["x"], 1);
        assert_eq!(line["timeout_ms"], 5000);
        let event = OpenClawMessage::Event(OpenClawEvent {
            name: Utf8Bytes::from("tick".to_owned()),
            payload: Utf8Bytes::from("{\"ts\":1}".to_owned()),
            seq: Some(4),
        });
        assert_eq!(event.json(ConnId::new(3))["seq"], 4);
    }
}
