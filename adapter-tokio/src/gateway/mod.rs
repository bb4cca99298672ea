//! The gateway server on tokio: an accept loop, one task per socket, and one driver task
//! that owns the sans-IO [`Gateway`] and carries out its commands.
//!
//! ```no_run
//! use std::time::Duration;
//! use tether_gateway::{Credentials, GatewayConfig, PeerId, Rejection, ServerProfile};
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
//! let (gateway, mut events) = serve(listener, config, auth, GatewayOptions::default())?;
//! while let Some(event) = events.recv().await {
//!     println!("{event:?}");
//! }
//! # drop(gateway);
//! # Ok(()) }
//! ```
//!
//! Memory is budgeted in bytes, and what N hostile sockets can make the server hold is
//! bounded by these settings, not by what they send:
//! - before its handshake completes a socket may send messages of at most
//!   [`GatewayConfig::max_message_before_ready`] (8 KiB by default), after it
//!   [`GatewayConfig::max_message`]; a larger one is closed with 1009 as soon as its bytes
//!   pass the limit, before it is held whole;
//! - each socket's outbound frames wait in a queue of [`GatewayOptions::outbound_bytes`]; a
//!   client that lets it fill is closed (1008), and past the process-wide
//!   [`GatewayOptions::memory_budget`] the socket that would pass it is closed (1013);
//! - what a socket reads waits for the application within its
//!   [`GatewayOptions::inbound_window`]; past it that socket, and only it, stops being read;
//! - discord sessions keep at most [`GatewayConfig::replay_bytes`] for replay each.
//!
//! [`GatewayHandle::memory`] reports each of these, now and at their peak.
//!
//! Upgrades must finish within [`GatewayOptions::upgrade_timeout`], and at most
//! [`GatewayOptions::max_pending_upgrades`] wait at once: a new one pushes out the oldest
//! once that one is slow, so sockets that never finish their request cannot keep others
//! out, and is told 503 with `Retry-After` while none is. Over the connection
//! limit, the upgrade is answered `503 Service Unavailable` with `Retry-After`, which tether
//! clients honour; out of file descriptors, new connections are answered the same way
//! instead of left waiting. Breaking the WebSocket protocol closes with the code RFC 6455
//! names: 1002, 1007, 1009.

mod accept;
mod budget;
mod driver;
mod metered;
mod outbox;
mod socket;

pub use accept::AcceptStats;
pub use budget::MemoryStats;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::value::RawValue;
use tether_core::ConfigError;
use tether_core::{ConnId, Frame};
#[cfg(feature = "faults")]
use tether_gateway::Faults;
use tether_gateway::registry::{InvokeId, InvokeOutcome};
use tether_gateway::{
    Answer, Authenticator, Gateway, GatewayConfig, GatewayError, GatewayEvent, GatewayStats,
};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use accept::{Acceptor, Counters};
use budget::{Budget, FRAME_OVERHEAD};
use driver::{Call, Driver};

/// How the server runs its sockets; [`GatewayOptions::default`] suits most. Checked by
/// [`serve`]: zero, and more than the library allows, are refused.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// Upgraded sockets held at once; further upgrades get 503 with `Retry-After`.
    pub max_connections: usize,
    /// Connections whose upgrade is under way at once. At the bound a new one pushes out
    /// the oldest if that one has taken a fifth of the upgrade timeout already, and is told
    /// 503 with `Retry-After` otherwise.
    pub max_pending_upgrades: usize,
    /// How long a connection may take to finish its TLS handshake and upgrade request.
    pub upgrade_timeout: Duration,
    /// Bytes waiting to be written per socket before its client counts as too slow. Never
    /// less than a full resume's replay (the gateway's replay bytes and a margin), so
    /// replaying what a client missed cannot itself make it too slow.
    pub outbound_bytes: usize,
    /// Bytes waiting to be written over all sockets; the socket that would pass it is
    /// closed with 1013.
    pub memory_budget: usize,
    /// Bytes a socket may have read that the application has not taken yet; past them the
    /// socket is not read until it has.
    pub inbound_window: usize,
    /// Events buffered for the application; beyond it, events wait in the gateway holding
    /// the credit of the socket that caused them.
    pub event_buffer: usize,
    /// How long a closing socket waits for the client's close frame.
    pub close_timeout: Duration,
    /// The `Retry-After` seconds sent with a 503.
    pub retry_after_secs: u64,
    /// tungstenite's buffers (8 KiB each by default). Its message and frame size limits are
    /// set from [`GatewayConfig::max_message`].
    pub websocket: WebSocketConfig,
    /// Serve `wss://` with this rustls configuration.
    #[cfg(feature = "rustls")]
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_pending_upgrades: 4096,
            upgrade_timeout: Duration::from_secs(5),
            outbound_bytes: 1 << 20,
            memory_budget: 1 << 30,
            inbound_window: 64 << 10,
            event_buffer: 1024,
            close_timeout: Duration::from_secs(1),
            retry_after_secs: 1,
            websocket: WebSocketConfig::default()
                .read_buffer_size(8 * 1024)
                .write_buffer_size(8 * 1024),
            #[cfg(feature = "rustls")]
            tls: None,
        }
    }
}

impl GatewayOptions {
    /// Whether `wss://` is served.
    pub fn has_tls(&self) -> bool {
        #[cfg(feature = "rustls")]
        return self.tls.is_some();
        #[cfg(not(feature = "rustls"))]
        false
    }

    /// Checks every setting: zero, and more than the library allows, are refused.
    pub fn check(&self) -> Result<(), ConfigError> {
        const MINUTE: Duration = Duration::from_secs(60);
        let counts = [
            ("max_connections", self.max_connections, 1 << 20),
            ("max_pending_upgrades", self.max_pending_upgrades, 1 << 20),
            ("outbound_bytes", self.outbound_bytes, 1 << 30),
            ("memory_budget", self.memory_budget, 1 << 40),
            ("inbound_window", self.inbound_window, 64 << 20),
            ("event_buffer", self.event_buffer, 1 << 20),
        ];
        for (field, value, max) in counts {
            if value == 0 {
                return Err(ConfigError::Zero { field });
            }
            if value > max {
                return Err(ConfigError::TooLarge {
                    field,
                    value: value as u64,
                    max: max as u64,
                });
            }
        }
        for (field, value) in [
            ("upgrade_timeout", self.upgrade_timeout),
            ("close_timeout", self.close_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::Zero { field });
            }
            if value > MINUTE {
                return Err(ConfigError::Conflict {
                    field,
                    problem: "must be at most a minute",
                });
            }
        }
        if self.retry_after_secs > 24 * 3600 {
            return Err(ConfigError::TooLarge {
                field: "retry_after_secs",
                value: self.retry_after_secs,
                max: 24 * 3600,
            });
        }
        if self.memory_budget < self.outbound_bytes {
            return Err(ConfigError::Conflict {
                field: "memory_budget",
                problem: "must hold at least one socket's outbound_bytes",
            });
        }
        Ok(())
    }
}

/// Bytes a resume writes besides the replay: RESUMED, a heartbeat ack, what the
/// application sends meanwhile.
const REPLAY_MARGIN: usize = 64 << 10;

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
    calls: mpsc::Sender<Call>,
    local_addr: Option<SocketAddr>,
    open: Arc<AtomicUsize>,
    budget: Arc<Budget>,
    counters: Arc<Counters>,
    /// Dropped with the last handle: the accept loop hears of it and stops.
    _alive: Arc<oneshot::Sender<()>>,
}

/// Events for the application, in order. Invoke outcomes go to the caller of
/// [`GatewayHandle::invoke`] instead.
pub type GatewayEvents = mpsc::Receiver<GatewayEvent>;

/// Starts serving `listener`, once `options` pass their [check](GatewayOptions::check).
/// Must be called within a tokio runtime.
pub fn serve(
    listener: TcpListener,
    config: GatewayConfig,
    auth: impl Authenticator + 'static,
    options: GatewayOptions,
) -> Result<(GatewayHandle, GatewayEvents), ConfigError> {
    options.check()?;
    let local_addr = listener.local_addr().ok();
    // READY always names where to resume (discord): this very listener, unless set.
    let config = match local_addr {
        Some(addr) => config.with_default_resume_url(|| {
            let scheme = if options.has_tls() { "wss" } else { "ws" };
            format!("{scheme}://{addr}/resume")
        }),
        None => config,
    };
    let mut options = options;
    let replay = config
        .replay_bytes()
        .saturating_add(config.replay_capacity().saturating_mul(FRAME_OVERHEAD))
        .saturating_add(REPLAY_MARGIN);
    options.outbound_bytes = options.outbound_bytes.max(replay);
    options.memory_budget = options.memory_budget.max(options.outbound_bytes);
    options.websocket = options
        .websocket
        .max_message_size(Some(config.max_message()))
        .max_frame_size(Some(config.max_message()));
    let budget = Arc::new(Budget::new(options.memory_budget, options.outbound_bytes));
    let before_ready = config.max_message_before_ready();
    let gateway = Gateway::new(config, auth, fastrand::u64(..));
    let (calls, calls_rx) = mpsc::channel(1024);
    let (to_driver, sockets_rx) = mpsc::unbounded_channel();
    let (events_tx, events) = mpsc::channel(options.event_buffer);
    let open = Arc::new(AtomicUsize::new(0));
    let counters = Arc::new(Counters::default());
    let (stop_accepting, accepting_stopped) = oneshot::channel();
    let driver = Driver::new(gateway, calls_rx, sockets_rx, events_tx, stop_accepting);
    tokio::spawn(driver.run());
    let accept = Acceptor::new(
        listener,
        to_driver,
        open.clone(),
        counters.clone(),
        budget.clone(),
        Arc::new(options),
        before_ready,
    );
    let (alive, handles_gone) = oneshot::channel();
    tokio::spawn(accept.run(accepting_stopped, handles_gone));
    Ok((
        GatewayHandle {
            calls,
            local_addr,
            open,
            budget,
            counters,
            _alive: Arc::new(alive),
        },
        events,
    ))
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

    /// The bytes the gateway's sockets hold in each place, now and at their peak.
    pub fn memory(&self) -> MemoryStats {
        self.budget.stats()
    }

    /// How connections have fared before their upgrade completed.
    pub fn accept_stats(&self) -> AcceptStats {
        self.counters.stats()
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
    ) -> Result<tether_gateway::Delivered, ServeError> {
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

    /// Approves a waiting OpenClaw pairing request: the device gets its device token at
    /// its next connect.
    pub async fn approve_pairing(
        &self,
        request_id: &str,
    ) -> Result<tether_gateway::PairingRequest, ServeError> {
        let request_id = request_id.to_owned();
        self.call(|reply| Call::Pairing {
            request_id,
            approve: true,
            reply,
        })
        .await?
        .map_err(ServeError::from)
    }

    /// Rejects a waiting OpenClaw pairing request.
    pub async fn reject_pairing(
        &self,
        request_id: &str,
    ) -> Result<tether_gateway::PairingRequest, ServeError> {
        let request_id = request_id.to_owned();
        self.call(|reply| Call::Pairing {
            request_id,
            approve: false,
            reply,
        })
        .await?
        .map_err(ServeError::from)
    }

    /// The OpenClaw pairing requests waiting for approval.
    pub async fn pending_pairings(
        &self,
    ) -> Result<Vec<tether_gateway::PairingRequest>, ServeError> {
        self.call(|reply| Call::PendingPairings { reply }).await
    }

    /// Answers an OpenClaw request ([`GatewayEvent::Request`](tether_gateway::GatewayEvent))
    /// on the connection it came on.
    pub async fn respond(
        &self,
        conn: ConnId,
        id: &str,
        result: Result<Box<RawValue>, tether_core::RemoteError>,
    ) -> Result<(), ServeError> {
        let id = id.to_owned();
        self.call(|reply| Call::Respond {
            conn,
            id,
            result,
            reply,
        })
        .await?
        .map_err(ServeError::from)
    }

    /// Tells `peer`'s client its session is invalid (discord op 9): `resumable`, it may
    /// resume it (its dispatches wait); not, it must identify afresh. Its connection goes
    /// back to its handshake.
    pub async fn invalidate_session(
        &self,
        peer: &str,
        resumable: bool,
    ) -> Result<ConnId, ServeError> {
        let peer = peer.to_owned();
        self.call(|reply| Call::InvalidateSession {
            peer,
            resumable,
            reply,
        })
        .await?
        .map_err(ServeError::from)
    }

    /// The faults in force (feature `faults`).
    #[cfg(feature = "faults")]
    pub async fn faults(&self) -> Result<Faults, ServeError> {
        self.call(|reply| Call::GetFaults { reply }).await
    }

    /// Cuts `peer`'s connection with no close frame, for testing clients (feature
    /// `faults`); its session stays resumable.
    #[cfg(feature = "faults")]
    pub async fn drop_peer(&self, peer: &str) -> Result<ConnId, ServeError> {
        let peer = peer.to_owned();
        self.call(|reply| Call::Drop { peer, reply })
            .await?
            .map_err(ServeError::from)
    }

    /// Misbehaves as `faults` say from now on, for testing clients (feature `faults`).
    #[cfg(feature = "faults")]
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
            .send(make(reply))
            .await
            .map_err(|_| ServeError::Stopped)?;
        answer.await.map_err(|_| ServeError::Stopped)
    }
}
