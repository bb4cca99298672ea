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
            let header = |name| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v: &http::HeaderValue| v.to_str().ok())
            };
            let retry_after = header(http::header::RETRY_AFTER)
                .and_then(|v| retry_after(v, std::time::SystemTime::now()));
            let reason = response.status().canonical_reason().unwrap_or_default();
            // A redirect is reported with where it points: tether never follows one on
            // its own (it could lead from wss to ws), and 3xx stop by default.
            let detail = match header(http::header::LOCATION) {
                Some(location) if response.status().is_redirection() => {
                    format!("{reason}: redirected to {location}")
                }
                _ => reason.to_owned(),
            };
            OpenError {
                kind: OpenErrorKind::Http { status },
                retry_after,
                detail,
            }
        }
        E::Tls(e) => OpenError::new(OpenErrorKind::Tls, e.to_string()),
        E::Io(e) => OpenError::new(io_kind(e), e.to_string()),
        E::Url(e) => OpenError::new(OpenErrorKind::InvalidUrl, e.to_string()),
        other => OpenError::new(OpenErrorKind::Protocol, other.to_string()),
    }
}

/// What an I/O error on the way to a socket was: a refused connection, a name that did not
/// resolve, a certificate not accepted, a TLS handshake that failed (a plain server behind
/// a `wss://` URL ends it at once), or something else.
fn io_kind(error: &std::io::Error) -> OpenErrorKind {
    if let Some(kind) = tls_kind(error) {
        return kind;
    }
    let text = error.to_string();
    match error.kind() {
        std::io::ErrorKind::ConnectionRefused => OpenErrorKind::Refused,
        // std and tokio report a failed lookup in these words on every platform.
        _ if text.contains("failed to lookup address") => OpenErrorKind::Dns,
        _ if text.contains("tls handshake") => OpenErrorKind::Tls,
        _ => OpenErrorKind::Io,
    }
}

/// A `Retry-After` value in either of its forms (RFC 9110 section 10.2.3): a number of
/// seconds, or an HTTP date, taken as the time from `now` until then (zero if it has
/// passed).
pub(crate) fn retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// rustls reports handshake failures (an unknown issuer, say) as I/O errors wrapping its
/// own error: a certificate not accepted, or another handshake failure.
#[cfg(feature = "rustls")]
fn tls_kind(error: &std::io::Error) -> Option<OpenErrorKind> {
    let tls = error.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(match tls {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            OpenErrorKind::Certificate
        }
        _ => OpenErrorKind::Tls,
    })
}

#[cfg(not(feature = "rustls"))]
fn tls_kind(_error: &std::io::Error) -> Option<OpenErrorKind> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    #[test]
    fn open_failures_are_told_apart_by_kind() {
        use std::io::{Error, ErrorKind};
        let kind = |e: Error| open_failed(&tungstenite::Error::Io(e)).kind;
        assert_eq!(
            kind(Error::from(ErrorKind::ConnectionRefused)),
            OpenErrorKind::Refused
        );
        assert_eq!(
            kind(Error::other(
                "failed to lookup address information: Name or service not known"
            )),
            OpenErrorKind::Dns
        );
        assert_eq!(
            kind(Error::new(ErrorKind::UnexpectedEof, "tls handshake eof")),
            OpenErrorKind::Tls
        );
        assert_eq!(kind(Error::from(ErrorKind::TimedOut)), OpenErrorKind::Io);
        #[cfg(feature = "rustls")]
        {
            let bad = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
            assert_eq!(kind(Error::other(bad)), OpenErrorKind::Certificate);
            let other = rustls::Error::HandshakeNotComplete;
            assert_eq!(kind(Error::other(other)), OpenErrorKind::Tls);
        }
        let url = tungstenite::Error::Url(tungstenite::error::UrlError::NoHostName);
        assert_eq!(open_failed(&url).kind, OpenErrorKind::InvalidUrl);
        assert!(OpenErrorKind::InvalidUrl.is_permanent());
        assert!(OpenErrorKind::Certificate.is_permanent());
        assert!(!OpenErrorKind::Refused.is_permanent());
    }

    #[test]
    fn k05_retry_after_in_seconds_and_as_an_http_date() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777 - 90);
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(90))
        );
        let later = now + Duration::from_secs(1000);
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:37 GMT", later),
            Some(Duration::ZERO),
            "a date passed means now"
        );
        assert_eq!(retry_after("soon", SystemTime::now()), None);
    }
}
