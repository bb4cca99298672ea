//! Extreme durations (k07): every duration setting is refused with a typed error when it is
//! too long, and whatever is accepted, and whatever a call or a peer hands in, drives the
//! machine through connects, failures, heartbeats, drains and shutdown without a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use proptest::prelude::*;
use tether_core::{
    Config, ConfigBuilder, ConfigError, Frame, MAX_DELAY, OpenError, OpenErrorKind, Plain,
    ReconnectMode,
};

use support::Sim;

type Setter = fn(ConfigBuilder, Duration) -> ConfigBuilder;

/// Every duration of the client's settings, by name.
fn setters() -> Vec<(&'static str, Setter)> {
    vec![
        ("connect_timeout", |b, d| b.connect_timeout(d)),
        ("hello_timeout", |b, d| b.hello_timeout(d)),
        ("ready_timeout", |b, d| b.ready_timeout(d)),
        ("drain_timeout", |b, d| b.drain_timeout(d)),
        ("abort_grace", |b, d| b.abort_grace(d)),
        ("backoff_initial", |b, d| {
            b.backoff_initial(d).backoff_max(d)
        }),
        ("backoff_max", |b, d| b.backoff_max(d)),
        ("stable_after", |b, d| b.stable_after(d)),
        ("first_retry_window", |b, d| b.first_retry_window(d)),
        ("retry_after_max", |b, d| b.retry_after_max(d)),
        ("late_tick", |b, d| b.late_tick(d)),
        ("start_gate_timeout", |b, d| b.start_gate_timeout(d)),
        ("heartbeat_ack_timeout", |b, d| {
            b.heartbeat_ack_timeout(Some(d))
        }),
    ]
}

#[test]
fn k07_durations_past_the_bound_are_refused_by_name() {
    let too_long = MAX_DELAY + Duration::from_secs(1);
    for (field, set) in setters() {
        for value in [too_long, Duration::MAX] {
            let built = set(Config::builder(), value).build();
            let named = match built {
                Err(ConfigError::TooLong { field, .. }) => field,
                other => panic!("{field} = {value:?}: {other:?}"),
            };
            assert_eq!(named, field);
        }
        // The bound itself is fine (backoff_max below backoff_initial aside).
        let at_bound = set(Config::builder(), MAX_DELAY).build();
        assert!(
            at_bound.is_ok() || matches!(at_bound, Err(ConfigError::MaxBelowInitial { .. })),
            "{field}: {at_bound:?}"
        );
    }
    assert!(matches!(
        Plain::builder()
            .heartbeat_interval(Some(Duration::MAX))
            .build(),
        Err(ConfigError::TooLong {
            field: "heartbeat_interval",
            ..
        })
    ));
    assert!(matches!(
        Config::builder().queue_max_bytes(usize::MAX).build(),
        Err(ConfigError::TooLarge {
            field: "queue_max_bytes",
            ..
        })
    ));
}

#[test]
fn k07_call_arguments_past_the_bound_are_refused_typed() {
    use tether_core::protocol::openclaw::{DeviceIdentity, OpenClaw, OpenClawRequest, Role};
    use tether_core::{Client, SendErrorKind, SendOptions};
    let now = support::epoch();
    let mut client = Client::new(
        support::test_config().build().unwrap(),
        Plain::builder().heartbeat_interval(None).build().unwrap(),
    );
    client.connect(now).unwrap();
    let frame = Frame::text("x");
    let refused = client
        .send_with(frame.clone(), SendOptions::new().ttl(Duration::MAX), now)
        .unwrap_err();
    assert_eq!(refused.kind, SendErrorKind::TtlTooLong);
    assert_eq!(refused.frame, frame, "the frame comes back");
    assert!(
        client
            .send_with(frame, SendOptions::new().ttl(MAX_DELAY), now)
            .is_ok()
    );

    let identity = DeviceIdentity::from_seed([1; 32]).unwrap();
    let mut openclaw = Client::new(
        support::test_config().build().unwrap(),
        OpenClaw::builder(Role::Operator, identity).build().unwrap(),
    );
    openclaw.connect(now).unwrap();
    let request = || OpenClawRequest::new("status", serde_json::Value::Null);
    let refused = openclaw.request(request(), Duration::MAX, now).unwrap_err();
    assert_eq!(refused.kind, tether_core::RequestErrorKind::TimeoutTooLong);
    assert!(openclaw.request(request(), MAX_DELAY, now).is_ok());
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::from_nanos(1)),
        Just(MAX_DELAY),
        Just(MAX_DELAY + Duration::from_nanos(1)),
        Just(Duration::MAX),
        Just(Duration::from_secs(u64::MAX / 2)),
        (0u64..=3_600_000).prop_map(Duration::from_millis),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever durations the settings, the calls and the peer give, the machine refuses
    /// them typed or runs with them: connect, a failed open with a retry hint, a socket, a
    /// send with a time to live, a probe, a fresh reconnect with a drain, time passing and
    /// a shutdown, with the invariants checked after every step.
    #[test]
    fn k07_extreme_durations_never_panic(
        settings in proptest::collection::vec((0usize..13, duration()), 0..6),
        heartbeat in duration(),
        ttl in duration(),
        hint in duration(),
        step in duration(),
    ) {
        let mut builder = support::test_config();
        let all = setters();
        for (i, d) in settings {
            builder = (all[i].1)(builder, d);
        }
        let Ok(config) = builder.build() else {
            return Ok(());
        };
        let Ok(plain) = Plain::builder().heartbeat_interval(Some(heartbeat)).build() else {
            return Ok(());
        };
        let mut sim = Sim::new(config, plain);
        sim.connect().unwrap();
        sim.open_failed(1, OpenError::new(OpenErrorKind::Io, "refused").with_retry_after(hint));
        // A step past the bound is the clock of a machine that slept that long.
        let step = step.min(MAX_DELAY * 2);
        sim.jump(step);
        let conn = sim.newest_conn();
        sim.opened(conn);
        let _ = sim.send_with_ttl(Frame::text("x"), ttl);
        let _ = sim.probe();
        sim.jump(step);
        let _ = sim.reconnect(ReconnectMode::Fresh);
        sim.jump(step);
        sim.shutdown();
        sim.jump(step);
    }
}
