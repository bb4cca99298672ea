//! Accepting sockets: the listener's loop, the connection limit, TLS and the WebSocket
//! upgrade within the handshake time, then the socket's own task.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http;
use tracing::Instrument;

use super::GatewayOptions;
use super::driver::ToDriver;
use super::outbox::Outbox;
use super::socket::run_socket;

pub(super) struct Acceptor {
    listener: TcpListener,
    calls: mpsc::WeakSender<ToDriver>,
    open: Arc<AtomicUsize>,
    options: Arc<GatewayOptions>,
    handshake_timeout: Duration,
}

impl Acceptor {
    pub(super) fn new(
        listener: TcpListener,
        calls: mpsc::WeakSender<ToDriver>,
        open: Arc<AtomicUsize>,
        options: Arc<GatewayOptions>,
        handshake_timeout: Duration,
    ) -> Self {
        Self {
            listener,
            calls,
            open,
            options,
            handshake_timeout,
        }
    }

    pub(super) async fn run(
        self,
        mut stop: oneshot::Receiver<()>,
        mut handles_gone: oneshot::Receiver<()>,
    ) {
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
