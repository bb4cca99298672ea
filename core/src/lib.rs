//! tether-core: the sans-IO heart of tether.
//!
//! A state machine that keeps one long-lived WebSocket session correct through
//! reconnects, races and faults. It is fully deterministic: it contains no networking
//! code, reads no clock (time is an argument) and draws jitter from a seeded generator.
//! Every input and every socket command is tagged with the connection generation
//! ([`ConnId`]), so work of an old socket is dropped by construction, under any runtime.
//!
//! The driving loop, the same for every adapter and every test:
//!
//! 1. feed what happened: [`Client::handle_input`], or [`Client::handle_timeout`] once
//!    [`Client::poll_timeout`] has passed, or a user call ([`Client::send`],
//!    [`Client::reconnect`], [`Client::shutdown`]...);
//! 2. drain [`Client::poll_command`] and perform each command on the socket it names;
//! 3. drain [`Client::poll_event`] and hand each event to the application;
//! 4. sleep until [`Client::poll_timeout`] or the next input.
//!
//! Time always comes from the caller, so the example takes it as an argument (the
//! runnable version, with a virtual clock, is `examples/session.rs`):
//!
//! ```
//! use std::time::{Duration, Instant};
//! use tether_core::{Client, Command, Config, Event, Frame, Input, Plain};
//!
//! fn drive(t0: Instant) -> Result<(), Box<dyn std::error::Error>> {
//!     let config = Config::builder().seed(7).build()?;
//!     let mut client = Client::new(config, Plain::new());
//!
//!     client.connect(t0)?;
//!     let Some(Command::Open { conn, .. }) = client.poll_command() else {
//!         return Err("expected an Open command".into());
//!     };
//!     // ... the adapter opens a socket for `conn`, then reports it:
//!     client.handle_input(Input::Opened { conn }, t0 + Duration::from_millis(20));
//!     client.send(Frame::text("hello"), t0 + Duration::from_millis(21))?;
//!     assert_eq!(
//!         client.poll_command(),
//!         Some(Command::Send { conn, frame: Frame::text("hello") })
//!     );
//!     while let Some(event) = client.poll_event() {
//!         if let Event::Ready { conn, .. } = event {
//!             println!("ready on {conn}");
//!         }
//!     }
//!     Ok(())
//! }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backoff;
mod command;
mod config;
mod conn;
mod error;
mod event;
mod frame;
mod heartbeat;
mod input;
mod lifecycle;
mod outbound;
mod peer_calls;
mod ratelimit;
mod requests;
mod stats;
mod timer;

pub mod protocol;

#[cfg(feature = "invariants")]
pub mod invariants;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;

pub use command::{Command, Endpoint};
pub use config::{Config, ConfigBuilder, OverflowPolicy, is_sendable_close_code};
pub use conn::{ConnId, ConnIds};
pub use error::{
    AnswerError, CallError, ConfigError, RequestError, RequestErrorKind, SendError, SendErrorKind,
};
pub use event::{
    Event, Outcome, Phase, ProtocolError, Reason, ReconnectMode, RemoteError, RequestId,
    ReturnReason, SendId, StopReason, Transition,
};
pub use frame::{CloseFrame, Frame, Utf8Bytes};
pub use input::{CloseCause, Input, OpenError, OpenErrorKind, TransportErrorKind};
pub use lifecycle::{Client, SendOptions, Status};
pub use peer_calls::CallId;
pub use protocol::discord::{Discord, DiscordSession, Dispatch, Identify, Token};
pub use protocol::plain::Plain;
pub use protocol::{Liveness, Protocol, RateLimit, Refusal};
pub use stats::Stats;
pub use timer::{MAX_DELAY, Timer, after, check_delays};
