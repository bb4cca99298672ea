//! What the machine asks the adapter to do with sockets.

use crate::conn::ConnId;
use crate::frame::{CloseFrame, Frame};

/// One thing for the adapter to do, always naming the socket generation it is for.
///
/// The adapter performs commands in the order they are polled. A command for a generation
/// whose socket the adapter no longer holds is a no-op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Open a new socket for generation `conn`. The adapter answers with exactly one
    /// `Opened(conn)` or `OpenFailed(conn)`, and after `Opened` exactly one `Closed(conn)`.
    Open {
        /// The new generation; strictly greater than any before it.
        conn: ConnId,
        /// Where to connect.
        endpoint: Endpoint,
    },
    /// Write a frame on the socket of `conn`.
    Send {
        /// The generation to write on.
        conn: ConnId,
        /// The frame.
        frame: Frame,
    },
    /// Start the close handshake on `conn`.
    Close {
        /// The generation to close.
        conn: ConnId,
        /// The close frame to send.
        frame: CloseFrame,
    },
    /// Ask the session start gate for permission to start a new session on `conn` (for
    /// identify budgets and spacing across shards); answer with `StartGranted(conn)`.
    /// Emitted only when the gate is configured.
    RequestStart {
        /// The generation that waits.
        conn: ConnId,
    },
    /// Drop the transport of `conn` at once (or give up its pending open), then report
    /// `Closed(conn)` (or `OpenFailed(conn)`).
    Abort {
        /// The generation to abort.
        conn: ConnId,
    },
}

impl Command {
    /// The generation this command is for.
    pub fn conn(&self) -> ConnId {
        match self {
            Self::Open { conn, .. }
            | Self::Send { conn, .. }
            | Self::Close { conn, .. }
            | Self::RequestStart { conn }
            | Self::Abort { conn } => *conn,
        }
    }
}

/// Where an `Open` should connect.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Endpoint {
    /// The URL or request the application configured the adapter with.
    #[default]
    Primary,
    /// Another URL chosen by the protocol profile (for example a resume URL).
    Url(String),
}
