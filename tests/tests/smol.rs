//! The conformance suite against tether-smol: the same scenarios, the same scripted server
//! (on tokio); the client's tasks run on smol's global executor.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tether_core::Config;
use tether_tests::adapter::Adapter;

struct Smol;

impl Adapter for Smol {
    fn name(&self) -> &'static str {
        "tether-smol"
    }

    fn start<P: tether_adapter::Profile>(
        &self,
        url: &str,
        config: Config,
        profile: P,
        options: tether_adapter::Options,
    ) -> (tether_adapter::Handle<P>, tether_adapter::Events<P>) {
        tether_smol::connect_with(url, config, profile, options).unwrap()
    }
}

tether_tests::conformance!(Smol);
tether_tests::hostile_client!(Smol);
