//! The gateway's driver task: it owns the sans-IO gateway, takes what the sockets and the
//! application tell it, and carries out the gateway's commands on the sockets.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use tether_core::gateway::{
    Answer, Delivered, Faults, Gateway, GatewayCommand, GatewayError, GatewayEvent, GatewayStats,
};
use tether_core::registry::{InvokeId, InvokeOutcome};
use tether_core::{ConnId, Frame};
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

pub(super) enum ToDriver {
    Accepted {
        socket: Arc<Outbox>,
        reply: oneshot::Sender<ConnId>,
    },
    Frame(ConnId, Frame),
    Ended(ConnId),
    Call(Call),
}

pub(super) struct Driver {
    gateway: Gateway,
    inbox: mpsc::Receiver<ToDriver>,
    events: mpsc::Sender<GatewayEvent>,
    sockets: HashMap<ConnId, Arc<Outbox>>,
    invokes: HashMap<InvokeId, oneshot::Sender<InvokeOutcome<Answer>>>,
    stop_accepting: Option<oneshot::Sender<()>>,
    shutdown_waiters: Vec<oneshot::Sender<()>>,
}

impl Driver {
    pub(super) fn new(
        gateway: Gateway,
        inbox: mpsc::Receiver<ToDriver>,
        events: mpsc::Sender<GatewayEvent>,
        stop_accepting: oneshot::Sender<()>,
    ) -> Self {
        Self {
            gateway,
            inbox,
            events,
            sockets: HashMap::new(),
            invokes: HashMap::new(),
            stop_accepting: Some(stop_accepting),
            shutdown_waiters: Vec::new(),
        }
    }

    pub(super) async fn run(mut self) {
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
                GatewayCommand::ReadLimit { .. } => {}
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
