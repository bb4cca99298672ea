//! OpenClaw's frames as the client reads and writes them.
//!
//! ```text
//! {"type":"req","id":"7","method":"health","params":{}}
//! {"type":"res","id":"7","ok":true,"payload":{..}}
//! {"type":"res","id":"7","ok":false,"error":{"code":"UNAVAILABLE","message":"..","retryAfterMs":500}}
//! {"type":"event","event":"tick","payload":{"ts":..},"seq":12}
//! ```
//!
//! Only the envelope is parsed; payloads and params stay raw JSON, shared with the frame's
//! buffer. Public so the server half (`tether-gateway`) reads clients' frames with the very
//! same envelope.

use std::borrow::Cow;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::event::RemoteError;

/// The envelope of a frame, either way (the gateway reads clients' with it too).
#[derive(Deserialize)]
pub struct Envelope<'a> {
    /// `req`, `res` or `event`.
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    /// A request's or response's id, raw.
    #[serde(borrow)]
    pub id: Option<&'a RawValue>,
    /// A response's verdict.
    pub ok: Option<bool>,
    /// A response's or event's payload, raw.
    #[serde(borrow)]
    pub payload: Option<&'a RawValue>,
    /// A refused response's error.
    pub error: Option<WireError>,
    /// An event's name.
    #[serde(borrow)]
    pub event: Option<Cow<'a, str>>,
    /// An event's sequence number, per connection.
    pub seq: Option<u64>,
    /// A request's method.
    #[serde(borrow)]
    pub method: Option<Cow<'a, str>>,
    /// A request's parameters, raw.
    #[serde(borrow)]
    pub params: Option<&'a RawValue>,
}

/// An error as frames carry it: `{code, message, details?, retryable?, retryAfterMs?}`.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub struct WireError {
    /// The code (`UNAVAILABLE`, `INVALID_REQUEST`...).
    pub code: Value,
    /// What went wrong, for people.
    #[serde(default)]
    pub message: String,
    /// What a client branches on.
    #[serde(default)]
    pub details: Option<ErrorDetails>,
    /// Whether trying again may help.
    #[serde(default)]
    pub retryable: Option<bool>,
    /// How long to wait before trying again.
    #[serde(default)]
    pub retry_after_ms: Option<u64>,
}

/// The structured part of an error: what a client branches on.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetails {
    /// The detail code (`AUTH_TOKEN_MISMATCH`, `PAIRING_REQUIRED`...).
    #[serde(default)]
    pub code: Option<String>,
    /// Why, as a stable word (`not-paired`, `startup-sidecars`...).
    #[serde(default)]
    pub reason: Option<String>,
    /// A pending pairing request's id.
    #[serde(default)]
    pub request_id: Option<String>,
    /// How long to wait before trying again.
    #[serde(default)]
    pub retry_after_ms: Option<u64>,
}

impl WireError {
    /// The top-level code as text; a code that is not a string keeps its JSON.
    pub fn code(&self) -> Cow<'_, str> {
        match &self.code {
            Value::String(s) => Cow::Borrowed(s),
            other => Cow::Owned(other.to_string()),
        }
    }

    /// The detail code (`AUTH_TOKEN_MISMATCH`, `PAIRING_REQUIRED`...), if any.
    pub fn detail_code(&self) -> Option<&str> {
        self.details.as_ref().and_then(|d| d.code.as_deref())
    }

    /// The wait the peer asked for, at the top level or in the details.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after_ms
            .or_else(|| self.details.as_ref().and_then(|d| d.retry_after_ms))
            .map(Duration::from_millis)
    }

    /// The error as the application sees it: the code, and the detail code when there is
    /// one (it says more: `INVALID_REQUEST` is many things, `AUTH_TOKEN_MISMATCH` one).
    pub fn to_remote(&self) -> RemoteError {
        let code = match self.detail_code() {
            Some(detail) if detail != self.code() => format!("{}/{detail}", self.code()),
            _ => self.code().into_owned(),
        };
        RemoteError {
            code,
            message: self.message.clone(),
        }
    }
}

/// An id as the client writes it: a JSON string.
pub fn string_id(id: &RawValue) -> Option<Cow<'_, str>> {
    serde_json::from_str::<Cow<'_, str>>(id.get()).ok()
}
