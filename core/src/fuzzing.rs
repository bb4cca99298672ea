//! The bodies of the fuzz targets (feature `fuzzing`), so normal builds compile them and a
//! stable test can replay the corpus through the very same code. Each body runs the
//! machine (or the registry) on the sequence it decodes from the bytes and checks the
//! invariants after every step; a violation panics, which is what a fuzzer looks for.
//! Time is virtual: each body takes the clock's origin (`epoch`) from its caller, since core
//! never reads a clock.

use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use serde::{Deserialize, Serialize};

use crate::invariants::{Call, ClientChecker};
use crate::protocol::Protocol;
use crate::protocol::openclaw::{DeviceIdentity, OpenClaw, OpenClawRequest, Role};
use crate::{
    Client, CloseCause, CloseFrame, Config, ConnId, Discord, Frame, Identify, Input, OpenError,
    OpenErrorKind, Plain, ReconnectMode, Token,
};

/// Which generation an input names, relative to the newest the machine issued.
#[derive(Debug, Clone, Copy, Arbitrary, Serialize, Deserialize)]
pub enum Target {
    /// The one the machine is about now.
    Current,
    /// The newest issued.
    Newest,
    /// This many generations older.
    Older(u8),
    /// This many generations not issued yet.
    Future(u8),
}

/// One step of a client scenario.
#[derive(Debug, Clone, Arbitrary, Serialize, Deserialize)]
pub enum Step {
    /// `connect()`.
    Connect,
    /// `reconnect(fresh or not)`.
    Reconnect(bool),
    /// `shutdown()`.
    Shutdown,
    /// A send of this many bytes, with a time to live in ms if given.
    Send(u8, Option<u16>),
    /// A request (OpenClaw only) with a timeout in ms.
    Request(u16),
    /// `probe()`.
    Probe,
    /// The socket opened.
    Opened(Target),
    /// The open failed, with an error kind and a retry hint in ms.
    OpenFailed(Target, u8, Option<u16>),
    /// A frame arrived: text of the fuzzer's choice, or binary.
    Text(Target, String),
    /// A binary frame of this many bytes.
    Binary(Target, u8),
    /// The socket closed, with a code if a close frame came.
    Closed(Target, Option<u16>),
    /// The start gate granted.
    Granted(Target),
    /// Time passes, in ms, with every deadline handled in order.
    Elapse(u16),
    /// The process was suspended this many ms: one late `handle_timeout`.
    Jump(u32),
}

/// A whole client scenario: the settings' seed and the steps.
#[derive(Debug, Clone, Arbitrary, Serialize, Deserialize)]
pub struct Scenario {
    /// The jitter seed.
    pub seed: u64,
    /// Whether the start gate is on.
    pub gate: bool,
    /// The steps.
    pub steps: Vec<Step>,
}

/// Which profile a client scenario speaks.
#[derive(Debug, Clone, Copy, Arbitrary, Serialize, Deserialize)]
pub enum ProfileKind {
    /// Plain WebSocket.
    Plain,
    /// Discord gateway.
    Discord,
    /// OpenClaw, as a node (so the gateway's invokes are exercised too).
    OpenClaw,
}

fn config(seed: u64, gate: bool) -> Config {
    let built = Config::builder()
        .seed(seed)
        .connect_timeout(Duration::from_millis(500))
        .hello_timeout(Duration::from_millis(300))
        .ready_timeout(Duration::from_millis(300))
        .drain_timeout(Duration::from_millis(200))
        .abort_grace(Duration::from_millis(50))
        .backoff_initial(Duration::from_millis(10))
        .backoff_max(Duration::from_millis(400))
        .start_gate(gate)
        .queue_max_frames(8)
        .queue_max_bytes(512)
        .max_pending_requests(6)
        .build();
    // The settings above are valid; should that ever change, the default settings still are.
    built.unwrap_or_else(|_| {
        Config::builder()
            .seed(seed)
            .build()
            .unwrap_or_else(|_| unreachable_config())
    })
}

#[allow(clippy::panic)]
fn unreachable_config() -> Config {
    panic!("the default configuration is valid")
}

/// A client seed as committed in the corpus: readable JSON, so the catalogue's sequences
/// can be written down as they are.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Seed {
    /// The profile.
    pub profile: ProfileKind,
    /// The scenario.
    pub scenario: Scenario,
}

/// Target `client_lifecycle`: the bytes decode into a profile and a scenario (a JSON
/// [`Seed`], as the committed seeds are, or else the fuzzer's own structured bytes).
pub fn client_lifecycle(data: &[u8], epoch: Instant) {
    if let Ok(seed) = serde_json::from_slice::<Seed>(data) {
        run_scenario(seed.profile, &seed.scenario, epoch);
        return;
    }
    let mut u = Unstructured::new(data);
    let (Ok(kind), Ok(scenario)) = (ProfileKind::arbitrary(&mut u), Scenario::arbitrary(&mut u))
    else {
        return;
    };
    run_scenario(kind, &scenario, epoch);
}

/// Runs `scenario` against a client of `kind`, checking I1-I8 after every step.
pub fn run_scenario(kind: ProfileKind, scenario: &Scenario, epoch: Instant) {
    let config = config(scenario.seed, scenario.gate);
    match kind {
        ProfileKind::Plain => {
            let profile = Plain::builder()
                .heartbeat_interval(Some(Duration::from_millis(100)))
                .build();
            if let Ok(profile) = profile {
                Driver::new(config, profile, None, epoch).run(&scenario.steps);
            }
        }
        ProfileKind::Discord => {
            if let Ok(profile) = Discord::builder(Identify::new(Token::new("t"), 1)).build() {
                Driver::new(config, profile, None, epoch).run(&scenario.steps);
            }
        }
        ProfileKind::OpenClaw => {
            let identity = DeviceIdentity::from_seed([7; 32]);
            let profile = identity.and_then(|identity| {
                OpenClaw::builder(Role::Node, identity)
                    .token(Token::new("t"))
                    .commands(["echo"])
                    .build()
                    .ok()
            });
            if let Some(profile) = profile {
                let make: fn(u16) -> OpenClawRequest =
                    |n| OpenClawRequest::new("m", serde_json::Value::from(n));
                Driver::new(config, profile, Some(make), epoch).run(&scenario.steps);
            }
        }
    }
}

/// Plays the adapter for one machine, with a virtual clock, and checks after every step.
struct Driver<P: Protocol> {
    client: Client<P>,
    checker: ClientChecker,
    now: Instant,
    request: Option<fn(u16) -> P::Request>,
}

#[allow(clippy::panic)]
fn violated(v: crate::invariants::Violation) -> ! {
    panic!("{v}")
}

impl<P: Protocol> Driver<P> {
    fn new(
        config: Config,
        profile: P,
        request: Option<fn(u16) -> P::Request>,
        epoch: Instant,
    ) -> Self {
        Self {
            checker: ClientChecker::new(&config),
            client: Client::new(config, profile),
            now: epoch,
            request,
        }
    }

    fn run(mut self, steps: &[Step]) {
        for step in steps {
            self.step(step);
        }
        // Whatever happened, a shutdown ends the machine within bounded time.
        self.call(Call::Shutdown, |c, now| c.shutdown(now));
        self.elapse(5_000);
        if self.client.poll_timeout().is_some() || self.client.stop_reason().is_none() {
            violated(crate::invariants::Violation {
                invariant: "I7",
                detail: "a shut-down machine still waits or has not stopped".into(),
            });
        }
    }

    fn conn(&self, target: Target) -> ConnId {
        let newest = self.client.stats().opens;
        ConnId::new(match target {
            Target::Current => self.client.state().conn.map_or(0, ConnId::get),
            Target::Newest => newest,
            Target::Older(n) => newest.saturating_sub(u64::from(n)),
            Target::Future(n) => newest + u64::from(n),
        })
    }

    fn step(&mut self, step: &Step) {
        match step {
            Step::Connect => self.call(Call::Other, |c, now| {
                let _ = c.connect(now);
            }),
            Step::Reconnect(fresh) => {
                let mode = if *fresh {
                    ReconnectMode::Fresh
                } else {
                    ReconnectMode::Resume
                };
                self.call(Call::Other, |c, now| {
                    let _ = c.reconnect(mode, now);
                });
            }
            Step::Shutdown => self.call(Call::Shutdown, |c, now| c.shutdown(now)),
            Step::Send(n, ttl) => {
                let frame = Frame::binary(vec![*n; usize::from(*n)]);
                self.call(Call::Other, |c, now| {
                    let _ = match ttl {
                        Some(ms) => {
                            c.send_with_ttl(frame, Duration::from_millis(u64::from(*ms)), now)
                        }
                        None => c.send(frame, now),
                    };
                });
            }
            Step::Request(ms) => {
                if let Some(make) = self.request {
                    self.checker.call(Call::Other);
                    let r = self.client.request(
                        make(*ms),
                        Duration::from_millis(u64::from(*ms)),
                        self.now,
                    );
                    if let Ok(id) = r {
                        if let Err(v) = self.checker.request_made(id) {
                            violated(v);
                        }
                    }
                    self.drain();
                }
            }
            Step::Probe => self.call(Call::Other, |c, now| {
                let _ = c.probe(now);
            }),
            Step::Opened(t) => {
                let conn = self.conn(*t);
                self.input(Input::Opened { conn });
            }
            Step::OpenFailed(t, kind, retry) => {
                let conn = self.conn(*t);
                let kind = match kind % 5 {
                    0 => OpenErrorKind::Io,
                    1 => OpenErrorKind::Tls,
                    2 => OpenErrorKind::Http { status: 503 },
                    3 => OpenErrorKind::Http { status: 401 },
                    _ => OpenErrorKind::Aborted,
                };
                let mut error = OpenError::new(kind, "fuzz");
                error.retry_after = retry.map(|ms| Duration::from_millis(u64::from(ms)));
                self.input(Input::OpenFailed { conn, error });
            }
            Step::Text(t, text) => {
                let conn = self.conn(*t);
                self.input(Input::Frame {
                    conn,
                    frame: Frame::text(text.clone()),
                });
            }
            Step::Binary(t, n) => {
                let conn = self.conn(*t);
                self.input(Input::Frame {
                    conn,
                    frame: Frame::binary(vec![*n; usize::from(*n)]),
                });
            }
            Step::Closed(t, code) => {
                let conn = self.conn(*t);
                let cause = match code {
                    Some(code) => CloseCause::Frame(CloseFrame::new(*code, "")),
                    None => CloseCause::Dropped,
                };
                self.input(Input::Closed { conn, cause });
            }
            Step::Granted(t) => {
                let conn = self.conn(*t);
                self.input(Input::StartGranted { conn });
            }
            Step::Elapse(ms) => self.elapse(u64::from(*ms)),
            Step::Jump(ms) => {
                self.now += Duration::from_millis(u64::from(*ms));
                self.timeout();
            }
        }
    }

    fn call(&mut self, call: Call, f: impl FnOnce(&mut Client<P>, Instant)) {
        self.checker.call(call);
        f(&mut self.client, self.now);
        self.drain();
    }

    fn input(&mut self, input: Input) {
        self.checker.input(&input);
        self.client.handle_input(input, self.now);
        self.drain();
    }

    fn elapse(&mut self, ms: u64) {
        let target = self.now + Duration::from_millis(ms);
        while let Some(at) = self.client.poll_timeout().filter(|&at| at <= target) {
            self.now = self.now.max(at);
            self.timeout();
        }
        self.now = target;
    }

    fn timeout(&mut self) {
        self.checker.call(Call::Other);
        self.client.handle_timeout(self.now);
        self.drain();
        if let Err(v) = self
            .checker
            .after_timeout(self.now, self.client.poll_timeout())
        {
            violated(v);
        }
    }

    fn drain(&mut self) {
        if let Err(v) = self.checker.drain(&mut self.client) {
            violated(v);
        }
    }
}

/// Targets `discord_frames` and `openclaw_frames`: the bytes, as text and binary frames, into a
/// ready machine. Nothing panics; every frame that is not even JSON is counted once.
pub fn frames(kind: ProfileKind, data: &[u8], epoch: Instant) {
    let frames: Vec<Frame> = data
        .split(|&b| b == 0xff)
        .map(|chunk| match std::str::from_utf8(chunk) {
            Ok(text) => Frame::text(text.to_owned()),
            Err(_) => Frame::binary(chunk.to_vec()),
        })
        .collect();
    let mut steps = vec![Step::Connect, Step::Opened(Target::Current)];
    match kind {
        ProfileKind::Discord => {
            steps.push(Step::Text(
                Target::Current,
                r#"{"op":10,"d":{"heartbeat_interval":40000}}"#.into(),
            ));
            steps.push(Step::Text(
                Target::Current,
                r#"{"op":0,"s":1,"t":"READY","d":{"session_id":"s"}}"#.into(),
            ));
        }
        ProfileKind::OpenClaw => {
            steps.push(Step::Text(
                Target::Current,
                r#"{"type":"event","event":"connect.challenge","payload":{"nonce":"n","ts":1}}"#
                    .into(),
            ));
            steps.push(Step::Text(
                Target::Current,
                r#"{"type":"res","id":"connect","ok":true,"payload":{"type":"hello-ok","protocol":4,"server":{"version":"f"},"features":{"methods":[],"events":[]},"snapshot":{},"auth":{"role":"node","scopes":[]},"policy":{"maxPayload":4096,"maxBufferedBytes":8192,"tickIntervalMs":1000}}}"#
                    .into(),
            ));
        }
        ProfileKind::Plain => {}
    }
    for frame in frames {
        steps.push(match frame {
            Frame::Text(t) => Step::Text(Target::Current, t.as_str().to_owned()),
            other => Step::Binary(
                Target::Current,
                u8::try_from(other.len().min(255)).unwrap_or(255),
            ),
        });
    }
    run_scenario(
        kind,
        &Scenario {
            seed: 1,
            gate: false,
            steps,
        },
        epoch,
    );
}
