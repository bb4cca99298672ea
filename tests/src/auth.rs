//! The gateway tests' authenticator.

use tether_gateway::{Credentials, PeerId, Rejection};

/// Tokens are `token-<peer>`; anything else is refused.
pub fn token_auth(credentials: &Credentials<'_>) -> Result<PeerId, Rejection> {
    credentials
        .token
        .and_then(|t| t.strip_prefix("token-"))
        .map(PeerId::from)
        .ok_or_else(|| Rejection::new("unknown token"))
}
