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

/// The User-Agent sent when the application sets none: some servers refuse a socket
/// without one (Spacebar closes it with 4002), and a server's logs should say who came.
pub const USER_AGENT: &str = concat!("tether/", env!("CARGO_PKG_VERSION"));

impl Target {
    pub(crate) fn new(request: impl IntoClientRequest) -> Result<Self, ConnectError> {
        let mut request = request.into_client_request().map_err(|e| {
            // The http crate's word for a URL with no scheme is "invalid format".
            ConnectError::InvalidRequest(format!(
                "{e} (a URL of the form ws://host/path or wss://host/path is expected)"
            ))
        })?;
        check(&request)?;
        if !request.headers().contains_key(http::header::USER_AGENT) {
            request.headers_mut().insert(
                http::header::USER_AGENT,
                http::HeaderValue::from_static(USER_AGENT),
            );
        }
        Ok(Self { request })
    }

    /// The request for one `Open`. Another URL keeps the application's headers and the
    /// query parameters it does not set itself; every URL gets the profile's `defaults`
    /// where it does not set them.
    pub(crate) fn request(
        &self,
        endpoint: &Endpoint,
        defaults: &[(&str, &str)],
    ) -> Result<Request, tungstenite::Error> {
        let mut request = match endpoint {
            Endpoint::Primary => self.request.clone(),
            Endpoint::Url(url) => {
                let mut request = url.as_str().into_client_request()?;
                for (name, value) in self.request.headers() {
                    if !request.headers().contains_key(name) {
                        request.headers_mut().insert(name.clone(), value.clone());
                    }
                }
                let own = query_pairs(self.request.uri().query());
                add_missing(&mut request, &own)?;
                request
            }
        };
        add_missing(&mut request, defaults)?;
        Ok(request)
    }

    #[cfg(feature = "rustls")]
    pub(crate) fn is_tls(&self) -> bool {
        self.request.uri().scheme_str() == Some("wss")
    }
}

/// The `key=value` pairs of a query, raw (as the application wrote them).
fn query_pairs(query: Option<&str>) -> Vec<(&str, &str)> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .collect()
}

/// Adds each of `pairs` whose key `request`'s URL does not have, after its own.
fn add_missing(request: &mut Request, pairs: &[(&str, &str)]) -> Result<(), tungstenite::Error> {
    let uri = request.uri();
    let present = query_pairs(uri.query());
    let missing: Vec<String> = pairs
        .iter()
        .filter(|(key, _)| !present.iter().any(|(k, _)| k == key))
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut query = uri.query().unwrap_or_default().to_owned();
    for pair in missing {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(&pair);
    }
    let bad = |e: &dyn std::fmt::Display| {
        tungstenite::Error::Url(tungstenite::error::UrlError::UnableToConnect(e.to_string()))
    };
    let path = if uri.path().is_empty() {
        "/"
    } else {
        uri.path()
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(
        format!("{path}?{query}")
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(&e))?,
    );
    *request.uri_mut() = http::Uri::from_parts(parts).map_err(|e| bad(&e))?;
    Ok(())
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn url(request: &Request) -> String {
        request.uri().to_string()
    }

    const DISCORD: &[(&str, &str)] = &[("v", "10"), ("encoding", "json")];

    #[test]
    fn the_profile_adds_only_what_the_url_lacks() {
        let target = Target::new("ws://gw.test/").unwrap();
        let primary = target.request(&Endpoint::Primary, DISCORD).unwrap();
        assert_eq!(url(&primary), "ws://gw.test/?v=10&encoding=json");
        let target = Target::new("ws://gw.test/?v=9&compress=zstd-stream").unwrap();
        let primary = target.request(&Endpoint::Primary, DISCORD).unwrap();
        assert_eq!(
            url(&primary),
            "ws://gw.test/?v=9&compress=zstd-stream&encoding=json"
        );
    }

    #[test]
    fn a_resume_url_keeps_the_applications_query_and_headers() {
        let mut request = "ws://gw.test/?v=10&encoding=json&compress=zlib-stream"
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("authorization", http::HeaderValue::from_static("Bot x"));
        let target = Target::new(request).unwrap();
        let resume = Endpoint::Url("wss://resume.gw.test".to_owned());
        let resumed = target.request(&resume, DISCORD).unwrap();
        assert_eq!(
            url(&resumed),
            "wss://resume.gw.test/?v=10&encoding=json&compress=zlib-stream"
        );
        assert_eq!(resumed.headers()["authorization"], "Bot x");
        let own = Endpoint::Url("ws://resume.gw.test/r?v=9".to_owned());
        assert_eq!(
            url(&target.request(&own, DISCORD).unwrap()),
            "ws://resume.gw.test/r?v=9&encoding=json&compress=zlib-stream"
        );
    }

    #[test]
    fn a_user_agent_is_sent_unless_the_application_sets_its_own() {
        let target = Target::new("ws://gw.test/").unwrap();
        let request = target.request(&Endpoint::Primary, &[]).unwrap();
        assert_eq!(request.headers()["user-agent"], USER_AGENT);
        assert!(USER_AGENT.starts_with("tether/"));
        let mut own = "ws://gw.test/".into_client_request().unwrap();
        own.headers_mut()
            .insert("user-agent", http::HeaderValue::from_static("mybot/2"));
        let target = Target::new(own).unwrap();
        let request = target.request(&Endpoint::Primary, &[]).unwrap();
        assert_eq!(request.headers()["user-agent"], "mybot/2");
    }
}
