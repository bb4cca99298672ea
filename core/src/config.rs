//! Client configuration, validated once when it is built.

use std::time::Duration;

use crate::error::ConfigError;

/// What the outbound queue does with a send that would exceed one of its bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OverflowPolicy {
    /// Refuse the new send with [`SendErrorKind::QueueFull`](crate::SendErrorKind), handing
    /// its frame back. The default: the caller decides.
    #[default]
    Refuse,
    /// Hand back the oldest queued frames (as [`Event::Returned`](crate::Event::Returned)
    /// with [`ReturnReason::Overflow`](crate::ReturnReason::Overflow)) until the new one fits.
    DropOldest,
}

/// Validated settings of a client machine. Built only through [`Config::builder`], so every
/// value in it is known to work.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub(crate) connect_timeout: Duration,
    pub(crate) hello_timeout: Duration,
    pub(crate) ready_timeout: Duration,
    pub(crate) drain_timeout: Duration,
    pub(crate) abort_grace: Duration,
    pub(crate) backoff_initial: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) backoff_multiplier: f64,
    pub(crate) backoff_jitter: f64,
    pub(crate) max_attempts: Option<u32>,
    pub(crate) stable_after: Duration,
    pub(crate) first_retry_window: Duration,
    pub(crate) retry_after_max: Duration,
    pub(crate) stop_on_status: Vec<u16>,
    pub(crate) retry_permanent_failures: bool,
    pub(crate) heartbeat_ack_timeout: Option<Duration>,
    pub(crate) late_tick: Duration,
    pub(crate) queue_max_frames: usize,
    pub(crate) queue_max_bytes: usize,
    pub(crate) overflow: OverflowPolicy,
    pub(crate) start_gate: bool,
    pub(crate) start_gate_timeout: Duration,
    pub(crate) max_pending_requests: usize,
    pub(crate) requests_wait_for_ready: bool,
    pub(crate) seed: u64,
}

impl Config {
    /// A builder holding the defaults.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// The seed of the machine's jitter generator.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The most frames the outbound queue holds.
    pub fn queue_max_frames(&self) -> usize {
        self.queue_max_frames
    }

    /// The most payload bytes the outbound queue holds.
    pub fn queue_max_bytes(&self) -> usize {
        self.queue_max_bytes
    }
}

/// Collects settings; [`build`](Self::build) checks them all and names the first bad field.
///
/// Defaults: connect 10 s, hello 10 s, ready 15 s, drain 5 s, abort grace 1 s; backoff from
/// 1 s doubling to 60 s with full jitter and no attempt limit, reset after 30 s of stable
/// ready; first retry after a ready connection drops within a 1 s window; retry hints
/// honoured up to 5 min; HTTP 401, 403 and redirects (301, 302, 303, 307, 308) stop, and so
/// do open failures that cannot heal (a certificate not accepted, an invalid URL);
/// heartbeat ack timeout equal to the interval; late tick threshold 1 s; queue of 1024 frames and 1 MiB, refusing overflow;
/// no start gate (10 min to grant when enabled); 1024 pending requests, which wait for ready.
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    config: Config,
}

impl Default for ConfigBuilder {
    fn default() -> Self {
        Self {
            config: Config {
                connect_timeout: Duration::from_secs(10),
                hello_timeout: Duration::from_secs(10),
                ready_timeout: Duration::from_secs(15),
                drain_timeout: Duration::from_secs(5),
                abort_grace: Duration::from_secs(1),
                backoff_initial: Duration::from_secs(1),
                backoff_max: Duration::from_secs(60),
                backoff_multiplier: 2.0,
                backoff_jitter: 1.0,
                max_attempts: None,
                stable_after: Duration::from_secs(30),
                first_retry_window: Duration::from_secs(1),
                retry_after_max: Duration::from_secs(300),
                stop_on_status: vec![301, 302, 303, 307, 308, 401, 403],
                retry_permanent_failures: false,
                heartbeat_ack_timeout: None,
                late_tick: Duration::from_secs(1),
                queue_max_frames: 1024,
                queue_max_bytes: 1 << 20,
                overflow: OverflowPolicy::Refuse,
                start_gate: false,
                start_gate_timeout: Duration::from_secs(600),
                max_pending_requests: 1024,
                requests_wait_for_ready: true,
                // Distinct per client so a fleet never shares one jitter sequence; tests and
                // replays pass an explicit seed. This draws entropy, it reads no clock.
                seed: fastrand::u64(..),
            },
        }
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, value: $ty) -> Self {
                self.config.$name = value;
                self
            }
        )*
    };
}

impl ConfigBuilder {
    setters! {
        /// How long a socket may take to open (TCP, TLS and upgrade) before the attempt fails.
        connect_timeout: Duration;
        /// How long after opening the server's hello may take, for profiles that wait for one.
        hello_timeout: Duration;
        /// How long the handshake may take, from the moment it is written, before the
        /// connection is recycled.
        ready_timeout: Duration;
        /// How long a socket being left may take to finish its close handshake before it
        /// is aborted.
        drain_timeout: Duration;
        /// How long after an abort the adapter may take to report the socket closed before
        /// the machine abandons it and moves on.
        abort_grace: Duration;
        /// The delay after the first failed attempt.
        backoff_initial: Duration;
        /// The cap on any backoff delay.
        backoff_max: Duration;
        /// The growth factor of the delay per failed attempt (at least 1).
        backoff_multiplier: f64;
        /// The random fraction of each delay, in `0..=1`: 1 is full jitter (a delay drawn
        /// from `0..=d`), 0 is none.
        backoff_jitter: f64;
        /// Stop with `GaveUp` after this many consecutive failed attempts (`None`: never).
        max_attempts: Option<u32>;
        /// How long a connection must stay ready before the attempt count resets.
        stable_after: Duration;
        /// When a stable ready connection drops, the first retry waits a random time in
        /// `0..=window`, so a fleet does not return in one wave (zero: at once).
        first_retry_window: Duration;
        /// The longest server retry hint (`Retry-After`) the machine will honour.
        retry_after_max: Duration;
        /// HTTP statuses on the upgrade that stop the client instead of retrying.
        stop_on_status: Vec<u16>;
        /// Retry open failures that cannot heal (a certificate not accepted, a URL that
        /// cannot be connected to: [`is_permanent`](crate::OpenErrorKind::is_permanent))
        /// instead of stopping with them.
        retry_permanent_failures: bool;
        /// How long a heartbeat may go unacknowledged (`None`: one interval). Never more
        /// than the interval.
        heartbeat_ack_timeout: Option<Duration>;
        /// A heartbeat deadline handled later than this is a late tick (a starved scheduler
        /// or a suspended machine): the machine beats anew instead of judging the peer.
        late_tick: Duration;
        /// The most frames waiting in the outbound queue.
        queue_max_frames: usize;
        /// The most payload bytes waiting in the outbound queue.
        queue_max_bytes: usize;
        /// What happens to a send over a queue bound.
        overflow: OverflowPolicy;
        /// Ask permission (`Command::RequestStart`) before every fresh handshake, and wait
        /// for `Input::StartGranted`.
        start_gate: bool;
        /// How long a start may wait for its grant before the connection is recycled.
        start_gate_timeout: Duration;
        /// The most requests waiting for an outcome at once; also the most calls of the
        /// peer's waiting for the application's answer (more are answered unanswered at once).
        max_pending_requests: usize;
        /// Whether requests made before ready wait in the queue (`true`) or are refused at
        /// once.
        requests_wait_for_ready: bool;
        /// The seed of the jitter generator: equal seeds give equal delays.
        seed: u64;
    }

    /// Checks every value and returns the configuration, or the first field that cannot work.
    pub fn build(self) -> Result<Config, ConfigError> {
        let c = self.config;
        let positive = [
            ("connect_timeout", c.connect_timeout),
            ("hello_timeout", c.hello_timeout),
            ("ready_timeout", c.ready_timeout),
            ("drain_timeout", c.drain_timeout),
            ("abort_grace", c.abort_grace),
            ("backoff_initial", c.backoff_initial),
            ("backoff_max", c.backoff_max),
            ("stable_after", c.stable_after),
            ("retry_after_max", c.retry_after_max),
            ("late_tick", c.late_tick),
            ("start_gate_timeout", c.start_gate_timeout),
        ];
        for (field, value) in positive {
            if value.is_zero() {
                return Err(ConfigError::Zero { field });
            }
        }
        crate::timer::check_delays(&positive)?;
        crate::timer::check_delays(&[
            ("first_retry_window", c.first_retry_window),
            (
                "heartbeat_ack_timeout",
                c.heartbeat_ack_timeout.unwrap_or_default(),
            ),
        ])?;
        ConfigError::check_at_most(&[
            ("queue_max_frames", c.queue_max_frames, 1 << 24),
            ("queue_max_bytes", c.queue_max_bytes, 1 << 32),
            ("max_pending_requests", c.max_pending_requests, 1 << 24),
        ])?;
        if c.heartbeat_ack_timeout.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::Zero {
                field: "heartbeat_ack_timeout",
            });
        }
        if c.backoff_max < c.backoff_initial {
            return Err(ConfigError::MaxBelowInitial {
                initial: c.backoff_initial,
                max: c.backoff_max,
            });
        }
        if !(c.backoff_multiplier.is_finite() && c.backoff_multiplier >= 1.0) {
            return Err(ConfigError::Multiplier {
                value: c.backoff_multiplier,
            });
        }
        if !(0.0..=1.0).contains(&c.backoff_jitter) {
            return Err(ConfigError::OutOfRange {
                field: "backoff_jitter",
                value: c.backoff_jitter,
            });
        }
        if c.max_attempts == Some(0) {
            return Err(ConfigError::Zero {
                field: "max_attempts",
            });
        }
        if c.queue_max_frames == 0 {
            return Err(ConfigError::Zero {
                field: "queue_max_frames",
            });
        }
        if c.max_pending_requests == 0 {
            return Err(ConfigError::Zero {
                field: "max_pending_requests",
            });
        }
        if c.queue_max_bytes == 0 {
            return Err(ConfigError::Zero {
                field: "queue_max_bytes",
            });
        }
        Ok(c)
    }
}

/// Whether `code` may be sent in a close frame (RFC 6455 section 7.4: 1005, 1006 and 1015
/// are reserved for reporting, and below 1000 or in 1016..=2999 are not assigned).
pub fn is_sendable_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}
