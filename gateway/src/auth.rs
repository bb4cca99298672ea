//! Who a client is: the application's peer ids and the authenticator that decides them.

use std::fmt;
use std::sync::Arc;

use tether_core::ConnId;
use tether_core::RemoteError;
use tether_core::Utf8Bytes;

/// The application's name for a peer, as its [`Authenticator`] decides it.
pub type PeerId = Arc<str>;

/// What a peer answered to an invoke: its payload (raw JSON) or its error.
pub type Answer = Result<Utf8Bytes, RemoteError>;

/// What a client presented to be let in. Its `Debug` shows neither the token nor the
/// payload, which carries it.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    /// The connection presenting them: under the plain profile, which has no handshake,
    /// the only thing that tells one client from another.
    pub conn: ConnId,
    /// The token, when there is one: discord's identify and resume `token`; OpenClaw's
    /// `auth.token`, else `auth.deviceToken`, else `auth.password`; never under plain.
    pub token: Option<&'a str>,
    /// The whole identify `d` or connect `params`, raw JSON (`null` when absent). Empty for
    /// a resume, which carries only the token.
    pub payload: &'a str,
}

impl fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("conn", &self.conn)
            .field(
                "token",
                &self.token.map(|t| format!("<redacted {} bytes>", t.len())),
            )
            .field("payload", &format!("<{} bytes>", self.payload.len()))
            .finish()
    }
}

/// Why a client was not let in; its reason goes into the close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Shown to the client.
    pub reason: String,
}

impl Rejection {
    /// A rejection with `reason`.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

/// Decides who a client is. Called once per identify, resume or connect.
pub trait Authenticator: Send {
    /// The peer these credentials belong to, or why they are refused.
    fn authenticate(&mut self, credentials: &Credentials<'_>) -> Result<PeerId, Rejection>;
}

impl<F> Authenticator for F
where
    F: FnMut(&Credentials<'_>) -> Result<PeerId, Rejection> + Send,
{
    fn authenticate(&mut self, credentials: &Credentials<'_>) -> Result<PeerId, Rejection> {
        self(credentials)
    }
}
