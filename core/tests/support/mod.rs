//! The in-memory driver that plays the adapter in core tests: a virtual clock, scheduled
//! socket inputs, and the invariant checker run after every step.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

pub mod hello_profile;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tether_core::invariants::{Call, ClientChecker};
use tether_core::{
    CallError, Client, CloseCause, CloseFrame, Command, Config, ConfigBuilder, ConnId, Endpoint,
    Event, Frame, Input, OpenError, OpenErrorKind, Plain, Protocol, ReconnectMode, SendError,
    SendId,
};

/// One thing the machine produced, in the order it was polled.
#[derive(Debug, Clone, PartialEq)]
pub enum Out<M, R = std::convert::Infallible> {
    Cmd(Command),
    Ev(Event<M, R>),
}

/// How the simulated adapter answers the machine's commands. `None` everywhere means the
/// test feeds every input by hand.
#[derive(Debug, Clone, Default)]
pub struct Net {
    /// Answer each `Open` with `Opened` after this latency.
    pub open_after: Option<Duration>,
    /// Answer each `Close` with the peer's echo after this latency (a peer that completes
    /// the close handshake).
    pub close_echo_after: Option<Duration>,
    /// Report `Closed(Aborted)` (or `OpenFailed(Aborted)`) this long after each `Abort`.
    pub abort_confirm_after: Option<Duration>,
}

/// The virtual clock's epoch. Only differences from it matter; this is the one place a
/// core test reads the real clock.
#[allow(clippy::disallowed_methods)]
pub fn epoch() -> Instant {
    Instant::now()
}

/// Settings with round numbers and no jitter, so scenarios can name exact times.
pub fn test_config() -> ConfigBuilder {
    Config::builder()
        .seed(1)
        .connect_timeout(Duration::from_secs(5))
        .hello_timeout(Duration::from_secs(5))
        .ready_timeout(Duration::from_secs(5))
        .drain_timeout(Duration::from_secs(2))
        .abort_grace(Duration::from_millis(500))
        .backoff_initial(Duration::from_secs(1))
        .backoff_max(Duration::from_secs(30))
        .backoff_multiplier(2.0)
        .backoff_jitter(0.0)
        .stable_after(Duration::from_secs(10))
        .first_retry_window(Duration::ZERO)
}

/// A plain profile beating every 10 s.
pub fn plain_beating() -> Plain {
    Plain::builder()
        .heartbeat_interval(Some(Duration::from_secs(10)))
        .build()
        .unwrap()
}

/// A plain profile with no heartbeat, for scenarios about other things.
pub fn plain_quiet() -> Plain {
    Plain::builder().heartbeat_interval(None).build().unwrap()
}

pub struct Sim<P: Protocol> {
    pub client: Client<P>,
    pub t0: Instant,
    pub now: Instant,
    pub net: Net,
    /// Every call of the peer's the machine surfaced, in order.
    pub calls: Vec<tether_core::CallId>,
    checker: ClientChecker,
    log: Vec<Out<P::Message, P::Response>>,
    scheduled: BTreeMap<(Instant, u64), Input>,
    seq: u64,
    open_sockets: Vec<ConnId>,
}

impl Sim<Plain> {
    /// A plain client with the test settings and no heartbeat.
    pub fn plain() -> Self {
        Self::new(test_config().build().unwrap(), plain_quiet())
    }

    /// A plain client (no heartbeat) ready on conn 1; output taken.
    pub fn ready_plain() -> Self {
        let mut sim = Self::plain();
        sim.connect().unwrap();
        sim.opened(1);
        sim.take();
        sim
    }

    /// A plain client with the test settings, beating every 10 s.
    pub fn beating() -> Self {
        Self::new(test_config().build().unwrap(), plain_beating())
    }
}

impl Sim<hello_profile::HelloProfile> {
    /// A client speaking the test hello protocol, with the test settings.
    pub fn hello() -> Self {
        Self::new(
            test_config().build().unwrap(),
            hello_profile::HelloProfile::default(),
        )
    }

    /// A hello-protocol client, ready on conn 1 with a session to resume; output taken.
    pub fn ready_hello() -> Self {
        let mut sim = Self::hello();
        sim.connect().unwrap();
        sim.opened(1);
        sim.text(1, "hello");
        sim.text(1, "ready");
        sim.take();
        sim
    }
}

impl<P: Protocol> Sim<P>
where
    P::Message: std::fmt::Debug + Clone,
    P::Response: std::fmt::Debug + Clone,
{
    pub fn new(config: Config, profile: P) -> Self {
        let t0 = epoch();
        Self {
            checker: ClientChecker::new(&config),
            client: Client::new(config, profile),
            t0,
            now: t0,
            net: Net::default(),
            calls: Vec::new(),
            log: Vec::new(),
            scheduled: BTreeMap::new(),
            seq: 0,
            open_sockets: Vec::new(),
        }
    }

    /// The instant `ms` milliseconds after the epoch.
    pub fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    /// Milliseconds since the epoch.
    pub fn elapsed_ms(&self) -> u128 {
        (self.now - self.t0).as_millis()
    }

    // ---- user calls

    pub fn connect(&mut self) -> Result<(), CallError> {
        self.checker.call(Call::Other);
        let r = self.client.connect(self.now);
        self.drain();
        r
    }

    pub fn reconnect(&mut self, mode: ReconnectMode) -> Result<(), CallError> {
        self.checker.call(Call::Other);
        let r = self.client.reconnect(mode, self.now);
        self.drain();
        r
    }

    pub fn shutdown(&mut self) {
        self.checker.call(Call::Shutdown);
        self.client.shutdown(self.now);
        self.drain();
    }

    pub fn send(&mut self, frame: Frame) -> Result<SendId, SendError> {
        self.checker.call(Call::Other);
        let r = self.client.send(frame, self.now);
        self.drain();
        r
    }

    pub fn send_with(
        &mut self,
        frame: Frame,
        options: tether_core::SendOptions,
    ) -> Result<SendId, SendError> {
        self.checker.call(Call::Other);
        let r = self.client.send_with(frame, options, self.now);
        self.drain();
        r
    }

    pub fn send_with_ttl(&mut self, frame: Frame, ttl: Duration) -> Result<SendId, SendError> {
        self.checker.call(Call::Other);
        let r = self.client.send_with_ttl(frame, ttl, self.now);
        self.drain();
        r
    }

    pub fn request(
        &mut self,
        request: P::Request,
        timeout: Duration,
    ) -> Result<tether_core::RequestId, tether_core::RequestError> {
        self.checker.call(Call::Other);
        let r = self.client.request(request, timeout, self.now);
        if let Ok(id) = r {
            self.checker.request_made(id).unwrap();
        }
        self.drain();
        r
    }

    pub fn answer(
        &mut self,
        id: tether_core::CallId,
        answer: P::Answer,
    ) -> Result<(), tether_core::AnswerError> {
        self.checker.call(Call::Other);
        let r = self.client.answer(id, answer, self.now);
        self.drain();
        r
    }

    pub fn grant_start(&mut self, conn: u64) {
        self.input(Input::StartGranted {
            conn: ConnId::new(conn),
        });
    }

    /// The newest generation the machine asked for.
    pub fn newest_conn(&self) -> u64 {
        self.client.stats().opens
    }

    pub fn probe(&mut self) -> Result<(), CallError> {
        self.checker.call(Call::Other);
        let r = self.client.probe(self.now);
        self.drain();
        r
    }

    // ---- socket inputs, fed now

    pub fn input(&mut self, input: Input) {
        self.input_stamped(input, self.now);
    }

    /// Feeds `input` stamped `at`, which may lie in the past (a clock that went back).
    pub fn input_stamped(&mut self, input: Input, at: Instant) {
        self.checker.input(&input);
        match &input {
            Input::Opened { conn } => self.open_sockets.push(*conn),
            Input::Closed { conn, .. } => self.open_sockets.retain(|c| c != conn),
            _ => {}
        }
        self.client.handle_input(input, at);
        self.drain();
    }

    pub fn opened(&mut self, conn: u64) {
        self.input(Input::Opened {
            conn: ConnId::new(conn),
        });
    }

    pub fn open_failed(&mut self, conn: u64, error: OpenError) {
        self.input(Input::OpenFailed {
            conn: ConnId::new(conn),
            error,
        });
    }

    pub fn frame(&mut self, conn: u64, frame: Frame) {
        self.input(Input::Frame {
            conn: ConnId::new(conn),
            frame,
        });
    }

    pub fn text(&mut self, conn: u64, text: &'static str) {
        self.frame(conn, Frame::text(text));
    }

    pub fn closed(&mut self, conn: u64, cause: CloseCause) {
        self.input(Input::Closed {
            conn: ConnId::new(conn),
            cause,
        });
    }

    /// The peer closes `conn` with `code`.
    pub fn peer_closes(&mut self, conn: u64, code: u16) {
        self.closed(conn, CloseCause::Frame(CloseFrame::new(code, "")));
    }

    /// Moves the clock to the next deadline and handles it.
    pub fn next_deadline(&mut self) {
        let at = self.client.poll_timeout().expect("a deadline is pending");
        self.elapse(at - self.now);
    }

    /// Schedules `input` to arrive `after` from now.
    pub fn schedule(&mut self, after: Duration, input: Input) {
        self.seq += 1;
        self.scheduled.insert((self.now + after, self.seq), input);
    }

    // ---- time

    /// Moves the clock forward by `d`, delivering scheduled inputs and handling every
    /// deadline at its exact instant, in time order (inputs first on a tie).
    pub fn elapse(&mut self, d: Duration) {
        let target = self.now + d;
        loop {
            let next_input = self.scheduled.keys().next().map(|&(at, _)| at);
            let next_timer = self.client.poll_timeout();
            let next = match (next_input, next_timer) {
                (Some(i), Some(t)) => i.min(t),
                (Some(i), None) => i,
                (None, Some(t)) => t,
                (None, None) => break,
            };
            if next > target {
                break;
            }
            self.now = self.now.max(next);
            if next_input == Some(next) {
                let key = *self.scheduled.keys().next().unwrap();
                let input = self.scheduled.remove(&key).unwrap();
                self.input(input);
            } else {
                self.timeout();
            }
        }
        self.now = target;
    }

    pub fn elapse_ms(&mut self, ms: u64) {
        self.elapse(Duration::from_millis(ms));
    }

    /// The process was starved or suspended for `d`: the clock jumps, and only then is the
    /// machine driven, once.
    pub fn jump(&mut self, d: Duration) {
        self.now += d;
        self.timeout();
    }

    /// Calls `handle_timeout(now)` and checks I7.
    pub fn timeout(&mut self) {
        self.checker.call(Call::Other);
        self.client.handle_timeout(self.now);
        self.drain();
        self.checker
            .after_timeout(self.now, self.client.poll_timeout())
            .unwrap();
    }

    // ---- what came out

    /// Everything since the last take, without `Transition` events.
    pub fn take(&mut self) -> Vec<Out<P::Message, P::Response>> {
        std::mem::take(&mut self.log)
            .into_iter()
            .filter(|o| !matches!(o, Out::Ev(Event::Transition(_))))
            .collect()
    }

    /// Everything since the last take, `Transition` events included.
    pub fn take_all(&mut self) -> Vec<Out<P::Message, P::Response>> {
        std::mem::take(&mut self.log)
    }

    /// Asserts nothing came out since the last take.
    pub fn assert_quiet(&mut self) {
        let out = self.take();
        assert!(out.is_empty(), "expected nothing, got {out:#?}");
    }

    fn drain(&mut self) {
        let (commands, events) = self
            .checker
            .drain(&mut self.client)
            .unwrap_or_else(|v| panic!("{v}"));
        for command in &commands {
            self.play_adapter(command);
        }
        for event in &events {
            if let Event::Call { id, .. } = event {
                self.calls.push(*id);
            }
        }
        self.log.extend(commands.into_iter().map(Out::Cmd));
        self.log.extend(events.into_iter().map(Out::Ev));
    }

    /// Answers commands as a well-behaved adapter would, where the test asked for it.
    fn play_adapter(&mut self, command: &Command) {
        match *command {
            Command::Open { conn, .. } => {
                if let Some(after) = self.net.open_after {
                    self.schedule(after, Input::Opened { conn });
                }
            }
            Command::Close { conn, ref frame } => {
                if let Some(after) = self.net.close_echo_after {
                    let cause = CloseCause::Frame(frame.clone());
                    self.schedule(after, Input::Closed { conn, cause });
                }
            }
            Command::Abort { conn } => {
                if let Some(after) = self.net.abort_confirm_after {
                    let input = if self.open_sockets.contains(&conn) {
                        Input::Closed {
                            conn,
                            cause: CloseCause::Aborted,
                        }
                    } else {
                        Input::OpenFailed {
                            conn,
                            error: OpenError::new(OpenErrorKind::Aborted, ""),
                        }
                    };
                    self.schedule(after, input);
                }
            }
            Command::Send { .. } | Command::RequestStart { .. } => {}
        }
    }
}

// ---- expected outputs, short

pub fn c(n: u64) -> ConnId {
    ConnId::new(n)
}

pub fn open<M, R>(n: u64) -> Out<M, R> {
    Out::Cmd(Command::Open {
        conn: c(n),
        endpoint: Endpoint::Primary,
    })
}

pub fn send<M, R>(n: u64, frame: Frame) -> Out<M, R> {
    Out::Cmd(Command::Send { conn: c(n), frame })
}

pub fn send_text<M, R>(n: u64, text: &'static str) -> Out<M, R> {
    send(n, Frame::text(text))
}

pub fn close<M, R>(n: u64, code: u16, reason: &'static str) -> Out<M, R> {
    Out::Cmd(Command::Close {
        conn: c(n),
        frame: CloseFrame::new(code, reason),
    })
}

pub fn abort<M, R>(n: u64) -> Out<M, R> {
    Out::Cmd(Command::Abort { conn: c(n) })
}

pub fn ev<M, R>(event: Event<M, R>) -> Out<M, R> {
    Out::Ev(event)
}

pub fn ping(counter: u64) -> Frame {
    Frame::Ping(bytes::Bytes::copy_from_slice(&counter.to_be_bytes()))
}

pub fn pong(counter: u64) -> Frame {
    Frame::Pong(bytes::Bytes::copy_from_slice(&counter.to_be_bytes()))
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

pub const RESUME: ReconnectMode = ReconnectMode::Resume;
pub const FRESH: ReconnectMode = ReconnectMode::Fresh;
