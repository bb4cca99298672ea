//! Drives the core by hand through a scripted session with faults, on a virtual clock,
//! and prints the timeline. No network, no runtime: the loop below is the whole "adapter".
//!
//! Run: `cargo run -p tether-core --example session`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use tether_core::{
    Client, CloseCause, Command, Config, ConnId, Event, Frame, Input, Plain, ReconnectMode,
};

/// A pretend peer: which sockets it holds open, and whether it still answers pings.
struct Peer {
    open: BTreeSet<ConnId>,
    answers_pings: bool,
    completes_close: bool,
}

struct Driver {
    client: Client<Plain>,
    peer: Peer,
    t0: Instant,
    now: Instant,
}

impl Driver {
    fn ms(&self) -> u128 {
        (self.now - self.t0).as_millis()
    }

    /// Steps 2 and 3 of the driving loop: perform commands, hand events on.
    fn drain(&mut self) {
        let mut answers = Vec::new();
        while let Some(command) = self.client.poll_command() {
            match command {
                Command::Open { conn, .. } => answers.push(Input::Opened { conn }),
                Command::Send {
                    conn,
                    frame: Frame::Ping(payload),
                } if self.peer.answers_pings && self.peer.open.contains(&conn) => {
                    answers.push(Input::Frame {
                        conn,
                        frame: Frame::Pong(payload),
                    });
                }
                Command::Send { conn, frame } => {
                    println!("{:>7} ms  -> {conn} {frame:?}", self.ms());
                }
                Command::Close { conn, frame } if self.peer.completes_close => {
                    answers.push(Input::Closed {
                        conn,
                        cause: CloseCause::Frame(frame),
                    });
                }
                Command::Close { conn, frame } => {
                    println!(
                        "{:>7} ms  -> {conn} {frame} (the peer will not answer)",
                        self.ms()
                    );
                }
                Command::RequestStart { conn } => answers.push(Input::StartGranted { conn }),
                Command::Abort { conn } => {
                    self.peer.open.remove(&conn);
                    answers.push(Input::Closed {
                        conn,
                        cause: CloseCause::Aborted,
                    });
                }
            }
        }
        while let Some(event) = self.client.poll_event() {
            self.print(event);
        }
        for input in answers {
            if let Input::Opened { conn } = input {
                self.peer.open.insert(conn);
            }
            self.client.handle_input(input, self.now);
            self.drain();
        }
    }

    fn print(&self, event: Event<Frame>) {
        let line = match event {
            Event::Transition(t) => format!("   {} -> {} ({})", t.from, t.to, t.reason),
            Event::Connecting { conn, attempt } => format!("connecting {conn} attempt {attempt}"),
            Event::Ready { conn, resumed } => format!("ready {conn} resumed={resumed}"),
            Event::Message { conn, message } => format!("message on {conn}: {message:?}"),
            Event::Disconnected { conn, reason } => format!("disconnected {conn}: {reason}"),
            Event::Reconnecting {
                delay,
                attempt,
                reason,
                ..
            } => format!("reconnecting in {delay:?}, attempt {attempt} ({reason})"),
            Event::Returned { id, reason, .. } => {
                format!("send #{} handed back: {reason:?}", id.get())
            }
            Event::ProtocolError { conn, error } => format!("protocol error on {conn}: {error}"),
            Event::Response { id, outcome } => format!("{id}: {outcome:?}"),
            Event::Call { id, message } => format!("{id}: {message:?}"),
            Event::Stopped { reason } => format!("stopped: {reason}"),
        };
        println!("{:>7} ms  {line}", self.ms());
    }

    /// Step 4: sleep until the next deadline, up to `d` ahead.
    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        while let Some(at) = self.client.poll_timeout().filter(|&at| at <= until) {
            self.now = at;
            self.client.handle_timeout(at);
            self.drain();
        }
        self.now = until;
    }

    fn note(&self, what: &str) {
        println!("{:>7} ms  ## {what}", self.ms());
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::builder()
        .seed(2026)
        .drain_timeout(Duration::from_secs(2))
        .first_retry_window(Duration::from_millis(500))
        .build()?;
    let profile = Plain::builder()
        .heartbeat_interval(Some(Duration::from_secs(5)))
        .build()?;
    #[allow(clippy::disallowed_methods)]
    let t0 = Instant::now();
    let mut d = Driver {
        client: Client::new(config, profile),
        peer: Peer {
            open: BTreeSet::new(),
            answers_pings: true,
            completes_close: true,
        },
        t0,
        now: t0,
    };

    d.note("a send before connecting waits in the queue");
    d.client.send(Frame::text("queued before connect"), d.now)?;
    d.client.connect(d.now)?;
    d.drain();
    d.run_for(Duration::from_secs(12));

    d.note("the server restarts: the socket drops without a close frame");
    let conn = d.client.state().conn.expect("connected");
    d.peer.open.remove(&conn);
    d.client.handle_input(
        Input::Closed {
            conn,
            cause: CloseCause::Dropped,
        },
        d.now,
    );
    d.drain();
    d.run_for(Duration::from_secs(3));

    d.note("a late frame from the old socket arrives: dropped and counted");
    d.client.handle_input(
        Input::Frame {
            conn,
            frame: Frame::text("late"),
        },
        d.now,
    );
    d.drain();

    d.note("the peer stops answering pings");
    d.peer.answers_pings = false;
    d.run_for(Duration::from_secs(12));
    d.peer.answers_pings = true;
    d.run_for(Duration::from_secs(2));

    d.note("forced fresh reconnect while the old socket never completes its close");
    d.peer.completes_close = false;
    d.client.reconnect(ReconnectMode::Fresh, d.now)?;
    d.drain();
    d.peer.completes_close = true;
    d.run_for(Duration::from_secs(4));

    d.note("shutdown");
    d.client.shutdown(d.now);
    d.drain();
    d.run_for(Duration::from_secs(3));

    let stats = d.client.stats();
    println!(
        "\nopens {} ready {} reconnects {} zombies {} stale inputs dropped {} abandoned {}",
        stats.opens,
        stats.ready,
        stats.reconnects,
        stats.zombies,
        stats.stale_inputs,
        stats.abandoned
    );
    Ok(())
}
