//! Who a client is: the application's peer ids and the authenticator that decides them.

use std::sync::Arc;

use crate::event::RemoteError;
use crate::frame::Utf8Bytes;

/// The application's name for a peer, as its [`Authenticator`] decides it.
pub type PeerId = Arc<str>;

/// What a peer answered to an invoke: its payload (raw JSON) or its error.
pub type Answer = Result<Utf8Bytes, RemoteError>;

/// What a client presented to be let in.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    /// The `token` field, when there is one (discord identify and resume; rpc connect
    /// params).
    pub token: Option<&'a str>,
    /// The whole identify `d` or connect `params`, raw JSON (`null` when absent). Empty for
    /// a resume, which carries only the token.
    pub payload: &'a str,
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
