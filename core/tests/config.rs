//! Every configuration that cannot work is rejected when it is built, naming the field.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tether_core::{Config, ConfigBuilder, ConfigError, Plain};

fn err(builder: ConfigBuilder) -> ConfigError {
    builder.build().expect_err("must be rejected")
}

#[test]
fn defaults_are_valid() {
    assert!(Config::builder().build().is_ok());
    assert!(Plain::builder().build().is_ok());
}

#[test]
fn zero_durations_are_rejected_by_name() {
    let z = Duration::ZERO;
    let cases: Vec<(&str, ConfigBuilder)> = vec![
        ("connect_timeout", Config::builder().connect_timeout(z)),
        ("hello_timeout", Config::builder().hello_timeout(z)),
        ("ready_timeout", Config::builder().ready_timeout(z)),
        ("drain_timeout", Config::builder().drain_timeout(z)),
        ("abort_grace", Config::builder().abort_grace(z)),
        ("backoff_initial", Config::builder().backoff_initial(z)),
        ("backoff_max", Config::builder().backoff_max(z)),
        ("stable_after", Config::builder().stable_after(z)),
        ("retry_after_max", Config::builder().retry_after_max(z)),
        ("late_tick", Config::builder().late_tick(z)),
        (
            "heartbeat_ack_timeout",
            Config::builder().heartbeat_ack_timeout(Some(z)),
        ),
    ];
    for (field, builder) in cases {
        assert_eq!(err(builder), ConfigError::Zero { field }, "{field}");
    }
}

#[test]
fn zero_bounds_are_rejected_by_name() {
    assert_eq!(
        err(Config::builder().queue_max_frames(0)),
        ConfigError::Zero {
            field: "queue_max_frames"
        }
    );
    assert_eq!(
        err(Config::builder().queue_max_bytes(0)),
        ConfigError::Zero {
            field: "queue_max_bytes"
        }
    );
    assert_eq!(
        err(Config::builder().max_attempts(Some(0))),
        ConfigError::Zero {
            field: "max_attempts"
        }
    );
}

#[test]
fn backoff_max_below_initial_is_rejected() {
    let e = err(Config::builder()
        .backoff_initial(Duration::from_secs(10))
        .backoff_max(Duration::from_secs(5)));
    assert_eq!(
        e,
        ConfigError::MaxBelowInitial {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(5)
        }
    );
    assert!(e.to_string().contains("backoff_max"));
}

#[test]
fn jitter_outside_zero_to_one_is_rejected() {
    for value in [-0.1, 1.01, f64::NAN] {
        match err(Config::builder().backoff_jitter(value)) {
            ConfigError::OutOfRange { field, .. } => assert_eq!(field, "backoff_jitter"),
            other => panic!("{value}: {other:?}"),
        }
    }
    assert!(Config::builder().backoff_jitter(0.0).build().is_ok());
    assert!(Config::builder().backoff_jitter(1.0).build().is_ok());
}

#[test]
fn multiplier_below_one_or_not_finite_is_rejected() {
    for value in [0.5, f64::INFINITY, f64::NAN] {
        assert!(
            matches!(
                err(Config::builder().backoff_multiplier(value)),
                ConfigError::Multiplier { .. }
            ),
            "{value}"
        );
    }
}

#[test]
fn plain_profile_settings_are_checked() {
    assert_eq!(
        Plain::builder()
            .heartbeat_interval(Some(Duration::ZERO))
            .build()
            .unwrap_err(),
        ConfigError::Zero {
            field: "heartbeat_interval"
        }
    );
    for code in [0, 999, 1005, 1006, 1015, 2999, 5000] {
        assert_eq!(
            Plain::builder().reconnect_code(code).build().unwrap_err(),
            ConfigError::CloseCode {
                field: "reconnect_code",
                code
            }
        );
    }
    assert!(Plain::builder().reconnect_code(3000).build().is_ok());
}

#[test]
fn errors_read_well() {
    assert_eq!(
        ConfigError::Zero {
            field: "drain_timeout"
        }
        .to_string(),
        "drain_timeout must be greater than zero"
    );
}
