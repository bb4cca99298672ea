//! The loopback conformance suite: a scripted server that speaks the server side of the
//! plain, discord and OpenClaw profiles with faults on demand, a TCP fault proxy, scenarios
//! `c01`..`c13` written against any adapter, and (feature `interop`) the real OpenClaw
//! gateway as a peer.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

pub mod adapter;
pub mod auth;
pub mod hostile_client;
#[cfg(feature = "interop")]
pub mod interop;
pub mod proxy;
pub mod raw;
pub mod scenarios;
pub mod server;

/// Generates the conformance tests c01..c13 for an adapter: `conformance!(expr)` where
/// `expr` is a value implementing [`adapter::Adapter`]. Each scenario has a hard time bound.
#[macro_export]
macro_rules! conformance {
    ($adapter:expr) => {
        $crate::conformance!(@one $adapter, c01_echo, 30);
        $crate::conformance!(@one $adapter, c02_server_restart, 15);
        $crate::conformance!(@one $adapter, c03_connect_refused_then_up, 15);
        $crate::conformance!(@one $adapter, c04_hello_stall, 15);
        $crate::conformance!(@one $adapter, c05_heartbeats_never_acked, 15);
        $crate::conformance!(@one $adapter, c06_frozen_peer, 15);
        $crate::conformance!(@one $adapter, c07_fresh_reconnect_old_socket_hangs, 15);
        $crate::conformance!(@one $adapter, c07b_an_open_attempt_cut_short_is_gone_before_the_next, 15);
        $crate::conformance!(@one $adapter, c08_shutdown_during_drain, 15);
        $crate::conformance!(@one $adapter, c09_reconnect_storm, 30);
        $crate::conformance!(@one $adapter, c10_invalid_session_fresh, 15);
        $crate::conformance!(@one $adapter, c11_fatal_close_code, 15);
        $crate::conformance!(@one $adapter, c12_requests_across_a_drop, 15);

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn c13_slow_consumer() {
            let limit = std::time::Duration::from_secs(40);
            let (grew, offered) =
                tokio::time::timeout(limit, $crate::scenarios::c13_slow_consumer(&$adapter))
                    .await
                    .expect("scenario exceeded its time bound");
            println!("c13: resident memory grew {grew} bytes while {offered} bytes were offered");
        }
    };
    (@one $adapter:expr, $name:ident, $limit:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            tokio::time::timeout(
                std::time::Duration::from_secs($limit),
                $crate::scenarios::$name(&$adapter),
            )
            .await
            .expect("scenario exceeded its time bound");
        }
    };
}
