//! Where sockets connect: the application's request, and the profile's other URLs.

use tether_core::Endpoint;
use tungstenite::client::IntoClientRequest;
use tungstenite::{self, handshake::client::Request};

use crate::ConnectError;

/// A WebSocket request checked once: a `ws://` or `wss://` URL with a host, and any
/// headers (Authorization, subprotocols) the application set.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    request: Request,
}

impl Target {
    pub(crate) fn new(request: impl IntoClientRequest) -> Result<Self, ConnectError> {
        let request = request.into_client_request().map_err(|e| {
            // The http crate's word for a URL with no scheme is "invalid format".
            ConnectError::InvalidRequest(format!(
                "{e} (a URL of the form ws://host/path or wss://host/path is expected)"
            ))
        })?;
        check(&request)?;
        Ok(Self { request })
    }

    /// The request for one `Open`. Another URL keeps the application's headers.
    pub(crate) fn request(&self, endpoint: &Endpoint) -> Result<Request, tungstenite::Error> {
        match endpoint {
            Endpoint::Primary => Ok(self.request.clone()),
            Endpoint::Url(url) => {
                let mut request = url.as_str().into_client_request()?;
                for (name, value) in self.request.headers() {
                    if !request.headers().contains_key(name) {
                        request.headers_mut().insert(name.clone(), value.clone());
                    }
                }
                Ok(request)
            }
        }
    }

    #[cfg(feature = "rustls")]
    pub(crate) fn is_tls(&self) -> bool {
        self.request.uri().scheme_str() == Some("wss")
    }
}

fn check(request: &Request) -> Result<(), ConnectError> {
    let uri = request.uri();
    match uri.scheme_str() {
        Some("ws") => {}
        Some("wss") if cfg!(feature = "rustls") => {}
        Some("wss") => return Err(ConnectError::TlsDisabled),
        other => {
            return Err(ConnectError::UnsupportedScheme(
                other.unwrap_or_default().to_owned(),
            ));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(ConnectError::InvalidRequest(format!("{uri}: no host")));
    }
    Ok(())
}
