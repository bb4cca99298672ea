//! Accepting sockets: the listener's loop, a bound on upgrades under way (the oldest pushed
//! out by a new one), the upgrade deadline, the connection limit, answers when out of file
//! descriptors, TLS and the WebSocket upgrade, then the socket's own task.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http;
use tracing::Instrument;

use super::GatewayOptions;
use super::budget::Budget;
use super::driver::FromSocket;
use super::metered::Metered;
use super::outbox::Outbox;
use super::socket::run_socket;

/// How connections fared before their upgrade completed; counters only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AcceptStats {
    /// Upgrades under way now.
    pub pending_upgrades: usize,
    /// Upgrades completed.
    pub upgraded: u64,
    /// Slow upgrades cut to make room for a newer connection.
    pub evicted: u64,
    /// Connections answered 503 at once because the upgrades under way were at their bound
    /// and none was slow enough to cut.
    pub busy: u64,
    /// Upgrades that did not finish within the upgrade timeout.
    pub timed_out: u64,
    /// Upgrades answered 503 over the connection limit.
    pub refused: u64,
    /// Connections answered 503 and closed at once because the process was out of file
    /// descriptors.
    pub shed: u64,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    upgraded: AtomicU64,
    evicted: AtomicU64,
    busy: AtomicU64,
    timed_out: AtomicU64,
    refused: AtomicU64,
    shed: AtomicU64,
    pending: AtomicUsize,
}

impl Counters {
    pub(super) fn stats(&self) -> AcceptStats {
        AcceptStats {
            pending_upgrades: self.pending.load(Ordering::Relaxed),
            upgraded: self.upgraded.load(Ordering::Relaxed),
            evicted: self.evicted.load(Ordering::Relaxed),
            busy: self.busy.load(Ordering::Relaxed),
            timed_out: self.timed_out.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            shed: self.shed.load(Ordering::Relaxed),
        }
    }
}

/// The upgrades under way, oldest first, each with when it started and the signal that
/// cuts it.
#[derive(Default)]
struct Pending {
    next: u64,
    upgrades: BTreeMap<u64, (Instant, oneshot::Sender<()>)>,
}

/// Removes its upgrade from the pending ones when the upgrade ends, however it ends.
struct PendingGuard {
    pending: Arc<Mutex<Pending>>,
    counters: Arc<Counters>,
    id: u64,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        if lock(&self.pending).upgrades.remove(&self.id).is_some() {
            self.counters.pending.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

fn lock(pending: &Mutex<Pending>) -> MutexGuard<'_, Pending> {
    pending.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a connection is told when the process has no file descriptor to serve it.
const NO_ROOM: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

pub(super) struct Acceptor {
    listener: TcpListener,
    to_driver: mpsc::UnboundedSender<FromSocket>,
    shared: Arc<Shared>,
    pending: Arc<Mutex<Pending>>,
    /// A file descriptor kept in reserve, given up to answer a connection when the process
    /// has none left, so the client hears 503 instead of waiting in the backlog.
    reserve: Option<std::net::UdpSocket>,
}

/// What every upgrade reads.
struct Shared {
    open: Arc<AtomicUsize>,
    counters: Arc<Counters>,
    budget: Arc<Budget>,
    options: Arc<GatewayOptions>,
    before_ready: usize,
}

fn reserve_fd() -> Option<std::net::UdpSocket> {
    std::net::UdpSocket::bind(("127.0.0.1", 0)).ok()
}

impl Acceptor {
    pub(super) fn new(
        listener: TcpListener,
        to_driver: mpsc::UnboundedSender<FromSocket>,
        open: Arc<AtomicUsize>,
        counters: Arc<Counters>,
        budget: Arc<Budget>,
        options: Arc<GatewayOptions>,
        before_ready: usize,
    ) -> Self {
        Self {
            listener,
            to_driver,
            shared: Arc::new(Shared {
                open,
                counters,
                budget,
                options,
                before_ready,
            }),
            pending: Arc::new(Mutex::new(Pending::default())),
            reserve: reserve_fd(),
        }
    }

    pub(super) async fn run(
        mut self,
        mut stop: oneshot::Receiver<()>,
        mut handles_gone: oneshot::Receiver<()>,
    ) {
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                _ = &mut stop => return,
                _ = &mut handles_gone => return,
            };
            if self.to_driver.is_closed() {
                return;
            }
            match accepted {
                Ok((tcp, _)) => self.start_upgrade(tcp),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    self.shed().await;
                }
            }
        }
    }

    /// Out of file descriptors (or the like): gives up the reserve to take the waiting
    /// connection, tells it 503 and closes it, then takes the reserve back.
    async fn shed(&mut self) {
        if self.reserve.take().is_some() {
            if let Ok(Ok((tcp, _))) =
                tokio::time::timeout(Duration::from_millis(10), self.listener.accept()).await
            {
                let _ = tcp.try_write(NO_ROOM);
                self.shared.counters.shed.fetch_add(1, Ordering::Relaxed);
            }
            self.reserve = reserve_fd();
        } else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            self.reserve = reserve_fd();
        }
    }

    /// Starts upgrading `tcp`, within the bound on upgrades under way: at the bound, the
    /// oldest is cut if it has been at it for a fifth of the upgrade timeout (a slow or
    /// hostile client: a real one finishes in milliseconds); otherwise the newcomer is told
    /// 503 with `Retry-After` at once, so that a burst of honest clients is slowed down
    /// rather than made to cut each other's upgrades.
    fn start_upgrade(&mut self, tcp: TcpStream) {
        let _ = tcp.set_nodelay(true);
        let (evict, evicted) = oneshot::channel();
        let now = Instant::now();
        let slow = self.shared.options.upgrade_timeout / 5;
        let guard = {
            let mut pending = lock(&self.pending);
            if pending.upgrades.len() >= self.shared.options.max_pending_upgrades {
                let oldest_is_slow =
                    pending
                        .upgrades
                        .first_key_value()
                        .is_some_and(|(_, (started, _))| {
                            now.saturating_duration_since(*started) >= slow
                        });
                if !oldest_is_slow {
                    drop(pending);
                    let _ = tcp.try_write(NO_ROOM);
                    self.shared.counters.busy.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                if let Some((_, (_, oldest))) = pending.upgrades.pop_first() {
                    let _ = oldest.send(());
                    self.shared.counters.evicted.fetch_add(1, Ordering::Relaxed);
                    self.shared.counters.pending.fetch_sub(1, Ordering::Relaxed);
                }
            }
            let id = pending.next;
            pending.next += 1;
            pending.upgrades.insert(id, (now, evict));
            self.shared.counters.pending.fetch_add(1, Ordering::Relaxed);
            PendingGuard {
                pending: self.pending.clone(),
                counters: self.shared.counters.clone(),
                id,
            }
        };
        tokio::spawn(upgrade(
            tcp,
            self.to_driver.clone(),
            self.shared.clone(),
            evicted,
            guard,
        ));
    }
}

/// Counts a socket open until dropped.
struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Upgrades an accepted socket (TLS first, when configured) within the upgrade timeout,
/// unless a newer connection pushes it out first; then serves it.
async fn upgrade(
    tcp: TcpStream,
    to_driver: mpsc::UnboundedSender<FromSocket>,
    shared: Arc<Shared>,
    evicted: oneshot::Receiver<()>,
    pending: PendingGuard,
) {
    // A peer on this machine: its new OpenClaw devices may pair at once (AutoApprove).
    let loopback = tcp.peer_addr().is_ok_and(|a| a.ip().is_loopback());
    let timeout = shared.options.upgrade_timeout;
    let upgraded = tokio::select! {
        upgraded = tokio::time::timeout(timeout, Box::pin(upgrade_stream(tcp, shared.clone()))) => upgraded,
        _ = evicted => return,
    };
    drop(pending);
    let (ws, query) = match upgraded {
        Ok(Some(upgraded)) => upgraded,
        Ok(None) => return,
        Err(_) => {
            shared.counters.timed_out.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    shared.counters.upgraded.fetch_add(1, Ordering::Relaxed);
    shared.open.fetch_add(1, Ordering::AcqRel);
    let _open = OpenGuard(shared.open.clone());
    match ws {
        Upgraded::Plain(ws) => serve_socket(ws, to_driver, &shared, (loopback, query)).await,
        #[cfg(feature = "rustls")]
        Upgraded::Tls(ws) => {
            Box::pin(serve_socket(ws, to_driver, &shared, (loopback, query))).await;
        }
    }
}

type Ws<S> = tokio_tungstenite::WebSocketStream<Metered<S>>;

/// An upgraded socket, over TCP or TLS. Boxed per stream type, so a plain socket never
/// carries the size of a TLS one.
enum Upgraded {
    Plain(Box<Ws<TcpStream>>),
    #[cfg(feature = "rustls")]
    Tls(Box<Ws<tokio_rustls::server::TlsStream<TcpStream>>>),
}

/// The upgraded socket, and the query of the URL its client asked for.
async fn upgrade_stream(tcp: TcpStream, shared: Arc<Shared>) -> Option<(Upgraded, Option<String>)> {
    #[cfg(feature = "rustls")]
    if let Some(tls) = shared.options.tls.clone() {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        // Boxed, like the upgrade below: a handshake's state lives on the heap only while it
        // runs, instead of sizing the task that then holds the socket for hours.
        let stream = Box::pin(acceptor.accept(tcp)).await.ok()?;
        let (ws, query) = Box::pin(websocket(stream, &shared)).await?;
        return Some((Upgraded::Tls(Box::new(ws)), query));
    }
    let (ws, query) = Box::pin(websocket(tcp, &shared)).await?;
    Some((Upgraded::Plain(Box::new(ws)), query))
}

/// The largest upgrade request read: its headers must fit.
const MAX_REQUEST: usize = 16 << 10;

async fn websocket<S>(stream: S, shared: &Shared) -> Option<(Ws<S>, Option<String>)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let retry_after = shared.options.retry_after_secs;
    let (open, max) = (shared.open.clone(), shared.options.max_connections);
    let counters = shared.counters.clone();
    let mut query = None;
    // The signature is tungstenite's callback's; its error is the HTTP response it sends.
    #[allow(clippy::result_large_err)]
    let refuse = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        // Bounded by the request's own bound (MAX_REQUEST).
        query = request.uri().query().map(str::to_owned);
        if open.load(Ordering::Acquire) < max {
            return Ok(response);
        }
        counters.refused.fetch_add(1, Ordering::Relaxed);
        let mut busy = ErrorResponse::new(Some("too many connections".to_owned()));
        *busy.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
        if let Ok(value) = http::HeaderValue::from_str(&retry_after.to_string()) {
            busy.headers_mut().insert(http::header::RETRY_AFTER, value);
        }
        Err(busy)
    };
    let metered = Metered::new(stream, shared.budget.clone(), MAX_REQUEST);
    let mut ws = tokio_tungstenite::accept_hdr_async_with_config(
        metered,
        refuse,
        Some(shared.options.websocket),
    )
    .await
    .ok()?;
    ws.get_mut().message_done();
    ws.get_mut().set_limit(shared.before_ready);
    Some((ws, query))
}

async fn serve_socket<S>(
    ws: Box<Ws<S>>,
    to_driver: mpsc::UnboundedSender<FromSocket>,
    shared: &Shared,
    (loopback, query): (bool, Option<String>),
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let outbox = Arc::new(Outbox::new(
        shared.budget.clone(),
        shared.options.inbound_window,
    ));
    let (reply, conn) = oneshot::channel();
    let socket = outbox.clone();
    if to_driver
        .send(FromSocket::Accepted {
            socket,
            reply,
            loopback,
            query,
        })
        .is_err()
    {
        return;
    }
    let Ok(conn) = conn.await else {
        return;
    };
    let span = tracing::debug_span!("gateway socket", %conn);
    let socket = run_socket(*ws, conn, to_driver, &outbox, shared.options.close_timeout);
    Box::pin(socket.instrument(span)).await;
}
