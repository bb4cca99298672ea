//! What every tether adapter shares, whatever its runtime: the driver task that owns the
//! core machine and every socket it asked for, the application's handle and event stream,
//! the mapping between tungstenite and the core, and the adapter settings.
//!
//! A runtime plugs in through [`Runtime`]: how to spawn, how to sleep, how to open a
//! WebSocket. `tether-tokio` and `tether-smol` are each that one implementation and a
//! `connect` function; everything else lives here, once.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod driver;
mod handle;
mod handoff;
mod options;
pub mod shards;
mod socket;
mod target;
#[cfg(feature = "rustls")]
mod tls;
mod watch;
pub mod wire;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures_util::future::BoxFuture;
use futures_util::{Sink, Stream};
use tether_core::{Client, Config, OpenError, Protocol};
use tungstenite::Message;
use tungstenite::handshake::client::Request;
use tungstenite::protocol::WebSocketConfig;

pub use handle::{Events, Handle};
pub use options::{Options, OptionsBuilder, OptionsError, StartGate};
#[cfg(not(feature = "rustls"))]
pub use socket::NoTls;
pub use socket::Tls;
pub use target::USER_AGENT;
#[cfg(feature = "rustls")]
pub use tls::client_config;
pub use tungstenite::client::IntoClientRequest;
pub use wire::open_failed;

/// What an adapter's runtime provides. Everything else is shared.
pub trait Runtime: Clone + Send + Sync + 'static {
    /// An open WebSocket, as the runtime's tungstenite binding gives it.
    type Socket: Stream<Item = Result<Message, tungstenite::Error>>
        + Sink<Message, Error = tungstenite::Error>
        + Send
        + Unpin
        + 'static;
    /// A spawned task. Dropping it cancels the task.
    type Task: Send + 'static;

    /// Runs `future` as a task; dropping the returned task cancels it.
    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, future: F) -> Self::Task;

    /// Cancels `task`; the returned future resolves once the task's future has been
    /// dropped, and with it every socket the task held. The driver opens a connection's
    /// successor only after this, so two sockets of one client are never open at once.
    fn stop(&self, task: Self::Task) -> BoxFuture<'static, ()>;

    /// Runs `future` as a task that lives on its own until it completes.
    fn spawn_detached<F: Future<Output = ()> + Send + 'static>(&self, future: F);

    /// Resolves at `at`.
    fn sleep_until(&self, at: Instant) -> BoxFuture<'static, ()>;

    /// Opens a WebSocket (TCP, TLS for `wss://`, the upgrade) for `request`.
    fn connect(
        &self,
        request: Request,
        websocket: WebSocketConfig,
        tls: Option<Tls>,
    ) -> BoxFuture<'static, Result<Self::Socket, OpenError>>;
}

/// A profile an adapter can drive: it and everything it produces move between tasks.
/// Every `Protocol` whose types are `Send` is one.
pub trait Profile:
    Protocol<Message: Send, Request: Send, Response: Send, Answer: Send> + Send + 'static
{
}

impl<P> Profile for P where
    P: Protocol<Message: Send, Request: Send, Response: Send, Answer: Send> + Send + 'static
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
    /// Not called where the adapter's runtime is available.
    #[error("no runtime to run the client on: {0}")]
    NoRuntime(&'static str),
}

/// Starts a client on `runtime`: checks the request, spawns the driver, and connects.
pub fn start<R, P>(
    runtime: R,
    target: impl IntoClientRequest,
    config: Config,
    profile: P,
    options: Options,
) -> Result<(Handle<P>, Events<P>), ConnectError>
where
    R: Runtime,
    P: Profile,
{
    static CLIENTS: AtomicU64 = AtomicU64::new(0);
    let target = target::Target::new(target)?;
    let tls = tls_for(&target, &options)?;
    let mut client = Client::new(config, profile);
    client
        .connect(Instant::now())
        .map_err(|e| ConnectError::InvalidRequest(e.to_string()))?;
    let (calls_tx, calls_rx) = tokio::sync::mpsc::channel(256);
    // Control calls have a channel of their own, so they never wait behind data.
    let (control_tx, control_rx) = tokio::sync::mpsc::channel(64);
    let (events_tx, events_rx) = handle::events::<P>();
    let driver = driver::Driver::new(
        runtime.clone(),
        client,
        target,
        options,
        tls,
        (calls_rx, control_rx),
        events_tx,
    );
    driver::spawn(
        &runtime,
        driver,
        CLIENTS.fetch_add(1, Ordering::Relaxed) + 1,
    );
    Ok((Handle::new(calls_tx, control_tx), events_rx))
}

#[cfg(feature = "rustls")]
fn tls_for(target: &target::Target, options: &Options) -> Result<Option<Tls>, ConnectError> {
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
fn tls_for(_target: &target::Target, _options: &Options) -> Result<Option<Tls>, ConnectError> {
    Ok(None)
}
