//! The gateway server on tokio: an accept loop, one task per socket, and one driver task
//! that owns the sans-IO [`Gateway`] and carries out its commands.
//!
//! ```no_run
//! use std::time::Duration;
//! use tether_core::gateway::{Credentials, GatewayConfig, PeerId, Rejection, ServerProfile};
//! use tether_tokio::gateway::{GatewayOptions, serve};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9000").await?;
//! let config = GatewayConfig::builder(ServerProfile::Discord)
//!     .heartbeat_interval(Duration::from_secs(1))
//!     .build()?;
//! let auth = |c: &Credentials<'_>| {
//!     c.token.map(PeerId::from).ok_or_else(|| Rejection::new("no token"))
//! };
//! let (gateway, mut events) = serve(listener, config, auth, GatewayOptions::default());
//! while let Some(event) = events.recv().await {
//!     println!("{event:?}");
//! }
//! # drop(gateway);
//! # Ok(()) }
//! ```
//!
//! Each socket's outbound frames wait in a bounded queue; a client that lets it fill is
//! closed (1008) rather than grow the server's memory. Over the connection limit, the
//! upgrade is answered `503 Service Unavailable` with `Retry-After`, which tether clients
//! honour. The WebSocket upgrade (and TLS) must finish within the handshake timeout.

mod accept;
mod driver;
mod outbox;
mod socket;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::value::RawValue;
use tether_core::gateway::{
    Answer, Authenticator, Faults, Gateway, GatewayConfig, GatewayError, GatewayEvent, GatewayStats,
};
use tether_core::registry::{InvokeId, InvokeOutcome};
use tether_core::{ConnId, Frame};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use accept::Acceptor;
use driver::{Call, Driver, ToDriver};

/// How the server runs its sockets; [`GatewayOptions::default`] suits most.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// Sockets held at once; further upgrades get 503 with `Retry-After`.
    pub max_connections: usize,
    /// Frames waiting to be written per socket before its client counts as too slow. Never
    /// less than a full resume's replay (the gateway's replay capacity and a few frames
    /// more), so replaying what a client missed cannot itself make it too slow.
    pub outbound_queue: usize,
    /// Events buffered for the application; when full the gateway waits for it.
    pub event_buffer: usize,
    /// How long a closing socket waits for the client's close frame.
    pub close_timeout: Duration,
    /// The `Retry-After` seconds sent with a 503.
    pub retry_after_secs: u64,
    /// tungstenite's buffers and limits (8 KiB buffers, 16 MiB messages by default).
    pub websocket: WebSocketConfig,
    /// Serve `wss://` with this rustls configuration.
    #[cfg(feature = "rustls")]
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            outbound_queue: 256,
            event_buffer: 1024,
            close_timeout: Duration::from_secs(1),
            retry_after_secs: 1,
            websocket: WebSocketConfig::default()
                .read_buffer_size(8 * 1024)
                .write_buffer_size(8 * 1024)
                .max_message_size(Some(16 << 20))
                .max_frame_size(Some(4 << 20)),
            #[cfg(feature = "rustls")]
            tls: None,
        }
    }
}

/// Frames a resume writes besides the replay: RESUMED, a heartbeat ack, what the
/// application sends meanwhile.
const REPLAY_MARGIN: usize = 16;

/// Why a call on the gateway did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ServeError {
    /// The gateway refused it; nothing was sent.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// The gateway has stopped.
    #[error("the gateway has stopped")]
    Stopped,
}

/// The application's side of a running gateway. Cheap to clone. The gateway runs until
/// [`shutdown`](Self::shutdown); with every handle dropped it stops accepting and ends
/// when its last socket does.
#[derive(Debug, Clone)]
pub struct GatewayHandle {
    calls: mpsc::Sender<ToDriver>,
    local_addr: Option<SocketAddr>,
    open: Arc<AtomicUsize>,
    /// Dropped with the last handle: the accept loop hears of it and stops.
    _alive: Arc<oneshot::Sender<()>>,
}

/// Events for the application, in order. Invoke outcomes go to the caller of
/// [`GatewayHandle::invoke`] instead.
pub type GatewayEvents = mpsc::Receiver<GatewayEvent>;

/// Starts serving `listener`. Must be called within a tokio runtime.
pub fn serve(
    listener: TcpListener,
    config: GatewayConfig,
    auth: impl Authenticator + 'static,
    options: GatewayOptions,
) -> (GatewayHandle, GatewayEvents) {
    let local_addr = listener.local_addr().ok();
    let handshake_timeout = config.handshake_timeout();
    let mut options = options;
    options.outbound_queue = options
        .outbound_queue
        .max(config.replay_capacity().saturating_add(REPLAY_MARGIN));
    let gateway = Gateway::new(config, auth, fastrand::u64(..));
    let (calls, inbox) = mpsc::channel(1024);
    let (events_tx, events) = mpsc::channel(options.event_buffer.max(1));
    let open = Arc::new(AtomicUsize::new(0));
    let (stop_accepting, accepting_stopped) = oneshot::channel();
    let driver = Driver::new(gateway, inbox, events_tx, stop_accepting);
    tokio::spawn(driver.run());
    let accept = Acceptor::new(
        listener,
        calls.downgrade(),
        open.clone(),
        Arc::new(options),
        handshake_timeout,
    );
    let (alive, handles_gone) = oneshot::channel();
    tokio::spawn(accept.run(accepting_stopped, handles_gone));
    (
        GatewayHandle {
            calls,
            local_addr,
            open,
            _alive: Arc::new(alive),
        },
        events,
    )
}

impl GatewayHandle {
    /// The address served.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Sockets open now, from the upgrade until they end.
    pub fn open_sockets(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Writes `frame` to `peer`'s current connection.
    pub async fn send(&self, peer: &str, frame: Frame) -> Result<ConnId, ServeError> {
        let peer = peer.to_owned();
        self.call(|reply| Call::Send { peer, frame, reply })
            .await?
            .map_err(ServeError::from)
    }

    /// Sends `peer` the event `name` with `data` (a numbered dispatch kept for resume under
    /// discord, an rpc event otherwise). Returns its sequence number.
    pub async fn dispatch(
        &self,
        peer: &str,
        name: &str,
        data: Box<RawValue>,
    ) -> Result<tether_core::gateway::Delivered, ServeError> {
        let (peer, name) = (peer.to_owned(), name.to_owned());
        self.call(|reply| Call::Dispatch {
            peer,
            name,
            data,
            reply,
        })
        .await?
        .map_err(ServeError::from)
    }

    /// Asks `peer` to run `method`; resolves with its one outcome: the answer from the
    /// connection that carried it, disconnected, or timed out.
    pub async fn invoke(
        &self,
        peer: &str,
        method: &str,
        params: Box<RawValue>,
        timeout: Duration,
    ) -> Result<(InvokeId, InvokeOutcome<Answer>), ServeError> {
        let (peer, method) = (peer.to_owned(), method.to_owned());
        let (id, outcome) = self
            .call(|reply| Call::Invoke {
                peer,
                method,
                params,
                timeout,
                reply,
            })
            .await??;
        let outcome = outcome.await.map_err(|_| ServeError::Stopped)?;
        Ok((id, outcome))
    }

    /// The connection that owns `peer`'s session, if any.
    pub async fn owner(&self, peer: &str) -> Result<Option<ConnId>, ServeError> {
        let peer = peer.to_owned();
        self.call(|reply| Call::Owner { peer, reply }).await
    }

    /// Misbehaves as `faults` say from now on, for testing clients.
    pub async fn set_faults(&self, faults: Faults) -> Result<(), ServeError> {
        self.call(|reply| Call::Faults { faults, reply }).await
    }

    /// The gateway's counters.
    pub async fn stats(&self) -> Result<GatewayStats, ServeError> {
        self.call(|reply| Call::Stats { reply }).await
    }

    /// Stops accepting, closes every socket with 1001 (going away) and resolves once they
    /// have all ended.
    pub async fn shutdown(&self) -> Result<(), ServeError> {
        self.call(|reply| Call::Shutdown { reply }).await
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Call,
    ) -> Result<T, ServeError> {
        let (reply, answer) = oneshot::channel();
        self.calls
            .send(ToDriver::Call(make(reply)))
            .await
            .map_err(|_| ServeError::Stopped)?;
        answer.await.map_err(|_| ServeError::Stopped)
    }
}
