//! tether on smol: one long-lived WebSocket session, kept correct by `tether-core`,
//! driven over async-tungstenite sockets (async-net, async-io timers).
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use tether_core::{Config, Event, Frame, Plain};
//!
//! smol::block_on(async {
//!     let (client, mut events) = tether_smol::connect(
//!         "wss://example.com/feed",
//!         Config::builder().build()?,
//!         Plain::new(),
//!     )?;
//!     client.send(Frame::text("subscribe")).await?;
//!     while let Some(event) = events.next().await {
//!         if let Event::Message { message, .. } = event {
//!             println!("{message:?}");
//!         }
//!     }
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! });
//! ```
//!
//! The driver (shared with every adapter, in `tether-adapter`) owns the machine and every
//! socket it asked for; this crate only says how smol spawns, sleeps and opens a socket.
//! Its tasks run on an executor of the application's choosing ([`Spawner`]); by default,
//! smol's global executor. Since async-std runs on the same reactor (async-io), tether-smol
//! also runs under async-std, its tasks on async-std's executor (see the tests).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::handshake::client::Request;
use async_tungstenite::tungstenite::protocol::WebSocketConfig;
pub mod shards;

use futures_util::future::BoxFuture;
#[cfg(feature = "rustls")]
pub use tether_adapter::client_config;
pub use tether_adapter::{
    ConnectError, Events, Handle, IntoClientRequest, Options, OptionsBuilder, OptionsError,
    Profile, StartGate,
};
use tether_adapter::{Runtime, Tls};
use tether_core::{Config, OpenError};

/// Where tether-smol runs its tasks.
pub trait Spawner: Send + Sync + 'static {
    /// Runs `future`; dropping the returned task cancels it.
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Task;
}

/// A task of tether-smol; dropping it cancels the task.
pub struct Task(Option<Box<dyn Spawned>>);

/// What an executor's task handle must do for tether.
pub trait Spawned: Send + 'static {
    /// Stops the task. The returned future resolves once the task's future has been
    /// dropped (tether waits for it before opening the next socket); dropping it unpolled
    /// must still cancel the task.
    fn cancel(self: Box<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>>;
    /// Lets the task run to its end on its own.
    fn detach(self: Box<Self>);
}

impl Spawned for smol::Task<()> {
    fn cancel(self: Box<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        // Resolves once the future is dropped; a smol task dropped unpolled is cancelled.
        Box::pin(async move {
            let _ = smol::Task::cancel(*self).await;
        })
    }

    fn detach(self: Box<Self>) {
        smol::Task::detach(*self);
    }
}

impl Task {
    /// Wraps an executor's task handle.
    pub fn new(spawned: impl Spawned) -> Self {
        Self(Some(Box::new(spawned)))
    }

    /// Cancels the task; resolves once its future has been dropped.
    pub fn stop(mut self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        match self.0.take() {
            Some(spawned) => spawned.cancel(),
            None => Box::pin(std::future::ready(())),
        }
    }

    /// Lets the task run to its end on its own.
    pub fn detach(mut self) {
        if let Some(spawned) = self.0.take() {
            spawned.detach();
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if let Some(spawned) = self.0.take() {
            // Dropped unpolled: the task is cancelled, nobody waits for it.
            drop(spawned.cancel());
        }
    }
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task").finish_non_exhaustive()
    }
}

/// smol's global executor.
#[derive(Debug, Clone, Copy, Default)]
pub struct GlobalExecutor;

impl Spawner for GlobalExecutor {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Task {
        Task::new(smol::spawn(future))
    }
}

/// An executor of the application's own (one it runs on threads of its choosing).
impl Spawner for Arc<smol::Executor<'static>> {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Task {
        Task::new(smol::Executor::spawn(self, future))
    }
}

/// The smol runtime, as tether's driver sees it.
#[derive(Clone)]
pub struct Smol {
    spawner: Arc<dyn Spawner>,
}

impl std::fmt::Debug for Smol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smol").finish_non_exhaustive()
    }
}

impl Smol {
    /// Tasks on smol's global executor.
    pub fn new() -> Self {
        Self::with_spawner(GlobalExecutor)
    }

    /// Tasks on the application's executor.
    pub fn with_spawner(spawner: impl Spawner) -> Self {
        Self {
            spawner: Arc::new(spawner),
        }
    }
}

impl Default for Smol {
    fn default() -> Self {
        Self::new()
    }
}

/// The socket type: async-tungstenite over async-net, with TLS when the feature is on.
pub type Socket = WebSocketStream<async_tungstenite::smol::ClientStream<async_net::TcpStream>>;

impl Runtime for Smol {
    type Socket = Socket;
    type Task = Task;

    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, future: F) -> Task {
        self.spawner.spawn(Box::pin(future))
    }

    fn stop(&self, task: Task) -> BoxFuture<'static, ()> {
        task.stop()
    }

    fn spawn_detached<F: Future<Output = ()> + Send + 'static>(&self, future: F) {
        self.spawner.spawn(Box::pin(future)).detach();
    }

    fn sleep_until(&self, at: Instant) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            async_io::Timer::at(at).await;
        })
    }

    fn connect(
        &self,
        request: Request,
        websocket: WebSocketConfig,
        tls: Option<Tls>,
    ) -> BoxFuture<'static, Result<Socket, OpenError>> {
        Box::pin(async move {
            let open = |e: &async_tungstenite::tungstenite::Error| tether_adapter::open_failed(e);
            let host = request
                .uri()
                .host()
                .unwrap_or_default()
                .trim_matches(['[', ']'])
                .to_owned();
            let port =
                request
                    .uri()
                    .port_u16()
                    .unwrap_or(if request.uri().scheme_str() == Some("wss") {
                        443
                    } else {
                        80
                    });
            let tcp = async_net::TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| open(&async_tungstenite::tungstenite::Error::Io(e)))?;
            // Latency matters more than packet count for session traffic.
            let _ = tcp.set_nodelay(true);
            #[cfg(feature = "rustls")]
            let connector = tls.map(futures_rustls::TlsConnector::from);
            #[cfg(not(feature = "rustls"))]
            let connector = {
                // `wss://` is refused at connect without TLS support; nothing to hold here.
                let _ = tls;
                None::<()>
            };
            let (ws, _response) =
                async_tungstenite::smol::client_async_tls_with_connector_and_config(
                    request,
                    tcp,
                    connector,
                    Some(websocket),
                )
                .await
                .map_err(|e| open(&e))?;
            Ok(ws)
        })
    }
}

/// Starts a client with default [`Options`] on smol's global executor: it connects at once
/// and keeps the session up until shut down or stopped. `target` is a URL or a full
/// request (headers such as Authorization, subprotocols).
pub fn connect<P: Profile>(
    target: impl IntoClientRequest,
    config: Config,
    profile: P,
) -> Result<(Handle<P>, Events<P>), ConnectError> {
    connect_with(target, config, profile, Options::default())
}

/// Starts a client with the given [`Options`] on smol's global executor.
pub fn connect_with<P: Profile>(
    target: impl IntoClientRequest,
    config: Config,
    profile: P,
    options: Options,
) -> Result<(Handle<P>, Events<P>), ConnectError> {
    connect_on(Smol::new(), target, config, profile, options)
}

/// Starts a client whose tasks run where `runtime` says.
pub fn connect_on<P: Profile>(
    runtime: Smol,
    target: impl IntoClientRequest,
    config: Config,
    profile: P,
    options: Options,
) -> Result<(Handle<P>, Events<P>), ConnectError> {
    tether_adapter::start(runtime, target, config, profile, options)
}
