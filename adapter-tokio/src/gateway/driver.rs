//! The gateway's driver task: it owns the sans-IO gateway, takes what the sockets and the
//! application tell it, and carries out the gateway's commands on the sockets.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use tether_core::{ConnId, Frame};
#[cfg(feature = "faults")]
use tether_gateway::Faults;
use tether_gateway::registry::{InvokeId, InvokeOutcome};
use tether_gateway::{
    Answer, Delivered, Gateway, GatewayCommand, GatewayError, GatewayEvent, GatewayStats, Violation,
};
use tokio::sync::{mpsc, oneshot};

use super::ServeError;
use super::outbox::{Outbox, Refused};

pub(super) type InvokeReply =
    Result<(InvokeId, oneshot::Receiver<InvokeOutcome<Answer>>), ServeError>;

pub(super) enum Call {
    Send {
        peer: String,
        frame: Frame,
        reply: oneshot::Sender<Result<ConnId, GatewayError>>,
    },
    Dispatch {
        peer: String,
        name: String,
        data: Box<RawValue>,
        reply: oneshot::Sender<Result<Delivered, GatewayError>>,
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
    Pairing {
        request_id: String,
        approve: bool,
        reply: oneshot::Sender<Result<tether_gateway::PairingRequest, GatewayError>>,
    },
    PendingPairings {
        reply: oneshot::Sender<Vec<tether_gateway::PairingRequest>>,
    },
    Respond {
        conn: ConnId,
        id: String,
        result: Result<Box<RawValue>, tether_core::RemoteError>,
        reply: oneshot::Sender<Result<(), GatewayError>>,
    },
    Stats {
        reply: oneshot::Sender<GatewayStats>,
    },
    InvalidateSession {
        peer: String,
        resumable: bool,
        reply: oneshot::Sender<Result<ConnId, GatewayError>>,
    },
    #[cfg(feature = "faults")]
    GetFaults {
        reply: oneshot::Sender<Faults>,
    },
    #[cfg(feature = "faults")]
    Drop {
        peer: String,
        reply: oneshot::Sender<Result<ConnId, GatewayError>>,
    },
    #[cfg(feature = "faults")]
    Faults {
        faults: Faults,
        reply: oneshot::Sender<()>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// What a socket's task tells the driver. Unbounded, since each socket bounds what it
/// sends by its inbound credit, and sends `Accepted` and `Ended` once.
pub(super) enum FromSocket {
    Accepted {
        socket: Arc<Outbox>,
        reply: oneshot::Sender<ConnId>,
        /// Whether its peer is on this machine.
        loopback: bool,
        /// The query of the URL its client asked for.
        query: Option<String>,
    },
    /// The client's close frame arrived on `conn`, with this code.
    CloseFrame(ConnId, Option<u16>),
    /// A frame read on `conn`, holding `charge` bytes of its credit.
    Frame {
        conn: ConnId,
        frame: Frame,
        charge: usize,
    },
    /// The client broke the WebSocket protocol.
    Violation(ConnId, Violation),
    Ended(ConnId),
}

/// The most socket messages handled in one turn of the driver.
const BATCH: usize = 256;

/// What woke the driver.
enum Wake {
    Call(Option<Call>),
    Socket(Option<FromSocket>),
    Room(Option<mpsc::OwnedPermit<GatewayEvent>>),
    Timer,
}

/// Bytes of a socket's inbound credit, given back when the events its frame caused have
/// reached the application.
struct Credit {
    socket: Arc<Outbox>,
    charge: usize,
}

impl Credit {
    fn give_back(self) {
        self.socket.taken(self.charge);
    }

    /// Gives back the credit an event held, if it held one.
    fn settle(credit: Option<Self>) {
        if let Some(credit) = credit {
            credit.give_back();
        }
    }
}

pub(super) struct Driver {
    gateway: Gateway,
    calls: mpsc::Receiver<Call>,
    calls_open: bool,
    sockets_rx: mpsc::UnboundedReceiver<FromSocket>,
    events: mpsc::Sender<GatewayEvent>,
    /// Events waiting for room in the application's buffer, each with the credit it holds.
    pending: VecDeque<(GatewayEvent, Option<Credit>)>,
    sockets: HashMap<ConnId, Arc<Outbox>>,
    invokes: HashMap<InvokeId, oneshot::Sender<InvokeOutcome<Answer>>>,
    stop_accepting: Option<oneshot::Sender<()>>,
    shutdown_waiters: Vec<oneshot::Sender<()>>,
}

impl Driver {
    pub(super) fn new(
        gateway: Gateway,
        calls: mpsc::Receiver<Call>,
        sockets_rx: mpsc::UnboundedReceiver<FromSocket>,
        events: mpsc::Sender<GatewayEvent>,
        stop_accepting: oneshot::Sender<()>,
    ) -> Self {
        Self {
            gateway,
            calls,
            calls_open: true,
            sockets_rx,
            events,
            pending: VecDeque::new(),
            sockets: HashMap::new(),
            invokes: HashMap::new(),
            stop_accepting: Some(stop_accepting),
            shutdown_waiters: Vec::new(),
        }
    }

    /// Runs until every handle and every socket is gone. It never waits on the
    /// application: events that do not fit its buffer wait here, holding the credit of the
    /// socket that caused them, so only that socket stops reading.
    pub(super) async fn run(mut self) {
        loop {
            let deadline = self.gateway.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            };
            let waiting = !self.pending.is_empty();
            // An owned permit, so that nothing borrowed from `self` outlives the select.
            let room = self.events.clone().reserve_owned();
            let wake = tokio::select! {
                call = self.calls.recv(), if self.calls_open => Wake::Call(call),
                message = self.sockets_rx.recv() => Wake::Socket(message),
                permit = room, if waiting => Wake::Room(permit.ok()),
                () = sleep => Wake::Timer,
            };
            match wake {
                Wake::Call(Some(call)) => {
                    self.call(call, Instant::now());
                    while let Ok(call) = self.calls.try_recv() {
                        self.call(call, Instant::now());
                    }
                }
                Wake::Call(None) => self.calls_open = false,
                Wake::Socket(Some(message)) => {
                    self.handle(message);
                    // Take more of what is waiting in one pass, but not so much that calls
                    // and timers wait behind a flood.
                    for _ in 1..BATCH {
                        let Ok(message) = self.sockets_rx.try_recv() else {
                            break;
                        };
                        self.handle(message);
                    }
                }
                Wake::Socket(None) => return,
                Wake::Room(Some(permit)) => {
                    if let Some((event, credit)) = self.pending.pop_front() {
                        permit.send(event);
                        Credit::settle(credit);
                    }
                }
                // The application dropped its receiver: nobody will take them.
                Wake::Room(None) => self.pending.drain(..).for_each(|(_, credit)| {
                    Credit::settle(credit);
                }),
                Wake::Timer => {
                    self.gateway.handle_timeout(Instant::now());
                    self.collect_events(None);
                }
            }
            self.carry_out();
            self.deliver();
            if self.sockets.is_empty() && self.stop_accepting.is_none() {
                for waiter in self.shutdown_waiters.drain(..) {
                    let _ = waiter.send(());
                }
            }
        }
    }

    fn handle(&mut self, message: FromSocket) {
        let now = Instant::now();
        match message {
            FromSocket::Accepted {
                socket,
                reply,
                loopback,
                query,
            } => {
                // The wall clock goes with each accept: OpenClaw challenges carry it.
                let unix_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()
                    .and_then(|d| u64::try_from(d.as_millis()).ok());
                let peer = tether_gateway::AcceptedPeer {
                    loopback,
                    unix_ms,
                    query,
                };
                let conn = self.gateway.accept_peer(now, peer);
                self.sockets.insert(conn, socket);
                let _ = reply.send(conn);
            }
            FromSocket::Frame {
                conn,
                frame,
                charge,
            } => {
                self.gateway.handle_frame(conn, frame, now);
                let credit = self.sockets.get(&conn).map(|socket| Credit {
                    socket: socket.clone(),
                    charge,
                });
                self.collect_events(credit);
            }
            FromSocket::CloseFrame(conn, code) => {
                self.gateway.handle_close_frame(conn, code);
            }
            FromSocket::Violation(conn, violation) => {
                self.gateway.handle_violation(conn, violation);
            }
            FromSocket::Ended(conn) => {
                self.sockets.remove(&conn);
                self.gateway.handle_close(conn, now);
            }
        }
        // Commands at once, so a close reaches its socket before the next frame is read.
        self.carry_out();
        self.collect_events(None);
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
            Call::Pairing {
                request_id,
                approve,
                reply,
            } => {
                let decided = if approve {
                    self.gateway.approve_pairing(&request_id)
                } else {
                    self.gateway.reject_pairing(&request_id)
                };
                let _ = reply.send(decided);
            }
            Call::PendingPairings { reply } => {
                let _ = reply.send(self.gateway.pending_pairings());
            }
            Call::Respond {
                conn,
                id,
                result,
                reply,
            } => {
                let result = result.as_deref().map_err(Clone::clone);
                let _ = reply.send(self.gateway.respond(conn, &id, result));
            }
            Call::Stats { reply } => {
                let _ = reply.send(self.gateway.stats());
            }
            Call::InvalidateSession {
                peer,
                resumable,
                reply,
            } => {
                let _ = reply.send(self.gateway.invalidate_session(&peer, resumable, now));
            }
            #[cfg(feature = "faults")]
            Call::GetFaults { reply } => {
                let _ = reply.send(self.gateway.faults());
            }
            #[cfg(feature = "faults")]
            Call::Drop { peer, reply } => {
                let _ = reply.send(self.gateway.drop_peer(&peer));
            }
            #[cfg(feature = "faults")]
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
                    match socket.push(frame) {
                        Ok(()) | Err(Refused::Closed) => {}
                        Err(Refused::Full) => {
                            tracing::debug!(%conn, "outbound queue full: closing a slow client");
                            self.gateway.too_slow(conn);
                        }
                        Err(Refused::OverBudget) => {
                            tracing::debug!(%conn, "memory budget spent: closing");
                            self.gateway.over_budget(conn);
                        }
                    }
                }
                GatewayCommand::Close { conn, frame } => {
                    if let Some(socket) = self.sockets.get(&conn) {
                        socket.close(Some(frame));
                    }
                }
                GatewayCommand::ReadLimit { conn, max_message } => {
                    if let Some(socket) = self.sockets.get(&conn) {
                        socket.set_read_limit(max_message);
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

    /// Moves the gateway's events into the queue for the application; the last one holds
    /// `credit` (given back at once when there is none to hold it). Invoke outcomes go to
    /// their callers instead.
    fn collect_events(&mut self, credit: Option<Credit>) {
        let before = self.pending.len();
        while let Some(event) = self.gateway.poll_event() {
            if let GatewayEvent::Invoked { id, outcome, .. } = event {
                if let Some(waiter) = self.invokes.remove(&id) {
                    let _ = waiter.send(outcome);
                }
                continue;
            }
            self.pending.push_back((event, None));
        }
        let Some(credit) = credit else {
            return;
        };
        let caused = self.pending.len() > before;
        match self.pending.back_mut() {
            Some((_, held)) if caused => *held = Some(credit),
            _ => credit.give_back(),
        }
    }

    /// Hands the application what fits in its buffer now, never waiting for room.
    fn deliver(&mut self) {
        while let Some((event, credit)) = self.pending.pop_front() {
            match self.events.try_send(event) {
                Ok(()) => {
                    Credit::settle(credit);
                }
                Err(mpsc::error::TrySendError::Full(event)) => {
                    self.pending.push_front((event, credit));
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    Credit::settle(credit);
                }
            }
        }
    }
}
