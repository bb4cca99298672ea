//! tether on tokio: one long-lived WebSocket session, kept correct by `tether-core`,
//! driven over tokio-tungstenite sockets.
//!
//! ```no_run
//! use std::time::Duration;
//! use futures_util::StreamExt;
//! use tether_core::{Config, Event, Frame, Plain};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let (client, mut events) = tether_tokio::connect(
//!     "wss://example.com/feed",
//!     Config::builder().build()?,
//!     Plain::new(),
//! )?;
//! client.send(Frame::text("subscribe")).await?;
//! while let Some(event) = events.next().await {
//!     match event {
//!         Event::Message { message, .. } => println!("{message:?}"),
//!         Event::Stopped { reason } => println!("stopped: {reason}"),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! One driver task per client owns the machine and every socket it asked for; each
//! socket runs in a task of its own that forwards what it reads, tagged with its
//! `ConnId`. The adapter never decides what is stale: the machine does.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod driver;
mod handle;
mod handoff;
mod options;
mod socket;
mod target;
#[cfg(feature = "rustls")]
mod tls;
mod wire;

use std::sync::atomic::{AtomicU64, Ordering};

pub use handle::{Events, Handle};
pub use options::{Options, OptionsBuilder, OptionsError, StartGate};
#[cfg(feature = "rustls")]
pub use tls::client_config;
pub use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use tether_core::{Client, Config, Protocol};

/// A profile this adapter can drive: it and everything it produces move between tasks.
/// Every `Protocol` whose types are `Send` is one.
pub trait Profile: Protocol<Message: Send, Request: Send, Response: Send> + Send + 'static {}

impl<P> Profile for P where
    P: Protocol<Message: Send, Request: Send, Response: Send> + Send + 'static
{
}

/// Why a client could not be started. Nothing was spawned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The URL or request cannot be parsed or has no host.
    #[error("invalid websocket request: {0}")]
    InvalidRequest(String),
    /// The scheme is neither `ws` nor `wss`.
    #[error("unsupported scheme {0:?}: use ws:// or wss://")]
    UnsupportedScheme(String),
    /// `wss://` without the `rustls` feature.
    #[error("wss:// needs the `rustls` feature")]
    TlsDisabled,
    /// The TLS configuration could not be built.
    #[error("tls configuration: {0}")]
    Tls(String),
    /// Not called from within a tokio runtime.
    #[error("tether_tokio::connect must be called within a tokio runtime")]
    NoRuntime,
}

/// Starts a client with default [`Options`]: it connects at once and keeps the session up
/// until shut down or stopped. `target` is a URL or a full request (headers such as
/// Authorization, subprotocols).
pub fn connect<P>(
    target: impl IntoClientRequest,
    config: Config,
    profile: P,
) -> Result<(Handle<P>, Events<P>), ConnectError>
where
    P: Profile,
{
    connect_with(target, config, profile, Options::default())
}

/// Starts a client with the given [`Options`].
pub fn connect_with<P>(
    target: impl IntoClientRequest,
    config: Config,
    profile: P,
    options: Options,
) -> Result<(Handle<P>, Events<P>), ConnectError>
where
    P: Profile,
{
    static CLIENTS: AtomicU64 = AtomicU64::new(0);
    let target = target::Target::new(target)?;
    tokio::runtime::Handle::try_current().map_err(|_| ConnectError::NoRuntime)?;
    let tls = tls_for(&target, &options)?;
    let mut client = Client::new(config, profile);
    client
        .connect(std::time::Instant::now())
        .map_err(|e| ConnectError::InvalidRequest(e.to_string()))?;
    let (calls_tx, calls_rx) = tokio::sync::mpsc::channel(256);
    let (events_tx, events_rx) = handle::events::<P>();
    let driver = driver::Driver::new(client, target, options, tls, calls_rx, events_tx);
    driver::spawn(driver, CLIENTS.fetch_add(1, Ordering::Relaxed) + 1);
    Ok((Handle::new(calls_tx), events_rx))
}

#[cfg(feature = "rustls")]
fn tls_for(
    target: &target::Target,
    options: &Options,
) -> Result<Option<socket::Tls>, ConnectError> {
    if !target.is_tls() {
        return Ok(None);
    }
    match &options.tls {
        Some(config) => Ok(Some(config.clone())),
        None => tls::default_config()
            .map(Some)
            .map_err(|e| ConnectError::Tls(e.to_string())),
    }
}

#[cfg(not(feature = "rustls"))]
fn tls_for(
    _target: &target::Target,
    _options: &Options,
) -> Result<Option<socket::Tls>, ConnectError> {
    Ok(None)
}
