//! The invariant checker of the client machine (feature `invariants`).
//!
//! Property tests, fuzz targets and the adapters' conformance suite all use this one
//! checker. It watches what goes in and what comes out, after every step, and never trusts
//! the machine's own bookkeeping: each invariant is recomputed from the streams.
//!
//! - I1 at most one socket carries application traffic; at most one more is closing.
//! - I2 `Send` goes only to the newest socket, after it opened and before it was left.
//! - I3 no `Open` after `shutdown`; nothing at all after the `Stopped` event.
//! - I4 every message (and call) surfaced came from the socket of the input being handled,
//!   and that socket was the current one when the input arrived (a frame that makes the
//!   machine leave its socket, a refused handshake, may still tell what it said).
//! - I5 `ConnId`s in `Open` strictly increase.
//! - I6 every request made completes exactly once, and all have completed by `Stopped`.
//! - I7 after `handle_timeout(t)`, `poll_timeout()` is later than `t` (or nothing waits).
//! - I8 the outbound queue stays within its configured bounds.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Instant;

use crate::command::Command;
use crate::config::Config;
use crate::conn::ConnId;
use crate::event::{Event, RequestId};
use crate::input::Input;
use crate::lifecycle::Client;
use crate::protocol::Protocol;

/// A broken invariant: which one, and what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The invariant's id, as in DESIGN.md (`"I1"` ... `"I8"`).
    pub invariant: &'static str,
    /// What broke it.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} violated: {}", self.invariant, self.detail)
    }
}

impl std::error::Error for Violation {}

fn violation(invariant: &'static str, detail: String) -> Result<(), Violation> {
    Err(Violation { invariant, detail })
}

/// Watches one client machine. Call [`input`](Self::input) before feeding an input,
/// [`call`](Self::call) before a user call, then [`drain`](Self::drain) to take and check
/// everything the step produced, and [`after_timeout`](Self::after_timeout) after a
/// `handle_timeout`.
#[derive(Debug, Clone)]
pub struct ClientChecker {
    max_frames: usize,
    max_bytes: usize,
    shutdown_called: bool,
    stopped: bool,
    newest_open: Option<ConnId>,
    opened: BTreeSet<ConnId>,
    left: BTreeSet<ConnId>,
    carrying: BTreeSet<ConnId>,
    closing: BTreeSet<ConnId>,
    input_conn: Option<ConnId>,
    /// The input's socket, if it was the current one when the input arrived.
    input_current: Option<ConnId>,
    requests_open: BTreeSet<RequestId>,
    requests_done: BTreeSet<RequestId>,
}

/// The kinds of user call the checker needs to know about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `shutdown()`.
    Shutdown,
    /// Any other call.
    Other,
}

impl ClientChecker {
    /// A checker for a machine built with `config`.
    pub fn new(config: &Config) -> Self {
        Self {
            max_frames: config.queue_max_frames(),
            max_bytes: config.queue_max_bytes(),
            shutdown_called: false,
            stopped: false,
            newest_open: None,
            opened: BTreeSet::new(),
            left: BTreeSet::new(),
            carrying: BTreeSet::new(),
            closing: BTreeSet::new(),
            input_conn: None,
            input_current: None,
            requests_open: BTreeSet::new(),
            requests_done: BTreeSet::new(),
        }
    }

    /// Records an input about to be fed to the machine.
    pub fn input(&mut self, input: &Input) {
        let conn = input.conn();
        self.input_conn = Some(conn);
        self.input_current = (self.newest_open == Some(conn)
            && self.opened.contains(&conn)
            && !self.left.contains(&conn))
        .then_some(conn);
        match input {
            // Only an answer to an `Open` that is still pending counts as an open socket.
            Input::Opened { .. }
                if self.newest_open == Some(conn) && !self.left.contains(&conn) =>
            {
                self.opened.insert(conn);
            }
            // A close ends only a socket that opened; a failure only one that did not. The
            // other combinations break the adapter contract and must change nothing.
            Input::Closed { .. } if self.opened.contains(&conn) => self.gone(conn),
            Input::OpenFailed { .. } if self.issued(conn) && !self.opened.contains(&conn) => {
                self.gone(conn);
            }
            _ => {}
        }
    }

    fn issued(&self, conn: ConnId) -> bool {
        self.newest_open.is_some_and(|newest| conn <= newest)
    }

    fn gone(&mut self, conn: ConnId) {
        self.closing.remove(&conn);
        self.carrying.remove(&conn);
        self.left.insert(conn);
    }

    /// Records a user call (or a timeout) about to be made.
    pub fn call(&mut self, call: Call) {
        self.input_conn = None;
        self.input_current = None;
        if call == Call::Shutdown {
            self.shutdown_called = true;
        }
    }

    /// Records a request the machine accepted (`request` returned `Ok(id)`).
    pub fn request_made(&mut self, id: RequestId) -> Result<(), Violation> {
        if self.requests_done.contains(&id) || !self.requests_open.insert(id) {
            return violation("I6", format!("{id} handed out twice"));
        }
        Ok(())
    }

    /// Checks one command in the order it was polled.
    pub fn command(&mut self, command: &Command) -> Result<(), Violation> {
        if self.stopped {
            return violation("I3", format!("{command:?} after the Stopped event"));
        }
        match command {
            Command::Open { conn, .. } => {
                if self.shutdown_called {
                    return violation("I3", format!("Open({conn}) after shutdown"));
                }
                if self.newest_open.is_some_and(|newest| *conn <= newest) {
                    return violation(
                        "I5",
                        format!("Open({conn}) after Open({:?})", self.newest_open),
                    );
                }
                self.newest_open = Some(*conn);
            }
            Command::Send { conn, .. } => {
                if self.newest_open != Some(*conn)
                    || !self.opened.contains(conn)
                    || self.left.contains(conn)
                {
                    return violation(
                        "I2",
                        format!(
                            "Send({conn}) while the current socket is {:?}",
                            self.newest_open
                        ),
                    );
                }
                self.carrying.insert(*conn);
                if self.carrying.len() > 1 {
                    return violation(
                        "I1",
                        format!("sockets carrying traffic: {:?}", self.carrying),
                    );
                }
            }
            Command::Close { conn, .. } => {
                self.carrying.remove(conn);
                self.left.insert(*conn);
                if !self.opened.contains(conn) {
                    return violation("I1", format!("Close({conn}) of a socket never opened"));
                }
                self.closing.insert(*conn);
                if self.closing.len() > 1 {
                    return violation("I1", format!("sockets closing: {:?}", self.closing));
                }
            }
            Command::RequestStart { conn } => {
                if self.newest_open != Some(*conn) || !self.opened.contains(conn) {
                    return violation(
                        "I2",
                        format!("RequestStart({conn}) for a socket that is not the open one"),
                    );
                }
            }
            Command::Abort { conn } => {
                // Abort drops the transport at once: the socket neither carries nor drains.
                self.carrying.remove(conn);
                self.closing.remove(conn);
                self.left.insert(*conn);
            }
        }
        Ok(())
    }

    /// Checks one event in the order it was polled.
    pub fn event<M, R>(&mut self, event: &Event<M, R>) -> Result<(), Violation> {
        if self.stopped {
            return violation("I3", "an event after the Stopped event".to_owned());
        }
        match event {
            Event::Stopped { .. } => {
                self.stopped = true;
                if !self.requests_open.is_empty() {
                    return violation(
                        "I6",
                        format!("stopped with {:?} never completed", self.requests_open),
                    );
                }
            }
            Event::Response { id, .. } => {
                // An outcome may precede `request_made` only within the same call, when a
                // request fails at once; it must still come once.
                if self.requests_done.contains(id) {
                    return violation("I6", format!("{id} completed twice"));
                }
                self.requests_open.remove(id);
                self.requests_done.insert(*id);
            }
            Event::Message { conn, .. } => return self.surfaced(*conn),
            Event::Call { id, .. } => return self.surfaced(id.conn()),
            _ => {}
        }
        Ok(())
    }

    /// I4: what surfaces came from the input being handled, whose socket was current.
    fn surfaced(&self, conn: ConnId) -> Result<(), Violation> {
        if self.input_conn != Some(conn) || self.input_current != Some(conn) {
            return violation(
                "I4",
                format!(
                    "message on {conn} while handling input of {:?}, current {:?}",
                    self.input_conn, self.newest_open
                ),
            );
        }
        Ok(())
    }

    /// Checks I7 after `handle_timeout(now)`: the next deadline is later than `now`.
    pub fn after_timeout(&self, now: Instant, next: Option<Instant>) -> Result<(), Violation> {
        match next {
            Some(at) if at <= now => violation(
                "I7",
                format!("poll_timeout() is {:?} at or before now", at - now),
            ),
            _ => Ok(()),
        }
    }

    /// Checks I8: the outbound queue is within its bounds.
    pub fn bounds(&self, queued: (usize, usize)) -> Result<(), Violation> {
        let (frames, bytes) = queued;
        if frames > self.max_frames || bytes > self.max_bytes {
            return violation(
                "I8",
                format!(
                    "queue holds {frames} frames / {bytes} bytes, bounds {} / {}",
                    self.max_frames, self.max_bytes
                ),
            );
        }
        Ok(())
    }

    /// Drains every command, then every event, checking each and the bounds. Returns them
    /// in the order they were polled.
    #[allow(clippy::type_complexity)]
    pub fn drain<P: Protocol>(
        &mut self,
        client: &mut Client<P>,
    ) -> Result<(Vec<Command>, Vec<Event<P::Message, P::Response>>), Violation> {
        let mut commands = Vec::new();
        while let Some(command) = client.poll_command() {
            self.command(&command)?;
            commands.push(command);
        }
        let mut events = Vec::new();
        while let Some(event) = client.poll_event() {
            self.event(&event)?;
            events.push(event);
        }
        self.bounds(client.queued())?;
        Ok((commands, events))
    }
}
