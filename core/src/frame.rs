//! WebSocket frames as the machine sees them.

use std::fmt;

use bytes::Bytes;

/// The payload of a text frame: UTF-8, shared and cheap to clone.
///
/// Every constructor checks (or already knows) that the bytes are UTF-8, so
/// [`as_str`](Self::as_str) never fails. Cloning shares the buffer; nothing is copied.
/// Text marked [`secret`](Self::secret) (an identify carrying a token) prints as
/// `<redacted>` in `Debug` and `Display`, so it never reaches a log.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Utf8Bytes(Bytes, Secrecy);

#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
enum Secrecy {
    #[default]
    Public,
    Secret,
}

impl Utf8Bytes {
    /// Text from a static string, without allocating.
    pub const fn from_static(s: &'static str) -> Self {
        Self(Bytes::from_static(s.as_bytes()), Secrecy::Public)
    }

    /// Text that must never be printed: `Debug` and `Display` show `<redacted>`.
    pub fn secret(s: String) -> Self {
        Self(Bytes::from(s), Secrecy::Secret)
    }

    /// Whether this text is redacted when printed.
    pub fn is_secret(&self) -> bool {
        self.1 == Secrecy::Secret
    }

    /// `part`, a slice of this text, shared without copying or checking again. A `part`
    /// from elsewhere is copied.
    pub fn share(&self, part: &str) -> Self {
        let outer = self.0.as_ptr_range();
        let inner = part.as_bytes().as_ptr_range();
        if outer.start <= inner.start && inner.end <= outer.end {
            Self(self.0.slice_ref(part.as_bytes()), self.1)
        } else {
            Self(Bytes::copy_from_slice(part.as_bytes()), self.1)
        }
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
        Ok(Self(bytes, Secrecy::Public))
    }
}

impl From<String> for Utf8Bytes {
    fn from(s: String) -> Self {
        Self(Bytes::from(s), Secrecy::Public)
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
        match self.1 {
            Secrecy::Public => fmt::Debug::fmt(self.as_str(), f),
            Secrecy::Secret => write!(f, "<redacted {} bytes>", self.len()),
        }
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Secrecy::Public => f.write_str(self.as_str()),
            Secrecy::Secret => write!(f, "<redacted {} bytes>", self.len()),
        }
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
    fn secrets_never_print_and_slices_are_shared() {
        let secret = Utf8Bytes::secret("{\"token\":\"abc\"}".to_owned());
        assert!(!format!("{secret:?} {secret}").contains("abc"));
        assert_eq!(secret.as_str(), "{\"token\":\"abc\"}");
        let text = Utf8Bytes::from("hello world".to_owned());
        let world = text.share(&text.as_str()[6..]);
        assert_eq!(world.as_str(), "world");
        assert_eq!(world.as_bytes().as_ptr(), text.as_bytes()[6..].as_ptr());
        assert_eq!(text.share("elsewhere").as_str(), "elsewhere");
    }

    #[test]
    fn close_frames_display_code_and_reason() {
        assert_eq!(CloseFrame::new(4000, "bye").to_string(), "close 4000 (bye)");
        assert_eq!(CloseFrame::new(1000, "").to_string(), "close 1000");
    }
}
