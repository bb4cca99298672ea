//! The conformance suite against tether-smol: the same scenarios, the same scripted server
//! (on tokio); the client's tasks run on smol's global executor.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tether_core::Config;
use tether_smol::Options;
use tether_tests::adapter::{Adapter, EventStream, TestClient, boxed};

struct Smol;

impl Adapter for Smol {
    fn name(&self) -> &'static str {
        "tether-smol"
    }

    fn connect<P>(
        &self,
        url: &str,
        config: Config,
        profile: P,
        event_buffer: usize,
    ) -> (Arc<dyn TestClient<P>>, EventStream<P>)
    where
        P: tether_core::Protocol + Send + Sync + 'static,
        P::Message: Send + std::fmt::Debug,
        P::Request: Send,
        P::Response: Send + std::fmt::Debug,
    {
        let options = Options::builder()
            .event_buffer(event_buffer)
            .build()
            .unwrap();
        let (handle, events) = tether_smol::connect_with(url, config, profile, options).unwrap();
        boxed(handle, events)
    }
}

tether_tests::conformance!(Smol);
