//! tether on tokio: one long-lived WebSocket session, kept correct by `tether-core`,
//! driven over tokio-tungstenite sockets.
//!
//! ```no_run
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
//! The driver (shared with every adapter, in `tether-adapter`) owns the machine and every
//! socket it asked for; this crate only says how tokio spawns, sleeps and opens a socket.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod gateway;
pub mod shards;
mod stream;

use std::future::Future;
use std::time::Instant;

use futures_util::future::BoxFuture;
#[cfg(feature = "rustls")]
pub use tether_adapter::client_config;
pub use tether_adapter::{
    ConnectError, Events, Handle, IntoClientRequest, Options, OptionsBuilder, OptionsError,
    Profile, StartGate,
};
use tether_adapter::{Runtime, Tls};
use tether_core::{Config, OpenError};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub use stream::Stream;

/// The tokio runtime, as tether's driver sees it.
#[derive(Debug, Clone)]
pub struct Tokio {
    handle: tokio::runtime::Handle,
}

/// A tokio task that is aborted when dropped.
#[derive(Debug)]
pub struct Task(Option<tokio::task::JoinHandle<()>>);

impl Drop for Task {
    fn drop(&mut self) {
        if let Some(handle) = &self.0 {
            handle.abort();
        }
    }
}

impl Runtime for Tokio {
    type Socket = WebSocketStream<Stream>;
    type Task = Task;

    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, future: F) -> Task {
        Task(Some(self.handle.spawn(future)))
    }

    fn stop(&self, mut task: Task) -> BoxFuture<'static, ()> {
        let handle = task.0.take();
        Box::pin(async move {
            if let Some(handle) = handle {
                handle.abort();
                // Resolves once the task's future is dropped (or it had finished).
                let _ = handle.await;
            }
        })
    }

    fn spawn_detached<F: Future<Output = ()> + Send + 'static>(&self, future: F) {
        drop(self.handle.spawn(future));
    }

    fn sleep_until(&self, at: Instant) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(at)))
    }

    fn connect(
        &self,
        request: Request,
        websocket: WebSocketConfig,
        tls: Option<Tls>,
    ) -> BoxFuture<'static, Result<Self::Socket, OpenError>> {
        Box::pin(async move {
            let opened = async {
                let stream = stream::open(request.uri(), tls).await?;
                tokio_tungstenite::client_async_with_config(request, stream, Some(websocket)).await
            };
            opened
                .await
                .map(|(ws, _response)| ws)
                .map_err(|e| tether_adapter::open_failed(&e))
        })
    }
}

/// Starts a client with default [`Options`]: it connects at once and keeps the session up
/// until shut down or stopped. `target` is a URL or a full request (headers such as
/// Authorization, subprotocols). Must be called within a tokio runtime.
pub fn connect<P: Profile>(
    target: impl IntoClientRequest,
    config: Config,
    profile: P,
) -> Result<(Handle<P>, Events<P>), ConnectError> {
    connect_with(target, config, profile, Options::default())
}

/// Starts a client with the given [`Options`].
pub fn connect_with<P: Profile>(
    target: impl IntoClientRequest,
    config: Config,
    profile: P,
    options: Options,
) -> Result<(Handle<P>, Events<P>), ConnectError> {
    let target = target
        .into_client_request()
        .map_err(|e| ConnectError::InvalidRequest(e.to_string()))?;
    let handle = tokio::runtime::Handle::try_current().map_err(|_| {
        ConnectError::NoRuntime("call tether_tokio::connect within a tokio runtime")
    })?;
    tether_adapter::start(Tokio { handle }, target, config, profile, options)
}
