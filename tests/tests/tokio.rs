//! The conformance suite against tether-tokio.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tether_core::{
    CallError, Config, Frame, Outcome, Protocol, ReconnectMode, RequestError, SendError, SendId,
    Stats, Status,
};
use tether_tests::adapter::{Adapter, EventStream, TestClient};
use tether_tests::scenarios;
use tether_tokio::{Handle, Options};

struct Tokio;

struct Client<P: Protocol>(Handle<P>);

impl<P> TestClient<P> for Client<P>
where
    P: Protocol + Send + 'static,
    P::Message: Send,
    P::Request: Send,
    P::Response: Send,
{
    fn send(&self, frame: Frame) -> BoxFuture<'_, Result<SendId, SendError>> {
        Box::pin(self.0.send(frame))
    }
    fn request(
        &self,
        request: P::Request,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<Outcome<P::Response>, RequestError>> {
        Box::pin(self.0.request(request, timeout))
    }
    fn reconnect(&self, mode: ReconnectMode) -> BoxFuture<'_, Result<(), CallError>> {
        Box::pin(self.0.reconnect(mode))
    }
    fn shutdown(&self) -> BoxFuture<'_, Vec<(SendId, Frame)>> {
        Box::pin(self.0.shutdown())
    }
    fn state(&self) -> BoxFuture<'_, Result<Status, CallError>> {
        Box::pin(self.0.state())
    }
    fn stats(&self) -> BoxFuture<'_, Result<Stats, CallError>> {
        Box::pin(self.0.stats())
    }
}

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
        P: Protocol + Send + Sync + 'static,
        P::Message: Send + std::fmt::Debug,
        P::Request: Send,
        P::Response: Send + std::fmt::Debug,
    {
        let options = Options::builder()
            .event_buffer(event_buffer)
            .build()
            .unwrap();
        let (handle, events) = tether_tokio::connect_with(url, config, profile, options).unwrap();
        (Arc::new(Client(handle)), events.boxed())
    }
}

/// Each scenario has a hard time bound.
async fn bounded<F: Future>(limit: Duration, scenario: F) -> F::Output {
    tokio::time::timeout(limit, scenario)
        .await
        .expect("scenario exceeded its time bound")
}

macro_rules! scenario {
    ($name:ident, $limit:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            bounded(Duration::from_secs($limit), scenarios::$name(&Tokio)).await;
        }
    };
}

scenario!(c01_echo, 30);
scenario!(c02_server_restart, 15);
scenario!(c03_connect_refused_then_up, 15);
scenario!(c04_hello_stall, 15);
scenario!(c05_heartbeats_never_acked, 15);
scenario!(c06_frozen_peer, 15);
scenario!(c07_fresh_reconnect_old_socket_hangs, 15);
scenario!(c08_shutdown_during_drain, 15);
scenario!(c09_reconnect_storm, 30);
scenario!(c10_invalid_session_fresh, 15);
scenario!(c11_fatal_close_code, 15);
scenario!(c12_requests_across_a_drop, 15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c13_slow_consumer() {
    let (grew, offered) = bounded(
        Duration::from_secs(40),
        scenarios::c13_slow_consumer(&Tokio),
    )
    .await;
    println!("c13: resident memory grew {grew} bytes while {offered} bytes were offered");
}
