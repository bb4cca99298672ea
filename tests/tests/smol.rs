//! The conformance suite against tether-smol: the same scenarios, the same scripted server
//! (on tokio); the client's tasks run on smol's global executor.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tether_core::Config;
use tether_smol::{Spawned, Spawner, Task};
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

/// A smol task whose cancel begins only 400 ms after it is asked for, as on an executor
/// busy elsewhere: a socket held by a task being stopped stays open that long.
struct SlowToCancel(smol::Task<()>);

impl Spawned for SlowToCancel {
    fn cancel(self: Box<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            async_io::Timer::after(Duration::from_millis(400)).await;
            let _ = self.0.cancel().await;
        })
    }

    fn detach(self: Box<Self>) {
        self.0.detach();
    }
}

struct SlowToCancelExecutor;

impl Spawner for SlowToCancelExecutor {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Task {
        Task::new(SlowToCancel(smol::spawn(future)))
    }
}

/// tether-smol on an executor that stops tasks late.
struct SlowSmol;

impl Adapter for SlowSmol {
    fn name(&self) -> &'static str {
        "tether-smol, tasks stopped late"
    }

    fn start<P: tether_adapter::Profile>(
        &self,
        url: &str,
        config: Config,
        profile: P,
        options: tether_adapter::Options,
    ) -> (tether_adapter::Handle<P>, tether_adapter::Events<P>) {
        let runtime = tether_smol::Smol::with_spawner(SlowToCancelExecutor);
        tether_smol::connect_on(runtime, url, config, profile, options).unwrap()
    }
}

/// c07b where stopping an attempt's task takes 400 ms: the next socket is dialled only
/// once the last is gone, so the server never sees two open at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c07b_an_executor_slow_to_cancel_still_never_has_two_sockets_open() {
    tokio::time::timeout(
        Duration::from_secs(20),
        tether_tests::scenarios::c07b_an_open_attempt_cut_short_is_gone_before_the_next(&SlowSmol),
    )
    .await
    .expect("scenario exceeded its time bound");
}

/// Two shards of one bot on smol, one bucket: the second identifies a spacing after the
/// first, so a gateway enforcing the spacing refuses neither, and neither replaces the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_on_smol_take_their_turns() {
    use std::num::{NonZeroU16, NonZeroU32};
    use tether_gateway::{GatewayConfig, GatewayEvent, IdentifyLimit, ServerProfile};
    let limit = IdentifyLimit {
        max_concurrency: 1,
        spacing: Duration::from_millis(200),
        per_window: 10,
        window: Duration::from_secs(3600),
    };
    let config = GatewayConfig::builder(ServerProfile::Discord)
        .identify_limit(limit)
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let (gateway, mut events) = tether_tokio::gateway::serve(
        listener,
        config,
        tether_tests::auth::token_auth,
        tether_tokio::gateway::GatewayOptions::default(),
    )
    .unwrap();
    let queue = tether_smol::shards::identify_queue(
        NonZeroU16::new(1).unwrap(),
        Duration::from_millis(300),
    );
    let identify = tether_core::Identify::new(tether_core::Token::new("token-bot"), 0);
    let shards = tether_smol::shards::connect_shards(
        &url,
        tether_tests::scenarios::fast(),
        &identify,
        NonZeroU32::new(2).unwrap(),
        &queue,
        |_, builder| builder,
        tether_adapter::Options::default(),
    )
    .unwrap();
    let mut connected = 0;
    tokio::time::timeout(Duration::from_secs(10), async {
        while connected < 2 {
            if let Some(GatewayEvent::Presence { .. }) = events.recv().await {
                connected += 1;
            }
        }
    })
    .await
    .expect("both shards connect");
    let stats = gateway.stats().await.unwrap();
    assert_eq!(stats.identifies_limited, 0);
    assert_eq!(stats.registry.replaced, 0);
    for shard in &shards {
        let _ = shard.handle.shutdown().await;
    }
}
