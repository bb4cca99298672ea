//! WebSocket frames as the machine sees them.

use std::fmt;

use bytes::Bytes;

/// The payload of a text frame: UTF-8, shared and cheap to clone.
///
/// Every constructor checks (or already knows) that the bytes are UTF-8, so
/// [`as_str`](Self::as_str) never fails. Cloning shares the buffer; nothing is copied.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Utf8Bytes(Bytes);

impl Utf8Bytes {
    /// Text from a static string, without allocating.
    pub const fn from_static(s: &'static str) -> Self {
        Self(Bytes::from_static(s.as_bytes()))
    }

    /// The text. Cost: one UTF-8 scan, since core holds no `unsafe` to skip it.
    pub fn as_str(&self) -> &str {
        // Constructors guarantee UTF-8, so the fallback is never taken.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The bytes, shared.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl TryFrom<Bytes> for Utf8Bytes {
    type Error = std::str::Utf8Error;

    /// Checks the bytes once and keeps them without copying.
    fn try_from(bytes: Bytes) -> Result<Self, Self::Error> {
        std::str::from_utf8(&bytes)?;
        Ok(Self(bytes))
    }
}

impl From<String> for Utf8Bytes {
    fn from(s: String) -> Self {
        Self(Bytes::from(s))
    }
}

impl From<&'static str> for Utf8Bytes {
    fn from(s: &'static str) -> Self {
        Self::from_static(s)
    }
}

impl From<Utf8Bytes> for Bytes {
    fn from(t: Utf8Bytes) -> Self {
        t.0
    }
}

impl fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One WebSocket message or control frame. Payloads are shared buffers: moving a frame
/// through the machine never copies its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Frame {
    /// A text message.
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A ping control frame (payload at most 125 bytes on the wire).
    Ping(Bytes),
    /// A pong control frame.
    Pong(Bytes),
}

impl Frame {
    /// A text frame.
    pub fn text(text: impl Into<Utf8Bytes>) -> Self {
        Self::Text(text.into())
    }

    /// A binary frame.
    pub fn binary(bytes: impl Into<Bytes>) -> Self {
        Self::Binary(bytes.into())
    }

    /// Payload length in bytes: what the outbound queue counts against its byte bound.
    pub fn len(&self) -> usize {
        match self {
            Self::Text(t) => t.len(),
            Self::Binary(b) | Self::Ping(b) | Self::Pong(b) => b.len(),
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this is a data frame (text or binary) rather than a control frame.
    pub fn is_data(&self) -> bool {
        matches!(self, Self::Text(_) | Self::Binary(_))
    }
}

/// The code and reason of a WebSocket close frame.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CloseFrame {
    /// The close code (RFC 6455 section 7.4).
    pub code: u16,
    /// The reason text, possibly empty.
    pub reason: Utf8Bytes,
}

impl CloseFrame {
    /// A close frame with a static reason.
    pub const fn new(code: u16, reason: &'static str) -> Self {
        Self {
            code,
            reason: Utf8Bytes::from_static(reason),
        }
    }
}

impl fmt::Display for CloseFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason.is_empty() {
            write!(f, "close {}", self.code)
        } else {
            write!(f, "close {} ({})", self.code, self.reason)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_checked_once_and_shared() {
        let bytes = Bytes::from_static("héllo".as_bytes());
        let text = Utf8Bytes::try_from(bytes.clone()).unwrap();
        assert_eq!(text.as_str(), "héllo");
        assert_eq!(Bytes::from(text.clone()).as_ptr(), bytes.as_ptr());
        assert!(Utf8Bytes::try_from(Bytes::from_static(&[0xff, 0xfe])).is_err());
        assert_eq!(Frame::text("abc").len(), 3);
        assert!(!Frame::Ping(Bytes::new()).is_data());
    }

    #[test]
    fn close_frames_display_code_and_reason() {
        assert_eq!(CloseFrame::new(4000, "bye").to_string(), "close 4000 (bye)");
        assert_eq!(CloseFrame::new(1000, "").to_string(), "close 1000");
    }
}
