//! A scripted WebSocket server on 127.0.0.1 that speaks the server side of the plain,
//! discord and OpenClaw profiles, misbehaves on demand, and records what it saw.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tether_core::protocol::discord::wire::{self as discord, ClientFrame};
use tether_core::protocol::openclaw::wire as openclaw;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Which server side to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Echo text and binary; pings are answered by the WebSocket layer.
    Plain,
    /// Discord gateway v10, server side.
    Discord,
    /// OpenClaw's gateway protocol, server side: the challenge, `hello-ok`, numbered
    /// ticks, answers to requests.
    OpenClaw,
}

/// How the server behaves; scenarios change it while running.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// Accept TCP but never answer the WebSocket upgrade (hold the socket until EOF).
    pub stall_upgrade: bool,
    pub stall_hello: bool,
    pub ack_heartbeats: bool,
    pub complete_close: bool,
    pub heartbeat_interval_ms: u64,
    /// OpenClaw: the tick interval announced in `hello-ok` and kept (`None`: announce
    /// 30 s and send none).
    pub tick_ms: Option<u64>,
    /// OpenClaw: answer requests (`false`: hold every answer).
    pub answer_requests: bool,
    /// plain: echo data frames.
    pub echo: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            stall_upgrade: false,
            stall_hello: false,
            ack_heartbeats: true,
            complete_close: true,
            heartbeat_interval_ms: 100,
            tick_ms: None,
            answer_requests: true,
            echo: true,
        }
    }
}

/// What the server saw, on which of its connections (numbered from 1 in accept order).
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    Accepted,
    Identify,
    Resume { session: String, seq: Option<u64> },
    Heartbeat { seq: Option<u64> },
    Text(String),
    Binary(usize),
    Request { id: Value, method: String },
    CloseFrame(u16),
    Closed,
}

#[derive(Debug, Clone)]
pub struct Record {
    pub at: Instant,
    pub conn: u64,
    pub seen: Seen,
}

/// An action on one of the server's connections.
#[derive(Debug)]
pub enum Action {
    Send(Message),
    /// discord: a dispatch with the next sequence number.
    Dispatch(String, Value),
    Close(u16),
    /// Stop reading and writing; keep TCP open.
    Freeze,
    /// Send `count` binary messages of `size` bytes as fast as the client takes them.
    Flood {
        count: usize,
        size: usize,
    },
    /// Reset the TCP connection (`SO_LINGER 0`).
    Reset,
}

#[derive(Default)]
struct Shared {
    records: Vec<Record>,
    open: usize,
    max_open: usize,
    accepted: u64,
    live: Vec<(u64, mpsc::UnboundedSender<Action>)>,
    /// A duplicate of every open connection's socket, to see whether its client has let it
    /// go before the accept loop counts the next one (see [`Shared::forget_gone`]).
    probes: Vec<(u64, socket2::Socket)>,
}

impl Shared {
    /// Counts connection `id` closed, once.
    fn close(&mut self, id: u64, at: Instant) {
        let Some(index) = self.probes.iter().position(|(open, _)| *open == id) else {
            return;
        };
        // The duplicate goes first: it would hold the connection open.
        drop(self.probes.swap_remove(index));
        self.open -= 1;
        self.records.push(Record {
            at,
            conn: id,
            seen: Seen::Closed,
        });
    }

    /// Counts closed every connection whose client has already let its socket go. A client
    /// that drops its socket before it dials the next has sent its FIN (or RST) first, and
    /// on loopback the kernel has it before the next connection can be accepted; but the
    /// connection's task may not have run yet to read it. Without this look, "never two
    /// sockets open at once" would measure the server's scheduling, not the client.
    fn forget_gone(&mut self, at: Instant) {
        let gone: Vec<u64> = self
            .probes
            .iter()
            .filter(|(_, socket)| peer_gone(socket))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.close(id, at);
        }
    }
}

/// Whether the peer has closed or reset `socket`. Data still unread hides a FIN behind it;
/// such a socket counts as open, which can only make the measure stricter.
fn peer_gone(socket: &socket2::Socket) -> bool {
    let mut byte = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    // The duplicate shares the original's non-blocking mode: this never waits.
    match socket.peek(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// The server. Dropping it stops accepting; [`stop`](Self::stop) also drops every connection.
pub struct ScriptedServer {
    pub addr: SocketAddr,
    kind: Kind,
    behaviour: Arc<Mutex<Behaviour>>,
    shared: Arc<Mutex<Shared>>,
    accept: Option<JoinHandle<()>>,
    started: Instant,
}

impl ScriptedServer {
    /// Starts on a free loopback port.
    pub async fn start(kind: Kind, behaviour: Behaviour) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), kind, behaviour).await
    }

    /// Starts on `addr` (to come back on the same port after a restart).
    pub async fn start_on(addr: SocketAddr, kind: Kind, behaviour: Behaviour) -> Self {
        let mut server = Self {
            addr,
            kind,
            behaviour: Arc::new(Mutex::new(behaviour)),
            shared: Arc::new(Mutex::new(Shared::default())),
            accept: None,
            started: Instant::now(),
        };
        server.listen().await;
        server
    }

    async fn listen(&mut self) {
        let listener = bind(self.addr).await;
        self.addr = listener.local_addr().unwrap();
        let (kind, behaviour, shared) = (self.kind, self.behaviour.clone(), self.shared.clone());
        let url = self.url();
        self.accept = Some(tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = tcp.set_nodelay(true);
                let probe = socket2::SockRef::from(&tcp).try_clone().unwrap();
                let id = {
                    let mut s = shared.lock().unwrap();
                    s.forget_gone(Instant::now());
                    s.accepted += 1;
                    s.open += 1;
                    s.max_open = s.max_open.max(s.open);
                    let id = s.accepted;
                    s.probes.push((id, probe));
                    s.records.push(Record {
                        at: Instant::now(),
                        conn: id,
                        seen: Seen::Accepted,
                    });
                    id
                };
                let (tx, rx) = mpsc::unbounded_channel();
                shared.lock().unwrap().live.push((id, tx));
                let conn = Conn {
                    id,
                    kind,
                    behaviour: behaviour.clone(),
                    shared: shared.clone(),
                    url: url.clone(),
                };
                tokio::spawn(conn.run(tcp, rx));
            }
        }));
    }

    /// `ws://127.0.0.1:port/`.
    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// Changes the behaviour for what follows.
    pub fn behave(&self, change: impl FnOnce(&mut Behaviour)) {
        change(&mut self.behaviour.lock().unwrap());
    }

    /// Stops listening (connects are refused) and resets every open connection.
    pub async fn stop(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
            let _ = accept.await;
        }
        let live = std::mem::take(&mut self.shared.lock().unwrap().live);
        for (_, tx) in live {
            let _ = tx.send(Action::Reset);
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) {
        self.listen().await;
    }

    /// Acts on the newest connection still open.
    pub fn act(&self, action: Action) {
        let s = self.shared.lock().unwrap();
        if let Some((_, tx)) = s.live.last() {
            let _ = tx.send(action);
        }
    }

    /// Acts on connection `conn`.
    pub fn act_on(&self, conn: u64, action: Action) {
        let s = self.shared.lock().unwrap();
        if let Some((_, tx)) = s.live.iter().find(|(id, _)| *id == conn) {
            let _ = tx.send(action);
        }
    }

    pub fn records(&self) -> Vec<Record> {
        self.shared.lock().unwrap().records.clone()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.lock().unwrap().accepted
    }

    /// The most connections ever open at once.
    pub fn max_open(&self) -> usize {
        self.shared.lock().unwrap().max_open
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.shared.lock().unwrap().open
    }

    /// Milliseconds since the server started, for messages.
    pub fn ms(&self, at: Instant) -> u128 {
        at.saturating_duration_since(self.started).as_millis()
    }

    /// Waits until `f` holds over the records, up to `limit`.
    pub async fn wait_for(&self, limit: Duration, f: impl Fn(&[Record]) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if f(&self.records()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
        if let Ok(mut s) = self.shared.lock() {
            for (_, tx) in s.live.drain(..) {
                let _ = tx.send(Action::Reset);
            }
        }
    }
}

/// Binds `addr`, retrying briefly while the port is still held by a closing listener.
async fn bind(addr: SocketAddr) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        let _ = socket.set_reuseaddr(true);
        match socket.bind(addr).and_then(|()| socket.listen(128)) {
            Ok(listener) => return listener,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("cannot bind {addr}: {e}"),
        }
    }
}

struct Conn {
    id: u64,
    kind: Kind,
    behaviour: Arc<Mutex<Behaviour>>,
    shared: Arc<Mutex<Shared>>,
    url: String,
}

type Ws = WebSocketStream<TcpStream>;

impl Conn {
    fn record(&self, seen: Seen) {
        self.shared.lock().unwrap().records.push(Record {
            at: Instant::now(),
            conn: self.id,
            seen,
        });
    }

    fn behaviour(&self) -> Behaviour {
        self.behaviour.lock().unwrap().clone()
    }

    async fn run(self, tcp: TcpStream, actions: mpsc::UnboundedReceiver<Action>) {
        if self.behaviour().stall_upgrade {
            wait_for_eof(&tcp).await;
            self.closed();
            return;
        }
        let ws = tokio_tungstenite::accept_async(tcp).await;
        if let Ok(mut ws) = ws {
            self.serve(&mut ws, actions).await;
            // Recorded before the socket is dropped, so a client that waits for the close
            // can never be seen opening its next socket first.
            self.closed();
            drop(ws);
        } else {
            self.closed();
        }
    }

    fn closed(&self) {
        let mut s = self.shared.lock().unwrap();
        s.live.retain(|(id, _)| *id != self.id);
        s.close(self.id, Instant::now());
    }

    async fn serve(&self, ws: &mut Ws, mut actions: mpsc::UnboundedReceiver<Action>) {
        let mut session = Session::default();
        self.greet(ws, &mut session).await;
        let tick_every = self.behaviour().tick_ms.map(Duration::from_millis);
        let mut tick = tokio::time::interval(tick_every.unwrap_or(Duration::from_secs(3600)));
        tick.tick().await;
        loop {
            tokio::select! {
                read = ws.next() => match read {
                    Some(Ok(Message::Close(frame))) => {
                        self.record(Seen::CloseFrame(frame.as_ref().map_or(1005, |f| u16::from(f.code))));
                        if !self.behaviour().complete_close {
                            // Never answer: wait for the client to drop TCP.
                            wait_for_eof(ws.get_ref()).await;
                            return;
                        }
                    }
                    Some(Ok(message)) => {
                        if !self.handle(ws, &mut session, message).await {
                            return;
                        }
                    }
                    Some(Err(_)) | None => return,
                },
                action = actions.recv() => match action {
                    Some(Action::Send(m)) => { let _ = ws.send(m).await; }
                    Some(Action::Dispatch(name, d)) => {
                        session.seq += 1;
                        let frame = discord::dispatch(session.seq, &name, &d.to_string());
                        let _ = ws.send(to_message(frame)).await;
                    }
                    Some(Action::Close(code)) => {
                        let _ = ws.send(Message::Close(Some(CloseFrame {
                            code: CloseCode::from(code),
                            reason: "".into(),
                        }))).await;
                    }
                    Some(Action::Flood { count, size }) => {
                        let payload = bytes::Bytes::from(vec![7u8; size]);
                        for _ in 0..count {
                            if ws.send(Message::Binary(payload.clone())).await.is_err() {
                                return;
                            }
                        }
                    }
                    Some(Action::Freeze) => {
                        // Hold the socket open, silent, until the client drops it.
                        wait_for_eof(ws.get_ref()).await;
                        return;
                    }
                    Some(Action::Reset) | None => {
                        let _ = socket2::SockRef::from(ws.get_ref()).set_linger(Some(Duration::ZERO));
                        return;
                    }
                },
                _ = tick.tick(), if tick_every.is_some() && session.ready => {
                    session.seq += 1;
                    let _ = ws.send(to_message(openclaw::tick(session.seq, 0))).await;
                }
            }
        }
    }

    async fn greet(&self, ws: &mut Ws, _session: &mut Session) {
        let b = self.behaviour();
        match self.kind {
            Kind::Discord if !b.stall_hello => {
                let hello = discord::hello(Duration::from_millis(b.heartbeat_interval_ms));
                let _ = ws.send(to_message(hello)).await;
            }
            Kind::OpenClaw if !b.stall_hello => {
                let challenge = openclaw::challenge(&format!("n{}", self.id), 1_737_264_000_000);
                let _ = ws.send(to_message(challenge)).await;
            }
            _ => {}
        }
    }

    /// Handles one message; false ends the connection.
    async fn handle(&self, ws: &mut Ws, session: &mut Session, message: Message) -> bool {
        let b = self.behaviour();
        match (self.kind, message) {
            (Kind::Plain, Message::Text(text)) => {
                self.record(Seen::Text(text.to_string()));
                if b.echo {
                    return ws.send(Message::Text(text)).await.is_ok();
                }
            }
            (Kind::Plain, Message::Binary(data)) => {
                self.record(Seen::Binary(data.len()));
                if b.echo {
                    return ws.send(Message::Binary(data)).await.is_ok();
                }
            }
            (Kind::Discord, Message::Text(text)) => {
                let Ok(frame) = discord::read_client(text.as_str()) else {
                    return true;
                };
                match frame {
                    ClientFrame::Identify { .. } => {
                        self.record(Seen::Identify);
                        session.seq = 1;
                        session.ready = true;
                        let ready = json!({
                            "session_id": format!("session-{}", self.id),
                            "resume_gateway_url": self.url,
                        });
                        let ready = discord::dispatch(1, "READY", &ready.to_string());
                        return ws.send(to_message(ready)).await.is_ok();
                    }
                    ClientFrame::Resume {
                        session_id, seq, ..
                    } => {
                        self.record(Seen::Resume {
                            session: session_id.into_owned(),
                            seq,
                        });
                        session.seq = seq.unwrap_or(0) + 1;
                        session.ready = true;
                        let resumed = discord::dispatch(session.seq, "RESUMED", "null");
                        return ws.send(to_message(resumed)).await.is_ok();
                    }
                    ClientFrame::Heartbeat { seq } => {
                        self.record(Seen::Heartbeat { seq });
                        if b.ack_heartbeats {
                            return ws.send(to_message(discord::heartbeat_ack())).await.is_ok();
                        }
                    }
                    _ => self.record(Seen::Text(text.to_string())),
                }
            }
            (Kind::OpenClaw, Message::Text(text)) => {
                let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else {
                    return true;
                };
                let method = v["method"].as_str().unwrap_or_default().to_owned();
                self.record(Seen::Request {
                    id: v["id"].clone(),
                    method: method.clone(),
                });
                let answer = match method.as_str() {
                    "connect" if b.stall_hello => None,
                    "connect" => {
                        session.ready = true;
                        Some(json!({
                            "type": "hello-ok",
                            "protocol": 4,
                            "server": {"version": "scripted", "connId": format!("c{}", self.id)},
                            "features": {"methods": ["echo", "slow"], "events": ["tick"]},
                            "snapshot": {},
                            "auth": {"role": v["params"]["role"], "scopes": v["params"]["scopes"]},
                            "policy": {
                                "maxPayload": 1_048_576,
                                "maxBufferedBytes": 2_097_152,
                                "tickIntervalMs": b.tick_ms.unwrap_or(30_000),
                            },
                        }))
                    }
                    _ if b.answer_requests => Some(v["params"].clone()),
                    _ => None,
                };
                if let Some(payload) = answer {
                    let res = openclaw::res_ok(&v["id"].to_string(), &payload.to_string());
                    return ws.send(to_message(res)).await.is_ok();
                }
            }
            _ => {}
        }
        true
    }
}

#[derive(Default)]
struct Session {
    seq: u64,
    ready: bool,
}

/// Waits until the peer closes TCP, discarding whatever it sends; nothing is answered.
async fn wait_for_eof(tcp: &TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if tcp.readable().await.is_err() {
            return;
        }
        match tcp.try_read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// A frame of the wire modules as tungstenite writes it.
fn to_message(frame: tether_core::Frame) -> Message {
    tether_adapter::wire::write(frame)
}
