//! tether's server half, sans-IO (no runtime, clock or socket, like `tether-core`): a gateway
//! that speaks the server side of the Discord, OpenClaw and plain profiles over any number
//! of sockets and keeps one session per peer in a [`Registry`], so a late close, a late frame or a late answer of a superseded socket can
//! never act on the session that replaced it (S1 to S4).
//!
//! The server feeds what happened ([`accept`](Gateway::accept),
//! [`handle_frame`](Gateway::handle_frame), [`handle_close`](Gateway::handle_close),
//! [`handle_timeout`](Gateway::handle_timeout)) and drains what to do
//! ([`poll_command`](Gateway::poll_command)) and what to tell the application
//! ([`poll_event`](Gateway::poll_event)). Every way a connection leaves goes through one
//! private `close`, named by a [`CloseWhy`].

mod auth;
mod config;
mod devices;
mod discord;
mod event;
mod faults;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod openclaw;
mod plain;
pub mod registry;
mod sessions;
mod transport;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;

pub use auth::{Answer, Authenticator, Credentials, PeerId, Rejection};
pub use config::{
    AutoApprove, GatewayConfig, GatewayConfigBuilder, IdentifyLimit, MAX_MESSAGE_LIMIT,
    MAX_REPLAY_BUDGET, ServerProfile,
};
pub use devices::{DeviceProofError, PairingRequest};

pub use event::{
    CloseWhy, Delivered, GatewayCommand, GatewayError, GatewayEvent, GatewayStats, Violation,
};
#[cfg(not(feature = "faults"))]
use faults::Faults;
#[cfg(feature = "faults")]
pub use faults::Faults;
use sessions::Sessions;
use tether_core::protocol::discord::wire as discord_wire;
use tether_core::protocol::openclaw::wire::{self, ClientFrame};

use crate::registry::{InvokeError, InvokeId, Registry, RegistryEvent};
use tether_core::{ConnId, Frame, after};

#[derive(Debug)]
enum Phase {
    Handshake { due: Instant },
    Ready { peer: PeerId },
    Closing,
}

#[derive(Debug)]
struct Conn {
    phase: Phase,
    /// OpenClaw: the challenge this connection was sent.
    challenge: Option<devices::Challenge>,
    /// Whether it came over loopback (for [`AutoApprove::Loopback`]).
    loopback: bool,
    /// OpenClaw: the role granted at connect.
    role: Option<&'static str>,
    /// OpenClaw: the last event sequence written on this connection (ticks included).
    events: u64,
    /// OpenClaw and plain: when the next tick (or ping) is due.
    tick: Option<Instant>,
    /// Heartbeats (or pings) acknowledged on this connection.
    acked: u64,
    /// The faults scheduled on it since it became ready (a cut, an op 7, an op 1).
    scheduled: Vec<(Instant, Scheduled)>,
    /// Discord: the transport compression the client asked for, this connection's own.
    compressor: Option<transport::Compressor>,
    /// The close code the client sent, if it sent one: discord's 1000 and 1001 end the
    /// session.
    closed_by: Option<u16>,
}

/// The longest a discord client waits after an invalid session before identifying again.
const INVALID_SESSION_WAIT: Duration = Duration::from_secs(5);

/// The gateway machine. See the [module documentation](self).
pub struct Gateway {
    config: GatewayConfig,
    auth: Box<dyn Authenticator>,
    registry: Registry<PeerId, Answer>,
    devices: devices::Devices,
    conns: HashMap<ConnId, Conn>,
    sessions: Sessions,
    handshakes: BTreeSet<(Instant, ConnId)>,
    ticks: BTreeSet<(Instant, ConnId)>,
    /// Faults due, by time (feature `faults` sets them; none otherwise).
    scheduled: BTreeSet<(Instant, ConnId, Scheduled)>,
    faults: Faults,
    commands: VecDeque<GatewayCommand>,
    events: VecDeque<GatewayEvent>,
    stats: GatewayStats,
    rng: fastrand::Rng,
    /// Discord: when each bot's buckets last identified, and its sessions started in the
    /// current window (only under an [`IdentifyLimit`]).
    starts: discord::Starts,
    epoch: Option<Instant>,
}

/// What the server knows of a socket it accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcceptedPeer {
    /// Its peer is on this machine (a loopback address).
    pub loopback: bool,
    /// The wall clock now, in Unix milliseconds, if the server reads one.
    pub unix_ms: Option<u64>,
    /// The query of the URL the client asked for (`v=10&encoding=json&compress=...`):
    /// discord clients choose their version, encoding and compression with it.
    pub query: Option<String>,
}

/// How far a device's `signedAt` may be from the gateway's wall clock, as the real
/// gateway allows.
pub const SIGNATURE_SKEW: Duration = Duration::from_secs(120);

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("config", &self.config)
            .field("connections", &self.conns.len())
            .field("sessions", &self.sessions.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway with `config` that lets clients in as `auth` decides. Session ids and
    /// nonces come from a generator seeded by `seed`.
    pub fn new(config: GatewayConfig, auth: impl Authenticator + 'static, seed: u64) -> Self {
        Self {
            registry: Registry::new(config.max_invokes),
            devices: devices::Devices::default(),
            sessions: Sessions::new(sessions::ReplayBudget {
                frames: config.replay_capacity,
                bytes: config.replay_bytes,
                total: config.replay_bytes_total,
            }),
            config,
            auth: Box::new(auth),
            conns: HashMap::new(),
            handshakes: BTreeSet::new(),
            ticks: BTreeSet::new(),
            scheduled: BTreeSet::new(),
            faults: Faults::default(),
            commands: VecDeque::new(),
            events: VecDeque::new(),
            stats: GatewayStats::default(),
            rng: fastrand::Rng::with_seed(seed),
            starts: discord::Starts::default(),
            epoch: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// Misbehaves as `faults` say from now on (for testing clients); `Faults::default()`
    /// behaves again.
    #[cfg(feature = "faults")]
    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
    }

    /// The faults in force.
    #[cfg(feature = "faults")]
    pub fn faults(&self) -> Faults {
        self.faults
    }

    /// A socket was accepted: its generation, never reused. The greeting (hello, or the
    /// OpenClaw challenge) is queued, and the handshake must complete within its timeout.
    pub fn accept(&mut self, now: Instant) -> ConnId {
        self.accept_from(now, AcceptedPeer::default())
    }

    /// [`accept`](Self::accept) for a socket whose peer is on this machine (a loopback
    /// address): its new devices pair at once under [`AutoApprove::Loopback`].
    pub fn accept_loopback(&mut self, now: Instant) -> ConnId {
        let peer = AcceptedPeer {
            loopback: true,
            ..AcceptedPeer::default()
        };
        self.accept_from(now, peer)
    }

    /// [`accept`](Self::accept) with what the server knows of the socket: whether its peer
    /// is on this machine, and the wall clock. With the wall clock, OpenClaw challenges
    /// carry Unix milliseconds, as the real gateway's do, and a device's `signedAt` may be
    /// its own clock's within [`SIGNATURE_SKEW`] of it (some clients sign with theirs);
    /// without, they carry the gateway's own milliseconds and must be echoed exactly.
    pub fn accept_peer(&mut self, now: Instant, peer: AcceptedPeer) -> ConnId {
        self.accept_from(now, peer)
    }

    fn accept_from(&mut self, now: Instant, peer: AcceptedPeer) -> ConnId {
        let loopback = peer.loopback;
        let conn = self.registry.accept();
        let due = after(now, self.config.handshake_timeout);
        self.handshakes.insert((due, conn));
        self.commands.push_back(GatewayCommand::ReadLimit {
            conn,
            max_message: self.config.max_message_before_ready,
        });
        let mut challenge = None;
        let mut compressor = None;
        let mut refused = None;
        match self.config.profile {
            ServerProfile::Discord => match transport::read_query(peer.query.as_deref()) {
                Ok(compression) => {
                    compressor = compression.map(transport::Compressor::new);
                    match compressor {
                        Some(None) => refused = Some(CloseWhy::UnsupportedCompression),
                        Some(Some(_)) => self.stats.compressed += 1,
                        None => {}
                    }
                }
                Err(why) => refused = Some(why),
            },
            _ if self.faults.stall_hello => {}
            ServerProfile::OpenClaw => {
                // Unpredictable, so that no connect can be signed before its socket opens.
                let nonce = devices::random_secret()
                    .unwrap_or_else(|| format!("{:032x}", self.rng.u128(..)));
                let (ts, wall) = match peer.unix_ms {
                    Some(unix_ms) => (unix_ms, true),
                    None => (self.clock_ms(now), false),
                };
                self.write(conn, wire::challenge(&nonce, ts));
                challenge = Some(devices::Challenge { nonce, ts, wall });
            }
            ServerProfile::Plain => {}
        }
        self.conns.insert(
            conn,
            Conn {
                phase: Phase::Handshake { due },
                challenge,
                loopback,
                role: None,
                events: 0,
                tick: None,
                acked: 0,
                scheduled: Vec::new(),
                compressor: compressor.flatten(),
                closed_by: None,
            },
        );
        if let Some(why) = refused {
            // Before any hello: a client that asked for what is not served learns it first.
            self.close(conn, why);
            return conn;
        }
        if self.config.profile == ServerProfile::Discord && !self.faults.stall_hello {
            self.write(conn, discord_wire::hello(self.config.heartbeat_interval));
        }
        if self.config.profile == ServerProfile::Plain {
            self.plain_accepted(conn, now);
        }
        conn
    }

    /// A frame arrived on `conn`.
    pub fn handle_frame(&mut self, conn: ConnId, frame: Frame, now: Instant) {
        let Some(state) = self.conns.get(&conn) else {
            self.stats.stale_frames += 1;
            return;
        };
        let (ready, limit) = match &state.phase {
            Phase::Handshake { .. } => (None, self.config.max_message_before_ready),
            Phase::Ready { peer } => (Some(peer.clone()), self.config.max_message),
            Phase::Closing => {
                // An answer to an invoke that this very connection carried still counts.
                self.closing_frame(conn, frame);
                return;
            }
        };
        if frame.len() > limit {
            self.handle_violation(conn, Violation::TooBig);
            return;
        }
        if self.config.profile == ServerProfile::Plain {
            self.plain_frame(conn, ready, frame, now);
            self.drain_registry();
            return;
        }
        let text = match frame {
            Frame::Text(text) => text,
            Frame::Binary(_) => {
                self.bad_frame(conn, "binary frame: this protocol is JSON text".into());
                return;
            }
            // A pong answers the gateway's liveness ping (OpenClaw): it shows the client
            // alive, as any frame does.
            Frame::Pong(_) => {
                if ready.is_some() {
                    self.registry.beat(conn, now);
                }
                return;
            }
            Frame::Ping(_) => return,
        };
        match self.config.profile {
            ServerProfile::Discord => self.discord_frame(conn, ready, text, now),
            ServerProfile::OpenClaw => self.openclaw_frame(conn, ready, text, now),
            ServerProfile::Plain => {}
        }
        self.drain_registry();
    }

    /// `conn`'s socket ended, however it ended. Its invokes fail as disconnected; its
    /// peer goes disconnected only if `conn` still owned the session (S2, S4); a discord
    /// session stays resumable for the resume window.
    pub fn handle_close(&mut self, conn: ConnId, now: Instant) {
        let closed_by = self.conns.remove(&conn).and_then(|state| {
            self.forget_timers(conn, &state);
            state.closed_by
        });
        if let Some(peer) = self.registry.close(conn) {
            if self.config.profile == ServerProfile::Discord {
                // As Discord: a client that closes with 1000 or 1001 is done with its
                // session; any other end leaves it resumable for the window.
                if matches!(closed_by, Some(1000 | 1001)) {
                    self.sessions.end(&peer, conn);
                } else {
                    let expires = after(now, self.config.resume_window);
                    self.sessions.detach(&peer, conn, expires);
                }
            }
        }
        self.drain_registry();
    }

    /// The client sent a close frame with `code` (`None`: a close frame without one) on
    /// `conn`; its socket's end follows with [`handle_close`](Self::handle_close), judged by
    /// it: a discord client's 1000 or 1001 ends its session.
    pub fn handle_close_frame(&mut self, conn: ConnId, code: Option<u16>) {
        if let Some(state) = self.conns.get_mut(&conn) {
            state.closed_by = code;
        }
    }

    /// Handles every deadline passed by `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.registry.handle_timeout(now);
        self.drain_registry();
        while let Some(&(at, conn)) = self.handshakes.first() {
            if at > now {
                break;
            }
            self.handshakes.remove(&(at, conn));
            self.stats.handshake_timeouts += 1;
            self.close(conn, CloseWhy::HandshakeTimeout);
        }
        while let Some(&(at, conn)) = self.ticks.first() {
            if at > now {
                break;
            }
            self.ticks.remove(&(at, conn));
            let next = after(now, self.config.heartbeat_interval);
            let ts = self.clock_ms(now);
            if let Some(state) = self.conns.get_mut(&conn) {
                state.tick = Some(next);
                self.ticks.insert((next, conn));
                let tick = match self.config.profile {
                    ServerProfile::Plain => Frame::Ping(bytes::Bytes::new()),
                    _ => {
                        state.events += 1;
                        wire::tick(state.events, ts)
                    }
                };
                self.write(conn, tick);
                if self.config.profile == ServerProfile::OpenClaw {
                    // Liveness is the client's pong (any frame will do) within the pong
                    // window, as the real gateway judges it.
                    self.write(conn, Frame::Ping(bytes::Bytes::new()));
                }
            }
        }
        while let Some(&(at, conn, what)) = self.scheduled.first() {
            if at > now {
                break;
            }
            self.scheduled.remove(&(at, conn, what));
            if let Some(state) = self.conns.get_mut(&conn) {
                state.scheduled.retain(|&(a, w)| (a, w) != (at, what));
            }
            match what {
                Scheduled::Drop => self.close(conn, CloseWhy::Dropped),
                Scheduled::Reconnect => self.write(conn, discord_wire::reconnect()),
                Scheduled::HeartbeatRequest => {
                    self.write(conn, discord_wire::heartbeat_request());
                }
            }
        }
        self.stats.expired_sessions += self.sessions.expire(now) as u64;
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.registry.poll_timeout(),
            self.handshakes.first().map(|&(at, _)| at),
            self.ticks.first().map(|&(at, _)| at),
            self.scheduled.first().map(|&(at, _, _)| at),
            self.sessions.next_expiry(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next thing to do on a socket.
    pub fn poll_command(&mut self) -> Option<GatewayCommand> {
        self.commands.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<GatewayEvent> {
        self.events.pop_front()
    }

    /// Writes `frame` to `peer`'s current connection.
    pub fn send(&mut self, peer: &str, frame: Frame) -> Result<ConnId, GatewayError> {
        let conn = self.ready_conn(peer).ok_or(GatewayError::NotConnected)?;
        self.write(conn, frame);
        Ok(conn)
    }

    /// Cuts `peer`'s connection with no close frame, as a network would (a fault on
    /// demand); its session stays resumable.
    #[cfg(feature = "faults")]
    pub fn drop_peer(&mut self, peer: &str) -> Result<ConnId, GatewayError> {
        let conn = self.ready_conn(peer).ok_or(GatewayError::NotConnected)?;
        self.close(conn, CloseWhy::Dropped);
        Ok(conn)
    }

    /// Sends `peer` an event `name` with `data`: a numbered dispatch kept for replay
    /// (discord), so one sent while the session waits to be resumed is delivered on resume;
    /// an OpenClaw `event` otherwise.
    pub fn dispatch(
        &mut self,
        peer: &str,
        name: &str,
        data: &RawValue,
    ) -> Result<Delivered, GatewayError> {
        match self.config.profile {
            ServerProfile::Discord => {
                let pushed = self
                    .sessions
                    .push(peer, name, data.get())
                    .ok_or(GatewayError::NotConnected)?;
                let conn = pushed.conn.filter(|c| self.is_ready(*c));
                if let Some(conn) = conn {
                    self.write(conn, pushed.frame);
                }
                Ok(Delivered {
                    seq: pushed.seq,
                    conn,
                })
            }
            ServerProfile::Plain => {
                let conn = self.ready_conn(peer).ok_or(GatewayError::NotConnected)?;
                self.write(conn, Frame::text(data.get().to_owned()));
                Ok(Delivered {
                    seq: 0,
                    conn: Some(conn),
                })
            }
            ServerProfile::OpenClaw => {
                let conn = self.ready_conn(peer).ok_or(GatewayError::NotConnected)?;
                let seq = self.next_seq(conn);
                self.write(conn, wire::event(seq, name, data.get()));
                Ok(Delivered {
                    seq,
                    conn: Some(conn),
                })
            }
        }
    }

    /// Approves a waiting OpenClaw pairing request: the device is paired for its role, with
    /// a device token it gets at its next connect.
    pub fn approve_pairing(&mut self, request_id: &str) -> Result<PairingRequest, GatewayError> {
        let request = self
            .devices
            .approve(request_id)
            .ok_or(GatewayError::UnknownPairing)?;
        self.events.push_back(GatewayEvent::Paired(request.clone()));
        Ok(request)
    }

    /// Rejects a waiting OpenClaw pairing request; the device's next connect asks again.
    pub fn reject_pairing(&mut self, request_id: &str) -> Result<PairingRequest, GatewayError> {
        self.devices
            .reject(request_id)
            .ok_or(GatewayError::UnknownPairing)
    }

    /// The OpenClaw pairing requests waiting for approval.
    pub fn pending_pairings(&self) -> Vec<PairingRequest> {
        self.devices.pending().cloned().collect()
    }

    /// Answers an OpenClaw [`GatewayEvent::Request`] on the connection it came on: its
    /// payload (raw JSON) or an error. Refused when that connection is no longer ready.
    pub fn respond(
        &mut self,
        conn: ConnId,
        id: &str,
        result: Result<&RawValue, tether_core::RemoteError>,
    ) -> Result<(), GatewayError> {
        if !self.is_ready(conn) {
            return Err(GatewayError::NotConnected);
        }
        let frame = match result {
            Ok(payload) => wire::res_ok(id, payload.get()),
            Err(e) => wire::res_error(id, &e.code, &e.message),
        };
        self.write(conn, frame);
        Ok(())
    }

    /// Asks `peer` to run `method` (an OpenClaw `node.invoke.request`). Bound to the peer's current connection: only an
    /// answer on that connection completes it; it ends exactly once, with the answer,
    /// disconnected or timed out, in a [`GatewayEvent::Invoked`].
    pub fn invoke(
        &mut self,
        peer: &str,
        method: &str,
        params: &RawValue,
        timeout: Duration,
        now: Instant,
    ) -> Result<InvokeId, GatewayError> {
        match self.config.profile {
            ServerProfile::Discord => return Err(GatewayError::Unsupported("discord")),
            ServerProfile::Plain => return Err(GatewayError::Unsupported("plain")),
            ServerProfile::OpenClaw => {}
        }
        if timeout > tether_core::MAX_DELAY {
            return Err(GatewayError::TimeoutTooLong);
        }
        if self.ready_conn(peer).is_none() {
            return Err(GatewayError::NotConnected);
        }
        let (id, conn) = self
            .registry
            .invoke(peer, timeout, now)
            .map_err(|e| match e {
                InvokeError::NotConnected => GatewayError::NotConnected,
                InvokeError::TooMany => GatewayError::TooManyInvokes,
            })?;
        let seq = self.next_seq(conn);
        let frame = wire::invoke_request(seq, id.get(), peer, method, params.get(), timeout);
        self.write(conn, frame);
        Ok(id)
    }

    /// The server's WebSocket layer found `conn` breaking the protocol (RFC 6455): it is
    /// closed with the code the RFC names for it, counted and reported.
    pub fn handle_violation(&mut self, conn: ConnId, violation: Violation) {
        if !self.conns.contains_key(&conn) {
            return;
        }
        match violation {
            Violation::TooBig => self.stats.too_big += 1,
            Violation::Protocol | Violation::InvalidUtf8 => self.stats.protocol_violations += 1,
        }
        self.events.push_back(GatewayEvent::BadFrame {
            conn,
            reason: violation.to_string(),
        });
        self.close(conn, CloseWhy::Violation(violation));
    }

    /// Holding what `conn` is owed would take the server past its memory budget: it is
    /// closed (1013, try again later) rather than let memory grow.
    pub fn over_budget(&mut self, conn: ConnId) {
        if self.conns.contains_key(&conn) {
            self.stats.over_budget += 1;
        }
        self.close(conn, CloseWhy::OverBudget);
    }

    /// `conn`'s outbound queue is full: the server closes it rather than grow memory.
    pub fn too_slow(&mut self, conn: ConnId) {
        if self.conns.contains_key(&conn) {
            self.stats.too_slow += 1;
        }
        self.close(conn, CloseWhy::TooSlow);
    }

    /// Closes every connection with a going-away frame (a restart, say). Discord sessions
    /// stay resumable for their window.
    pub fn shutdown(&mut self) {
        let mut conns: Vec<ConnId> = self.conns.keys().copied().collect();
        conns.sort_unstable();
        for conn in conns {
            self.close(conn, CloseWhy::Shutdown);
        }
    }

    /// The connection that owns `peer`'s session.
    pub fn owner(&self, peer: &str) -> Option<ConnId> {
        self.registry.owner(peer)
    }

    /// Sockets the gateway knows, from accept until [`handle_close`](Self::handle_close).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Discord sessions held, attached or waiting to be resumed.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Invokes waiting for an outcome.
    pub fn pending_invokes(&self) -> usize {
        self.registry.pending_invokes()
    }

    /// The counters.
    pub fn stats(&self) -> GatewayStats {
        let (replay_bytes, replay_bytes_peak) = self.sessions.replay_bytes();
        GatewayStats {
            registry: self.registry.stats(),
            replay_bytes: replay_bytes as u64,
            replay_bytes_peak: replay_bytes_peak as u64,
            pending_invokes: self.registry.pending_invokes() as u64,
            ..self.stats
        }
    }

    /// The one way out of a connection: the close frame for `why`, and nothing more on it.
    fn close(&mut self, conn: ConnId, why: CloseWhy) {
        let frame = why.frame(self.config.profile);
        self.close_with(conn, why, frame);
    }

    /// [`close`](Self::close) with a close frame of its own (a refusal that names its cause,
    /// as the real OpenClaw gateway's do).
    fn close_with(&mut self, conn: ConnId, why: CloseWhy, frame: tether_core::CloseFrame) {
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        let left = std::mem::replace(&mut state.phase, Phase::Closing);
        let tick = state.tick.take();
        for (at, what) in std::mem::take(&mut state.scheduled) {
            self.scheduled.remove(&(at, conn, what));
        }
        let peer = match left {
            Phase::Closing => return,
            Phase::Handshake { due } => {
                self.handshakes.remove(&(due, conn));
                None
            }
            Phase::Ready { peer } => Some(peer),
        };
        if let Some(at) = tick {
            self.ticks.remove(&(at, conn));
        }
        if why == CloseWhy::Unresponsive {
            self.stats.unresponsive += 1;
        }
        self.commands.push_back(match why {
            CloseWhy::Dropped => GatewayCommand::Abort { conn },
            _ => GatewayCommand::Close { conn, frame },
        });
        self.events
            .push_back(GatewayEvent::Closing { conn, peer, why });
    }

    /// `conn` completed its handshake as `peer`: it takes the session over (S1).
    fn ready(&mut self, conn: ConnId, peer: PeerId, now: Instant) {
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        if let Phase::Handshake { due } = state.phase {
            self.handshakes.remove(&(due, conn));
        }
        state.phase = Phase::Ready { peer: peer.clone() };
        let discord = self.config.profile == ServerProfile::Discord;
        let due = [
            (self.faults.drop_after, Scheduled::Drop),
            (
                self.faults.reconnect_after.filter(|_| discord),
                Scheduled::Reconnect,
            ),
            (
                self.faults.heartbeat_request_after.filter(|_| discord),
                Scheduled::HeartbeatRequest,
            ),
        ];
        for (delay, what) in due {
            if let Some(delay) = delay {
                let at = after(now, delay);
                state.scheduled.push((at, what));
                self.scheduled.insert((at, conn, what));
            }
        }
        if matches!(
            self.config.profile,
            ServerProfile::OpenClaw | ServerProfile::Plain
        ) {
            let next = after(now, self.config.heartbeat_interval);
            state.tick = Some(next);
            self.ticks.insert((next, conn));
        }
        self.stats.ready += 1;
        self.commands.push_back(GatewayCommand::ReadLimit {
            conn,
            max_message: self.config.max_message,
        });
        let old = self.registry.register(conn, peer);
        // The presence change is told before the close it causes.
        self.drain_registry();
        if let Some(old) = old {
            self.close(old, CloseWhy::Replaced);
        }
        self.registry.watch(conn, self.config.liveness_bound(), now);
    }

    fn closing_frame(&mut self, conn: ConnId, frame: Frame) {
        let answered = match (&frame, self.config.profile) {
            (Frame::Text(text), ServerProfile::OpenClaw) => {
                match wire::read_client(text.as_str()) {
                    Ok(ClientFrame::InvokeResult { invoke, answer, .. }) => {
                        self.answer(conn, invoke, answer, text);
                        true
                    }
                    _ => false,
                }
            }
            _ => false,
        };
        if !answered {
            self.stats.stale_frames += 1;
        }
        self.drain_registry();
    }

    /// Asks the authenticator who `credentials` belong to; a token longer than the
    /// configured bound is refused before it is looked at.
    fn authenticate(&mut self, credentials: &Credentials<'_>) -> Result<PeerId, Rejection> {
        if credentials
            .token
            .is_some_and(|token| token.len() > self.config.max_token)
        {
            self.stats.oversized_tokens += 1;
            return Err(Rejection::new("token too long"));
        }
        self.auth.authenticate(credentials)
    }

    fn rejected(&mut self, conn: ConnId) {
        self.stats.rejected += 1;
        self.close(conn, CloseWhy::Rejected);
    }

    /// The OpenClaw role `conn` was granted, once connected.
    fn role_of(&self, conn: ConnId) -> Option<&'static str> {
        self.conns.get(&conn).and_then(|c| c.role)
    }

    /// The next event sequence on `conn`: ticks and events share it, per connection.
    fn next_seq(&mut self, conn: ConnId) -> u64 {
        self.conns.get_mut(&conn).map_or(0, |state| {
            state.events += 1;
            state.events
        })
    }

    /// Milliseconds on the gateway's own clock, from its first accept: the `ts` of
    /// challenges and ticks.
    fn clock_ms(&mut self, now: Instant) -> u64 {
        let epoch = *self.epoch.get_or_insert(now);
        u64::try_from(now.saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX)
    }

    fn bad_frame(&mut self, conn: ConnId, reason: tether_core::protocol::Malformed) {
        self.stats.bad_frames += 1;
        self.events.push_back(GatewayEvent::BadFrame {
            conn,
            reason: reason.reason().to_owned(),
        });
        self.close(conn, CloseWhy::Malformed);
    }

    fn drain_registry(&mut self) {
        while let Some(event) = self.registry.poll_event() {
            match event {
                RegistryEvent::Presence {
                    peer,
                    conn,
                    presence,
                } => self.events.push_back(GatewayEvent::Presence {
                    peer,
                    conn,
                    presence,
                }),
                RegistryEvent::Invoked { id, peer, outcome } => {
                    self.events
                        .push_back(GatewayEvent::Invoked { id, peer, outcome });
                }
                RegistryEvent::Unresponsive { conn } => self.close(conn, CloseWhy::Unresponsive),
            }
        }
    }

    /// Moves `conn`'s handshake deadline to a handshake timeout after `from`.
    /// A ready connection whose session was invalidated waits for a new handshake. It
    /// keeps its place in the registry: a resume or identify on it owns the same key, with
    /// no presence change; its end before that is the end of the peer's presence.
    fn back_to_handshake(&mut self, conn: ConnId, now: Instant) {
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        if !matches!(state.phase, Phase::Ready { .. }) {
            return;
        }
        let due = after(
            after(now, INVALID_SESSION_WAIT),
            self.config.handshake_timeout,
        );
        state.phase = Phase::Handshake { due };
        self.handshakes.insert((due, conn));
    }

    fn restart_handshake_clock(&mut self, conn: ConnId, from: Instant) {
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        if let Phase::Handshake { due } = &mut state.phase {
            self.handshakes.remove(&(*due, conn));
            *due = after(from, self.config.handshake_timeout);
            self.handshakes.insert((*due, conn));
        }
    }

    /// Counts a heartbeat acknowledged, unless [`Faults::ack_heartbeats`] says no more.
    fn ack_allowed(&mut self, conn: ConnId) -> bool {
        let limit = self.faults.ack_heartbeats;
        let Some(state) = self.conns.get_mut(&conn) else {
            return false;
        };
        if limit.is_some_and(|limit| state.acked >= limit) {
            return false;
        }
        state.acked += 1;
        true
    }

    /// Writes `frame` on `conn`, through the connection's compression if it asked for one.
    fn write(&mut self, conn: ConnId, frame: Frame) {
        let frame = match self
            .conns
            .get_mut(&conn)
            .and_then(|c| c.compressor.as_mut())
        {
            Some(compressor) => match compressor.compress(frame) {
                Ok(frame) => frame,
                Err(transport::CompressFailed) => {
                    // Its stream is out of step with the client's: nothing more can be read.
                    self.close(conn, CloseWhy::UnsupportedCompression);
                    return;
                }
            },
            None => frame,
        };
        self.commands
            .push_back(GatewayCommand::Send { conn, frame });
    }

    fn ready_conn(&self, peer: &str) -> Option<ConnId> {
        self.owner(peer).filter(|&conn| self.is_ready(conn))
    }

    fn is_ready(&self, conn: ConnId) -> bool {
        matches!(
            self.conns.get(&conn).map(|c| &c.phase),
            Some(Phase::Ready { .. })
        )
    }

    fn forget_timers(&mut self, conn: ConnId, state: &Conn) {
        if let Phase::Handshake { due } = state.phase {
            self.handshakes.remove(&(due, conn));
        }
        if let Some(at) = state.tick {
            self.ticks.remove(&(at, conn));
        }
        for &(at, what) in &state.scheduled {
            self.scheduled.remove(&(at, conn, what));
        }
    }
}

/// A fault scheduled on a ready connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Scheduled {
    /// Cut with no close frame.
    Drop,
    /// Discord op 7: reconnect and resume.
    Reconnect,
    /// Discord op 1: beat now.
    HeartbeatRequest,
}
