//! A TCP proxy between the demo's client and its gateway, so faults can be played on the
//! sockets already carried (cut them, or hang them: open, silent) while new ones pass.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What happens to a carried socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Pass,
    Hang,
    Cut,
}

/// The proxy; it stops when dropped.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    carried: Arc<Mutex<Vec<watch::Sender<Fate>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Proxies a free loopback port to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let carried: Arc<Mutex<Vec<watch::Sender<Fate>>>> = Arc::default();
        let list = carried.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (fate, watched) = watch::channel(Fate::Pass);
                list.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(fate);
                tokio::spawn(carry(client, server, watched));
            }
        });
        Ok(Self {
            addr,
            carried,
            task,
        })
    }

    /// `ws://addr/`.
    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    fn doom(&self, fate: Fate) {
        let mut carried = self.carried.lock().unwrap_or_else(PoisonError::into_inner);
        for socket in carried.drain(..) {
            let _ = socket.send(fate);
        }
    }

    /// Resets every socket carried so far (both sides see a drop).
    pub fn cut_all(&self) {
        self.doom(Fate::Cut);
    }

    /// Every socket carried so far goes silent, both ways, and stays open.
    pub fn hang_all(&self) {
        self.doom(Fate::Hang);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut_all();
    }
}

async fn carry(client: TcpStream, server: TcpStream, mut fate: watch::Receiver<Fate>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let mut up = vec![0u8; 16 * 1024];
    let mut down = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            n = cr.read(&mut up) => match n {
                Ok(n) if n > 0 => if sw.write_all(&up[..n]).await.is_err() { break },
                _ => break,
            },
            n = sr.read(&mut down) => match n {
                Ok(n) if n > 0 => if cw.write_all(&down[..n]).await.is_err() { break },
                _ => break,
            },
            changed = fate.changed() => {
                if changed.is_err() {
                    continue;
                }
                match *fate.borrow() {
                    Fate::Pass => continue,
                    Fate::Cut => break,
                    Fate::Hang => {}
                }
                // Silent and open until the demo is over.
                tokio::time::sleep(Duration::from_secs(3600)).await;
                break;
            }
        }
    }
    // Reset rather than close: a cut looks like a network drop to both sides.
    if let (Ok(client), Ok(server)) = (cr.reunite(cw), sr.reunite(sw)) {
        let _ = client.set_zero_linger();
        let _ = server.set_zero_linger();
    }
}
