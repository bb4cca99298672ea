//! Extreme durations on the server side (k07): settings too long are refused typed, and an
//! invoke's timeout past the bound is refused before anything is written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use tether_core::ConfigError;
use tether_gateway::{
    Credentials, Gateway, GatewayConfig, GatewayError, PeerId, Rejection, ServerProfile,
};

#[test]
fn k07_durations_past_the_bound_are_refused_at_build() {
    for (field, builder) in [
        (
            "handshake_timeout",
            GatewayConfig::builder(ServerProfile::Discord).handshake_timeout(Duration::MAX),
        ),
        (
            "resume_window",
            GatewayConfig::builder(ServerProfile::Discord).resume_window(Duration::MAX),
        ),
        (
            "pong_window",
            GatewayConfig::builder(ServerProfile::OpenClaw).pong_window(Duration::MAX),
        ),
    ] {
        assert!(
            matches!(builder.build(), Err(ConfigError::TooLong { field: f, .. }) if f == field),
            "{field}"
        );
    }
}

#[test]
fn k07_an_invoke_timeout_past_the_bound_is_refused() {
    let auth = |c: &Credentials<'_>| {
        c.token
            .map(PeerId::from)
            .ok_or_else(|| Rejection::new("no token"))
    };
    let config = GatewayConfig::builder(ServerProfile::OpenClaw)
        .build()
        .unwrap();
    let mut gateway = Gateway::new(config, auth, 1);
    let params = serde_json::value::RawValue::from_string("null".to_owned()).unwrap();
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    assert_eq!(
        gateway.invoke("peer", "status", &params, Duration::MAX, now),
        Err(GatewayError::TimeoutTooLong)
    );
}
