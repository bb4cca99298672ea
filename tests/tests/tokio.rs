//! The conformance suite against tether-tokio.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tether_core::Config;
use tether_tests::adapter::{Adapter, EventStream, TestClient, boxed};
use tether_tokio::Options;

struct Tokio;

impl Adapter for Tokio {
    fn name(&self) -> &'static str {
        "tether-tokio"
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
        let (handle, events) = tether_tokio::connect_with(url, config, profile, options).unwrap();
        boxed(handle, events)
    }
}

tether_tests::conformance!(Tokio);
