//! The loopback conformance suite: a scripted server that speaks the server side of the
//! plain, discord and rpc profiles with faults on demand, a TCP fault proxy, and scenarios
//! `c01`..`c13` written against any adapter.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

pub mod adapter;
pub mod proxy;
pub mod scenarios;
pub mod server;
