//! Adapter settings: socket buffers, size limits, queue bounds, TLS.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tether_core::ConnId;

/// Decides when a new session may start (identify budgets, spacing across shards): the
/// driver awaits the future it returns before granting `Command::RequestStart`.
pub type StartGate = Arc<dyn Fn(ConnId) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

use tungstenite::protocol::WebSocketConfig;

/// Settings of the adapter (the session's own settings are `tether_core::Config`). Built
/// with [`Options::builder`]; every value is checked once.
#[derive(Clone)]
pub struct Options {
    pub(crate) websocket: WebSocketConfig,
    pub(crate) event_buffer: usize,
    pub(crate) socket_queue: usize,
    pub(crate) start_gate: Option<StartGate>,
    pub(crate) check_invariants: bool,
    #[cfg(feature = "rustls")]
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("websocket", &self.websocket)
            .field("event_buffer", &self.event_buffer)
            .field("socket_queue", &self.socket_queue)
            .field("start_gate", &self.start_gate.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for Options {
    fn default() -> Self {
        OptionsBuilder::default().options
    }
}

impl Options {
    /// These options with `gate` deciding when each new session may start (a shard's
    /// turn in its bot's identify queue, say).
    pub fn with_start_gate(mut self, gate: StartGate) -> Self {
        self.start_gate = Some(gate);
        self
    }

    /// A builder holding the defaults.
    pub fn builder() -> OptionsBuilder {
        OptionsBuilder::default()
    }
}

/// A setting of [`Options`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    /// A size or bound that must be positive is zero.
    #[error("{field} must be greater than zero")]
    Zero {
        /// The field.
        field: &'static str,
    },
    /// The frame limit is above the message limit.
    #[error("max_frame_size must not exceed max_message_size")]
    FrameAboveMessage,
}

/// Collects [`Options`]. Defaults: 8 KiB read and write buffers per socket (tungstenite's
/// own default is 128 KiB, which caps a process at a few thousand sessions per GiB),
/// messages up to 16 MiB and frames up to 4 MiB, 32 events buffered for a slow
/// application, 1024 writes queued per socket, and webpki roots for `wss://`.
#[derive(Clone, Debug)]
pub struct OptionsBuilder {
    options: Options,
}

impl Default for OptionsBuilder {
    fn default() -> Self {
        Self {
            options: Options {
                websocket: WebSocketConfig::default()
                    .read_buffer_size(8 * 1024)
                    .write_buffer_size(8 * 1024)
                    .max_message_size(Some(16 << 20))
                    .max_frame_size(Some(4 << 20)),
                event_buffer: 32,
                socket_queue: 1024,
                start_gate: None,
                check_invariants: true,
                #[cfg(feature = "rustls")]
                tls: None,
            },
        }
    }
}

impl OptionsBuilder {
    /// The read buffer each socket allocates up front.
    pub fn read_buffer_size(mut self, bytes: usize) -> Self {
        self.options.websocket = self.options.websocket.read_buffer_size(bytes);
        self
    }

    /// How much a socket buffers before writing (it also writes whenever it is idle).
    pub fn write_buffer_size(mut self, bytes: usize) -> Self {
        self.options.websocket = self.options.websocket.write_buffer_size(bytes);
        self
    }

    /// The largest message accepted; a larger one closes the socket with 1009 and the
    /// session reconnects.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.options.websocket = self.options.websocket.max_message_size(Some(bytes));
        self
    }

    /// The largest frame accepted.
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.options.websocket = self.options.websocket.max_frame_size(Some(bytes));
        self
    }

    /// How many events wait for the application before the sockets stop being read
    /// (backpressure).
    pub fn event_buffer(mut self, events: usize) -> Self {
        self.options.event_buffer = events;
        self
    }

    /// How many writes may wait on one socket; beyond that the application's calls wait
    /// (backpressure) until the socket drains.
    pub fn socket_queue(mut self, writes: usize) -> Self {
        self.options.socket_queue = writes;
        self
    }

    /// The session start gate, awaited before every fresh session when the core's
    /// `start_gate` is on. Without one, starts are granted at once.
    pub fn start_gate<F, Fut>(mut self, gate: F) -> Self
    where
        F: Fn(ConnId) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.options.start_gate = Some(Arc::new(move |conn| Box::pin(gate(conn))));
        self
    }

    /// Whether the driver runs the core's invariant checker on everything the machine sees
    /// and does, panicking on a violation. Only when built with the `invariants` feature
    /// (then on by default); without it there is no checker and this does nothing.
    pub fn check_invariants(mut self, yes: bool) -> Self {
        self.options.check_invariants = yes;
        self
    }

    /// The TLS configuration for `wss://` (for a private CA, or client certificates).
    #[cfg(feature = "rustls")]
    pub fn tls(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.options.tls = Some(config);
        self
    }

    /// Checks the settings.
    pub fn build(self) -> Result<Options, OptionsError> {
        let o = &self.options;
        let ws = &o.websocket;
        for (field, value) in [
            ("read_buffer_size", ws.read_buffer_size),
            ("event_buffer", o.event_buffer),
            ("socket_queue", o.socket_queue),
            ("max_message_size", ws.max_message_size.unwrap_or(1)),
            ("max_frame_size", ws.max_frame_size.unwrap_or(1)),
        ] {
            if value == 0 {
                return Err(OptionsError::Zero { field });
            }
        }
        if ws.max_frame_size > ws.max_message_size {
            return Err(OptionsError::FrameAboveMessage);
        }
        Ok(self.options)
    }
}
