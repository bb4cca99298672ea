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

mod outbox;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::value::RawValue;
use tether_adapter::wire;
use tether_core::gateway::{
    Answer, Authenticator, Faults, Gateway, GatewayCommand, GatewayConfig, GatewayError,
    GatewayEvent, GatewayStats,
};
use tether_core::registry::{InvokeId, InvokeOutcome};
use tether_core::{CloseFrame, ConnId, Frame};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tracing::Instrument;

use outbox::{Outbox, Refused};

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
    let driver = Driver {
        gateway,
        inbox,
        events: events_tx,
        sockets: HashMap::new(),
        invokes: HashMap::new(),
        stop_accepting: Some(stop_accepting),
        shutdown_waiters: Vec::new(),
    };
    tokio::spawn(driver.run());
    let accept = Acceptor {
        listener,
        calls: calls.downgrade(),
        open: open.clone(),
        options: Arc::new(options),
        handshake_timeout,
    };
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

type InvokeReply = Result<(InvokeId, oneshot::Receiver<InvokeOutcome<Answer>>), ServeError>;

enum Call {
    Send {
        peer: String,
        frame: Frame,
        reply: oneshot::Sender<Result<ConnId, GatewayError>>,
    },
    Dispatch {
        peer: String,
        name: String,
        data: Box<RawValue>,
        reply: oneshot::Sender<Result<tether_core::gateway::Delivered, GatewayError>>,
    },
    Invoke {
        peer: String,
        method: String,
        params: Box<RawValue>,
        timeout: Duration,
        reply: oneshot::Sender<InvokeReply>,
    },
    Owner {
        peer: String,
        reply: oneshot::Sender<Option<ConnId>>,
    },
    Stats {
        reply: oneshot::Sender<GatewayStats>,
    },
    Faults {
        faults: Faults,
        reply: oneshot::Sender<()>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

enum ToDriver {
    Accepted {
        socket: Arc<Outbox>,
        reply: oneshot::Sender<ConnId>,
    },
    Frame(ConnId, Frame),
    Ended(ConnId),
    Call(Call),
}

struct Driver {
    gateway: Gateway,
    inbox: mpsc::Receiver<ToDriver>,
    events: mpsc::Sender<GatewayEvent>,
    sockets: HashMap<ConnId, Arc<Outbox>>,
    invokes: HashMap<InvokeId, oneshot::Sender<InvokeOutcome<Answer>>>,
    stop_accepting: Option<oneshot::Sender<()>>,
    shutdown_waiters: Vec<oneshot::Sender<()>>,
}

impl Driver {
    async fn run(mut self) {
        loop {
            let deadline = self.gateway.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                message = self.inbox.recv() => match message {
                    Some(message) => {
                        self.handle(message);
                        // Take whatever else is waiting before acting: one pass per batch.
                        while let Ok(message) = self.inbox.try_recv() {
                            self.handle(message);
                        }
                    }
                    None => return,
                },
                () = sleep => self.gateway.handle_timeout(Instant::now()),
            }
            self.carry_out();
            self.deliver_events().await;
            if self.sockets.is_empty() && self.stop_accepting.is_none() {
                for waiter in self.shutdown_waiters.drain(..) {
                    let _ = waiter.send(());
                }
            }
        }
    }

    fn handle(&mut self, message: ToDriver) {
        let now = Instant::now();
        match message {
            ToDriver::Accepted { socket, reply } => {
                let conn = self.gateway.accept(now);
                self.sockets.insert(conn, socket);
                let _ = reply.send(conn);
            }
            ToDriver::Frame(conn, frame) => self.gateway.handle_frame(conn, frame, now),
            ToDriver::Ended(conn) => {
                self.sockets.remove(&conn);
                self.gateway.handle_close(conn, now);
            }
            ToDriver::Call(call) => self.call(call, now),
        }
    }

    fn call(&mut self, call: Call, now: Instant) {
        match call {
            Call::Send { peer, frame, reply } => {
                let _ = reply.send(self.gateway.send(&peer, frame));
            }
            Call::Dispatch {
                peer,
                name,
                data,
                reply,
            } => {
                let _ = reply.send(self.gateway.dispatch(&peer, &name, &data));
            }
            Call::Invoke {
                peer,
                method,
                params,
                timeout,
                reply,
            } => {
                let result = self
                    .gateway
                    .invoke(&peer, &method, &params, timeout, now)
                    .map(|id| {
                        let (tx, rx) = oneshot::channel();
                        self.invokes.insert(id, tx);
                        (id, rx)
                    })
                    .map_err(ServeError::from);
                let _ = reply.send(result);
            }
            Call::Owner { peer, reply } => {
                let _ = reply.send(self.gateway.owner(&peer));
            }
            Call::Stats { reply } => {
                let _ = reply.send(self.gateway.stats());
            }
            Call::Faults { faults, reply } => {
                self.gateway.set_faults(faults);
                let _ = reply.send(());
            }
            Call::Shutdown { reply } => {
                if let Some(stop) = self.stop_accepting.take() {
                    let _ = stop.send(());
                }
                self.gateway.shutdown();
                self.shutdown_waiters.push(reply);
            }
        }
    }

    /// Carries out the gateway's commands on the sockets.
    fn carry_out(&mut self) {
        while let Some(command) = self.gateway.poll_command() {
            match command {
                GatewayCommand::Send { conn, frame } => {
                    let Some(socket) = self.sockets.get(&conn) else {
                        continue;
                    };
                    if socket.push(frame) == Err(Refused::Full) {
                        tracing::debug!(%conn, "outbound queue full: closing a slow client");
                        self.gateway.too_slow(conn);
                    }
                }
                GatewayCommand::Close { conn, frame } => {
                    if let Some(socket) = self.sockets.get(&conn) {
                        socket.close(Some(frame));
                    }
                }
                GatewayCommand::Abort { conn } => {
                    if let Some(socket) = self.sockets.get(&conn) {
                        socket.close(None);
                    }
                }
            }
        }
    }

    /// Hands events to the application, waiting while its buffer is full; dropped only
    /// when the application dropped its receiver.
    async fn deliver_events(&mut self) {
        while let Some(event) = self.gateway.poll_event() {
            if let GatewayEvent::Invoked { id, outcome, .. } = event {
                if let Some(waiter) = self.invokes.remove(&id) {
                    let _ = waiter.send(outcome);
                }
                continue;
            }
            let _ = self.events.send(event).await;
        }
    }
}

struct Acceptor {
    listener: TcpListener,
    calls: mpsc::WeakSender<ToDriver>,
    open: Arc<AtomicUsize>,
    options: Arc<GatewayOptions>,
    handshake_timeout: Duration,
}

impl Acceptor {
    async fn run(self, mut stop: oneshot::Receiver<()>, mut handles_gone: oneshot::Receiver<()>) {
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                _ = &mut stop => return,
                _ = &mut handles_gone => return,
            };
            let Some(calls) = self.calls.upgrade() else {
                return;
            };
            let tcp = match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors and the like: back off a moment, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let full = self.open.fetch_add(1, Ordering::AcqRel) >= self.options.max_connections;
            let guard = OpenGuard(self.open.clone());
            tokio::spawn(upgrade(
                tcp,
                calls,
                self.options.clone(),
                self.handshake_timeout,
                full,
                guard,
            ));
        }
    }
}

/// Counts a socket open until dropped.
struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Upgrades an accepted socket (TLS first, when configured) and serves it; `_open` counts
/// it open until it ends.
async fn upgrade(
    tcp: TcpStream,
    calls: mpsc::Sender<ToDriver>,
    options: Arc<GatewayOptions>,
    timeout: Duration,
    full: bool,
    _open: OpenGuard,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    #[cfg(feature = "rustls")]
    if let Some(tls) = options.tls.clone() {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        // Boxed, like the upgrade below: a handshake's state lives on the heap only while it
        // runs, instead of sizing the task that then holds the socket for hours.
        let handshake = Box::pin(acceptor.accept(tcp));
        if let Ok(Ok(stream)) = tokio::time::timeout_at(deadline, handshake).await {
            Box::pin(serve_socket(stream, calls, options, deadline, full)).await;
        }
        return;
    }
    // Boxed per stream type, so a plain socket never carries the size of a TLS one.
    Box::pin(serve_socket(tcp, calls, options, deadline, full)).await;
}

async fn serve_socket<S>(
    stream: S,
    calls: mpsc::Sender<ToDriver>,
    options: Arc<GatewayOptions>,
    deadline: tokio::time::Instant,
    full: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let retry_after = options.retry_after_secs;
    // The signature is tungstenite's callback's; its error is the HTTP response it sends.
    #[allow(clippy::result_large_err)]
    let refuse = move |_: &Request, response: Response| -> Result<Response, ErrorResponse> {
        if !full {
            return Ok(response);
        }
        let mut busy = ErrorResponse::new(Some("too many connections".to_owned()));
        *busy.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
        if let Ok(value) = http::HeaderValue::from_str(&retry_after.to_string()) {
            busy.headers_mut().insert(http::header::RETRY_AFTER, value);
        }
        Err(busy)
    };
    let upgrade =
        tokio_tungstenite::accept_hdr_async_with_config(stream, refuse, Some(options.websocket));
    let upgraded = tokio::time::timeout_at(deadline, Box::pin(upgrade)).await;
    let Ok(Ok(ws)) = upgraded else {
        return;
    };
    let outbox = Arc::new(Outbox::new(options.outbound_queue));
    let (reply, conn) = oneshot::channel();
    let socket = outbox.clone();
    if calls
        .send(ToDriver::Accepted { socket, reply })
        .await
        .is_err()
    {
        return;
    }
    let Ok(conn) = conn.await else {
        return;
    };
    let span = tracing::debug_span!("gateway socket", %conn);
    let socket = run_socket(ws, conn, calls, &outbox, options.close_timeout);
    Box::pin(socket.instrument(span)).await;
    outbox.gone();
}

/// What woke a socket's task.
enum Step {
    /// A message, the end of the stream, or a read error.
    Read(Option<Result<Message, WsError>>),
    /// The driver closes the socket with this frame, or cuts it (`None`).
    Close(Option<CloseFrame>),
    /// Writing failed: the socket is dead.
    WriteFailed,
}

/// One task per socket reads it and writes it: frames from the driver are written as soon
/// as the socket takes them, reads go on while a write waits, and a close from the driver
/// is seen even while the client has stopped reading.
async fn run_socket<S>(
    mut ws: tokio_tungstenite::WebSocketStream<S>,
    conn: ConnId,
    calls: mpsc::Sender<ToDriver>,
    outbox: &Outbox,
    close_timeout: Duration,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut batch = VecDeque::new();
    let mut unflushed = false;
    loop {
        let step = std::future::poll_fn(|cx| {
            // A close gets through even while writes wait for a client that does not read.
            if let Poll::Ready(frame) = outbox.poll_close(cx) {
                return Poll::Ready(Step::Close(frame));
            }
            if batch.is_empty() {
                outbox.take_frames(&mut batch);
            }
            if write_ready(&mut ws, &mut batch, &mut unflushed, cx).is_err() {
                return Poll::Ready(Step::WriteFailed);
            }
            ws.poll_next_unpin(cx).map(Step::Read)
        })
        .await;
        match step {
            Step::Read(Some(Ok(message))) => match wire::read(message) {
                wire::Read::Frame(frame) => {
                    if calls.send(ToDriver::Frame(conn, frame)).await.is_err() {
                        break;
                    }
                }
                wire::Read::Close(_) | wire::Read::Nothing => {}
            },
            Step::Read(_) | Step::WriteFailed => break,
            Step::Close(Some(frame)) => {
                // Boxed: a closing socket's state need not size every open one.
                Box::pin(linger(&mut ws, frame, close_timeout)).await;
                break;
            }
            Step::Close(None) => break,
        }
    }
    let _ = calls.send(ToDriver::Ended(conn)).await;
}

/// Moves the batch into the socket while it takes frames, and flushes. `Err`: the socket
/// failed.
fn write_ready<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    batch: &mut VecDeque<Frame>,
    unflushed: &mut bool,
    cx: &mut Context<'_>,
) -> Result<(), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while !batch.is_empty() {
        match ws.poll_ready_unpin(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => return Ok(()),
        }
        if let Some(frame) = batch.pop_front() {
            ws.start_send_unpin(wire::write(frame))?;
            *unflushed = true;
        }
    }
    if *unflushed {
        match ws.poll_flush_unpin(cx) {
            Poll::Ready(Ok(())) => *unflushed = false,
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => {}
        }
    }
    Ok(())
}

/// Sends our close frame and gives the client `limit` to answer it; a client that does not
/// read is dropped when the time is up.
async fn linger<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    frame: CloseFrame,
    limit: Duration,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(limit, async {
        if ws.send(wire::close(frame)).await.is_err() {
            return;
        }
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}
