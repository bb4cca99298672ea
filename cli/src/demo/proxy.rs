//! A TCP proxy between the demo's client and its gateway, so faults can be played on the
//! sockets already carried (cut them, or mute what the client sends while what the
//! gateway sends still arrives) while new ones pass.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What happens to a carried socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Pass,
    /// Nothing from the client goes through any more; the gateway's bytes still do.
    Mute,
    Cut,
}

/// One carried socket's controls: its fate, and whether it has stopped carrying the
/// client's bytes yet (muted, or ended).
struct Carried {
    fate: watch::Sender<Fate>,
    stopped: Arc<AtomicBool>,
}

/// The proxy; it stops when dropped.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    carried: Arc<Mutex<Vec<Carried>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Proxies a free loopback port to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let carried: Arc<Mutex<Vec<Carried>>> = Arc::default();
        let list = carried.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (fate, watched) = watch::channel(Fate::Pass);
                let stopped = Arc::new(AtomicBool::new(false));
                list.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(Carried {
                        fate,
                        stopped: stopped.clone(),
                    });
                tokio::spawn(async move {
                    carry(client, server, watched, &stopped).await;
                    stopped.store(true, Ordering::Release);
                });
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

    fn doom(&self, fate: Fate) -> Vec<Arc<AtomicBool>> {
        let mut carried = self.carried.lock().unwrap_or_else(PoisonError::into_inner);
        carried
            .drain(..)
            .map(|socket| {
                let _ = socket.fate.send(fate);
                socket.stopped
            })
            .collect()
    }

    /// Resets every socket carried so far (both sides see a drop).
    pub fn cut_all(&self) {
        self.doom(Fate::Cut);
    }

    /// What the client sends on every socket carried so far no longer reaches the gateway
    /// (its close frame included); what the gateway sends still arrives. Resolves once each
    /// has stopped, so nothing the client writes after this call gets through.
    pub async fn mute_all(&self) {
        for stopped in self.doom(Fate::Mute) {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
            while !stopped.load(Ordering::Acquire) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut_all();
    }
}

async fn carry(
    client: TcpStream,
    server: TcpStream,
    mut fate: watch::Receiver<Fate>,
    stopped: &AtomicBool,
) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let mut up = vec![0u8; 16 * 1024];
    let mut down = vec![0u8; 16 * 1024];
    // Until its controls are gone; then it just carries.
    let mut watching = true;
    let mut muted = false;
    loop {
        tokio::select! {
            // A fate comes first: once muted, not one more byte of the client's goes through.
            biased;
            changed = fate.changed(), if watching => {
                if changed.is_err() {
                    watching = false;
                    continue;
                }
                match *fate.borrow() {
                    Fate::Pass => {}
                    Fate::Cut => break,
                    Fate::Mute => {
                        muted = true;
                        stopped.store(true, Ordering::Release);
                    }
                }
            }
            n = cr.read(&mut up), if !muted => match n {
                Ok(n) if n > 0 => if sw.write_all(&up[..n]).await.is_err() { break },
                _ => break,
            },
            n = sr.read(&mut down) => match n {
                Ok(n) if n > 0 => if cw.write_all(&down[..n]).await.is_err() { break },
                _ => break,
            },
        }
    }
    // Reset rather than close: a cut looks like a network drop to both sides.
    if let (Ok(client), Ok(server)) = (cr.reunite(cw), sr.reunite(sw)) {
        let _ = client.set_zero_linger();
        let _ = server.set_zero_linger();
    }
}
