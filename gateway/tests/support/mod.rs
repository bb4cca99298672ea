//! What the gateway's scenario tests share.
#![allow(dead_code)]

use std::time::Instant;

use tether_gateway::{Credentials, PeerId, Rejection};

/// The virtual clock's origin; only differences matter.
#[allow(clippy::disallowed_methods)]
pub(crate) fn epoch() -> Instant {
    Instant::now()
}

/// Tokens are `token-<peer>`; anything else is refused.
pub(crate) fn auth(credentials: &Credentials<'_>) -> Result<PeerId, Rejection> {
    credentials
        .token
        .and_then(|t| t.strip_prefix("token-"))
        .map(PeerId::from)
        .ok_or_else(|| Rejection::new("unknown token"))
}
