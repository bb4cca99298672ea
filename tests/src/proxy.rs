//! A small TCP fault proxy between a client and a server on loopback: latency, a
//! blackhole (both sockets open, nothing forwarded), reset with `SO_LINGER 0`,
//! half-close, and dribbling bytes.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does to the bytes it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward at once.
    Pass,
    /// Hold each chunk this long before forwarding it.
    Latency(Duration),
    /// Forward nothing, read nothing, keep both sockets open.
    Blackhole,
    /// Forward `bytes` at a time, one chunk every `every`.
    Dribble { bytes: usize, every: Duration },
}

/// A one-off fault on every connection carried so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Reset,
    HalfClose,
    /// Stop forwarding on the connections carried so far, forever, both sockets kept
    /// open: their peers each see the other go silent. Newer connections pass.
    Freeze,
    /// Reset the client's side of the connections carried so far, and keep their
    /// upstream side open and silent until a later reset: the client sees its socket die
    /// at once while the server still holds the old connection.
    CutClientSide,
}

pub struct FaultProxy {
    pub addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    fault: watch::Sender<(u64, Fault)>,
    accept: JoinHandle<()>,
    carried: Arc<Mutex<u64>>,
}

impl FaultProxy {
    /// Proxies a free loopback port to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(Mutex::new(Mode::Pass));
        let (fault, _) = watch::channel((0, Fault::None));
        let carried = Arc::new(Mutex::new(0));
        let accept = {
            let (mode, fault, carried) = (mode.clone(), fault.clone(), carried.clone());
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        continue;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    *carried.lock().unwrap() += 1;
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::spawn(pump(cr, sw, mode.clone(), fault.subscribe(), false));
                    tokio::spawn(pump(sr, cw, mode.clone(), fault.subscribe(), true));
                }
            })
        };
        Self {
            addr,
            mode,
            fault,
            accept,
            carried,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Resets every connection carried so far (RST to both sides).
    pub fn reset_all(&self) {
        self.fault.send_modify(|(n, f)| {
            *n += 1;
            *f = Fault::Reset;
        });
    }

    /// Freezes every connection carried so far (nothing forwarded, nothing closed), while
    /// new connections pass: a path that died silently under a client that then comes back
    /// on a new one, so the server sees the new connection before the old one ends.
    pub fn freeze_all(&self) {
        self.fault.send_modify(|(n, f)| {
            *n += 1;
            *f = Fault::Freeze;
        });
    }

    /// Resets the client side of every connection carried so far, keeping the upstream
    /// side open and silent (until [`reset_all`](Self::reset_all) or the proxy's drop): the
    /// client comes back on a new connection while the server still holds the old one.
    pub fn cut_client_side(&self) {
        self.fault.send_modify(|(n, f)| {
            *n += 1;
            *f = Fault::CutClientSide;
        });
    }

    /// Closes the direction toward the client (it reads EOF) and keeps the rest open.
    pub fn half_close(&self) {
        self.fault.send_modify(|(n, f)| {
            *n += 1;
            *f = Fault::HalfClose;
        });
    }

    /// Connections carried so far.
    pub fn carried(&self) -> u64 {
        *self.carried.lock().unwrap()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.reset_all();
    }
}

async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mode: Arc<Mutex<Mode>>,
    mut fault: watch::Receiver<(u64, Fault)>,
    toward_client: bool,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let seen = fault.borrow().0;
    loop {
        let current = *mode.lock().unwrap();
        if current == Mode::Blackhole {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(2)) => continue,
                _ = fault.changed() => {}
            }
        }
        let read = tokio::select! {
            read = from.read(&mut buf), if current != Mode::Blackhole => read,
            changed = fault.changed() => {
                if changed.is_err() {
                    return;
                }
                let (n, what) = *fault.borrow();
                if n == seen {
                    continue;
                }
                match what {
                    Fault::Reset => {
                        let _ = socket2::SockRef::from(to.as_ref()).set_linger(Some(Duration::ZERO));
                        let _ = socket2::SockRef::from(from.as_ref()).set_linger(Some(Duration::ZERO));
                        return;
                    }
                    Fault::CutClientSide => return cut_client_side(from, to, fault, toward_client).await,
                    Fault::HalfClose if toward_client => {
                        let _ = to.shutdown().await;
                        // Keep reading so the other direction stays alive.
                        loop {
                            match from.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(_) => {}
                            }
                        }
                    }
                    Fault::Freeze => {
                        loop {
                            if fault.changed().await.is_err() {
                                return;
                            }
                            let now = fault.borrow().1;
                            match now {
                                Fault::Reset => {
                                    let _ = socket2::SockRef::from(to.as_ref()).set_linger(Some(Duration::ZERO));
                                    let _ = socket2::SockRef::from(from.as_ref()).set_linger(Some(Duration::ZERO));
                                    return;
                                }
                                Fault::CutClientSide => break,
                                _ => {}
                            }
                        }
                        return cut_client_side(from, to, fault, toward_client).await;
                    }
                    Fault::HalfClose | Fault::None => continue,
                }
            }
        };
        let n = match read {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        // A blackhole that began while this read was pending holds what was read, as a
        // partitioned network would; it goes on once the path is back.
        while *mode.lock().unwrap() == Mode::Blackhole {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(2)) => {}
                _ = fault.changed() => {
                    if let (_, Fault::Reset) = *fault.borrow() {
                        let _ = socket2::SockRef::from(to.as_ref()).set_linger(Some(Duration::ZERO));
                        let _ = socket2::SockRef::from(from.as_ref()).set_linger(Some(Duration::ZERO));
                        return;
                    }
                }
            }
        }
        let now_mode = *mode.lock().unwrap();
        match now_mode {
            Mode::Latency(d) => tokio::time::sleep(d).await,
            Mode::Dribble { bytes, every } => {
                for part in chunk.chunks(bytes.max(1)) {
                    if to.write_all(part).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(every).await;
                }
                continue;
            }
            Mode::Pass | Mode::Blackhole => {}
        }
        if to.write_all(chunk).await.is_err() {
            return;
        }
    }
}

/// Resets the client's socket and holds the upstream one open and silent until a reset
/// (then reset too) or the proxy's end. Each direction's pump holds one half of each
/// socket: the client's goes now, so its socket closes once both pumps got here.
async fn cut_client_side(
    from: OwnedReadHalf,
    to: OwnedWriteHalf,
    mut fault: watch::Receiver<(u64, Fault)>,
    toward_client: bool,
) {
    let (client, upstream): (&TcpStream, &TcpStream) = if toward_client {
        (to.as_ref(), from.as_ref())
    } else {
        (from.as_ref(), to.as_ref())
    };
    let _ = socket2::SockRef::from(client).set_linger(Some(Duration::ZERO));
    let upstream = socket2::SockRef::from(upstream).try_clone();
    if toward_client {
        drop(to);
        hold_until_reset(upstream, &mut fault).await;
        drop(from);
    } else {
        drop(from);
        hold_until_reset(upstream, &mut fault).await;
        drop(to);
    }
}

async fn hold_until_reset(
    upstream: std::io::Result<socket2::Socket>,
    fault: &mut watch::Receiver<(u64, Fault)>,
) {
    while fault.changed().await.is_ok() {
        if fault.borrow().1 == Fault::Reset {
            if let Ok(upstream) = &upstream {
                let _ = upstream.set_linger(Some(Duration::ZERO));
            }
            return;
        }
    }
}
