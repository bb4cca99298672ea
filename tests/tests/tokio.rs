//! The conformance suite against tether-tokio.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tether_core::Config;
use tether_tests::adapter::Adapter;

struct Tokio;

impl Adapter for Tokio {
    fn name(&self) -> &'static str {
        "tether-tokio"
    }

    fn start<P: tether_adapter::Profile>(
        &self,
        url: &str,
        config: Config,
        profile: P,
        options: tether_adapter::Options,
    ) -> (tether_adapter::Handle<P>, tether_adapter::Events<P>) {
        tether_tokio::connect_with(url, config, profile, options).unwrap()
    }
}

tether_tests::conformance!(Tokio);
tether_tests::hostile_client!(Tokio);
