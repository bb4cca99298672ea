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
//! buffer.

use std::borrow::Cow;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::event::RemoteError;

/// The envelope of a frame, either way (the gateway reads clients' with it too).
#[derive(Deserialize)]
pub(crate) struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    pub(crate) kind: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) id: Option<&'a RawValue>,
    pub(crate) ok: Option<bool>,
    #[serde(borrow)]
    pub(crate) payload: Option<&'a RawValue>,
    pub(crate) error: Option<WireError>,
    #[serde(borrow)]
    pub(crate) event: Option<Cow<'a, str>>,
    pub(crate) seq: Option<u64>,
    #[serde(borrow)]
    pub(crate) method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) params: Option<&'a RawValue>,
}

/// An error as frames carry it: `{code, message, details?, retryable?, retryAfterMs?}`.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireError {
    pub(crate) code: Value,
    #[serde(default)]
    pub(crate) message: String,
    #[serde(default)]
    pub(crate) details: Option<ErrorDetails>,
    #[serde(default)]
    pub(crate) retryable: Option<bool>,
    #[serde(default)]
    pub(crate) retry_after_ms: Option<u64>,
}

/// The structured part of an error: what a client branches on.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorDetails {
    #[serde(default)]
    pub(crate) code: Option<String>,
    #[serde(default)]
    pub(crate) reason: Option<String>,
    #[serde(default)]
    pub(crate) request_id: Option<String>,
    #[serde(default)]
    pub(crate) retry_after_ms: Option<u64>,
}

impl WireError {
    /// The top-level code as text; a code that is not a string keeps its JSON.
    pub(crate) fn code(&self) -> Cow<'_, str> {
        match &self.code {
            Value::String(s) => Cow::Borrowed(s),
            other => Cow::Owned(other.to_string()),
        }
    }

    /// The detail code (`AUTH_TOKEN_MISMATCH`, `PAIRING_REQUIRED`...), if any.
    pub(crate) fn detail_code(&self) -> Option<&str> {
        self.details.as_ref().and_then(|d| d.code.as_deref())
    }

    /// The wait the peer asked for, at the top level or in the details.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        self.retry_after_ms
            .or_else(|| self.details.as_ref().and_then(|d| d.retry_after_ms))
            .map(Duration::from_millis)
    }

    /// The error as the application sees it: the code, and the detail code when there is
    /// one (it says more: `INVALID_REQUEST` is many things, `AUTH_TOKEN_MISMATCH` one).
    pub(crate) fn to_remote(&self) -> RemoteError {
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
pub(crate) fn string_id(id: &RawValue) -> Option<Cow<'_, str>> {
    serde_json::from_str::<Cow<'_, str>>(id.get()).ok()
}
