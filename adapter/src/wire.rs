//! Between tungstenite's messages and errors and the core's frames, inputs and causes.

use std::time::Duration;

use tether_core::{
    CloseCause, CloseFrame, Frame, OpenError, OpenErrorKind, TransportErrorKind, Utf8Bytes,
};
use tungstenite::protocol::CloseFrame as WsCloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{self, Message};

/// A message read from a socket, as the core sees it.
pub enum Read {
    /// A frame for the machine.
    Frame(Frame),
    /// The peer's close frame (the stream ends after it).
    Close(Option<CloseFrame>),
    /// Nothing for the machine (a raw frame).
    Nothing,
}

/// Maps a message read from the socket. Text was checked by tungstenite; it is checked
/// once more here, since the core holds no `unsafe` to skip that.
pub fn read(message: Message) -> Read {
    match message {
        Message::Text(text) => match Utf8Bytes::try_from(bytes::Bytes::from(text)) {
            Ok(text) => Read::Frame(Frame::Text(text)),
            // Unreachable: tungstenite hands out only valid UTF-8 text.
            Err(_) => Read::Nothing,
        },
        Message::Binary(data) => Read::Frame(Frame::Binary(data)),
        Message::Ping(data) => Read::Frame(Frame::Ping(data)),
        Message::Pong(data) => Read::Frame(Frame::Pong(data)),
        Message::Close(frame) => Read::Close(frame.map(|f| CloseFrame {
            code: u16::from(f.code),
            reason: Utf8Bytes::try_from(bytes::Bytes::from(f.reason)).unwrap_or_default(),
        })),
        Message::Frame(_) => Read::Nothing,
    }
}

/// Maps a frame to write. Text that is not UTF-8 cannot be built in the core, so the
/// conversion cannot fail in practice; if it did, the frame goes as binary rather than be
/// lost.
pub fn write(frame: Frame) -> Message {
    match frame {
        Frame::Text(text) => {
            let bytes = bytes::Bytes::from(text);
            match tungstenite::Utf8Bytes::try_from(bytes.clone()) {
                Ok(text) => Message::Text(text),
                Err(_) => Message::Binary(bytes),
            }
        }
        Frame::Binary(data) => Message::Binary(data),
        Frame::Ping(data) => Message::Ping(data),
        Frame::Pong(data) => Message::Pong(data),
    }
}

/// The close message for a core close frame.
pub fn close(frame: CloseFrame) -> Message {
    Message::Close(Some(WsCloseFrame {
        code: CloseCode::from(frame.code),
        reason: tungstenite::Utf8Bytes::from(frame.reason.as_str().to_owned()),
    }))
}

/// How an error while reading or writing ends the socket; `close_seen` is the peer's close
/// frame if one arrived first.
pub(crate) fn closed_by(error: &tungstenite::Error, close_seen: Option<CloseFrame>) -> CloseCause {
    use tungstenite::Error as E;
    match error {
        E::ConnectionClosed | E::AlreadyClosed => {
            close_seen.map_or(CloseCause::Dropped, CloseCause::Frame)
        }
        E::Capacity(e) => CloseCause::Error {
            kind: TransportErrorKind::MessageTooBig,
            detail: e.to_string(),
        },
        E::Protocol(tungstenite::error::ProtocolError::ResetWithoutClosingHandshake) => {
            close_seen.map_or(CloseCause::Dropped, CloseCause::Frame)
        }
        E::Protocol(e) => CloseCause::Error {
            kind: TransportErrorKind::Protocol,
            detail: e.to_string(),
        },
        E::Io(e) => CloseCause::Error {
            kind: TransportErrorKind::Io,
            detail: e.to_string(),
        },
        other => CloseCause::Error {
            kind: TransportErrorKind::Io,
            detail: other.to_string(),
        },
    }
}

/// Why an open failed, with the server's retry hint when it gave one.
pub fn open_failed(error: &tungstenite::Error) -> OpenError {
    use tungstenite::Error as E;
    match error {
        E::Http(response) => {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            OpenError {
                kind: OpenErrorKind::Http { status },
                retry_after,
                detail: response
                    .status()
                    .canonical_reason()
                    .unwrap_or_default()
                    .to_owned(),
            }
        }
        E::Tls(e) => OpenError::new(OpenErrorKind::Tls, e.to_string()),
        E::Io(e) if is_tls(e) => OpenError::new(OpenErrorKind::Tls, e.to_string()),
        E::Io(e) => OpenError::new(OpenErrorKind::Io, e.to_string()),
        E::Url(e) => OpenError::new(OpenErrorKind::Protocol, e.to_string()),
        other => OpenError::new(OpenErrorKind::Protocol, other.to_string()),
    }
}

/// rustls reports handshake failures (an unknown issuer, say) as I/O errors wrapping its
/// own error.
#[cfg(feature = "rustls")]
fn is_tls(error: &std::io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
}

#[cfg(not(feature = "rustls"))]
fn is_tls(_error: &std::io::Error) -> bool {
    false
}
