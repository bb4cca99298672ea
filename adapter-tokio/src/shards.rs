//! A bot's shards in one process on tokio: shard `[i, n]` for every `i`, each a client of
//! its own, their identifies spaced by one [`IdentifyQueue`] as Discord's `max_concurrency`
//! allows.

use std::num::{NonZeroU16, NonZeroU32};
use std::sync::Arc;
use std::time::Duration;

use tether_adapter::Options;
pub use tether_adapter::shards::{IDENTIFY_SPACING, IdentifyQueue, Shard, ShardsError};
use tether_adapter::shards::{Sleep, start_shards};
use tether_core::protocol::discord::DiscordBuilder;
use tether_core::{ConfigBuilder, Identify};

/// An identify queue on tokio's clock: `max_concurrency` buckets, one identify each per
/// `spacing` ([`IDENTIFY_SPACING`] for Discord).
pub fn identify_queue(max_concurrency: NonZeroU16, spacing: Duration) -> Arc<IdentifyQueue> {
    let sleep: Sleep =
        Arc::new(|at| Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(at))));
    IdentifyQueue::new(max_concurrency, spacing, sleep)
}

/// Starts shards `0..count` of one bot on `url`, their identifies spaced by `queue` (one
/// per bot: `identify_queue(max_concurrency, IDENTIFY_SPACING)`); see
/// [`start_shards`](tether_adapter::shards::start_shards).
pub fn connect_shards(
    url: &str,
    config: ConfigBuilder,
    identify: &Identify,
    count: NonZeroU32,
    queue: &Arc<IdentifyQueue>,
    profile: impl Fn(u32, DiscordBuilder) -> DiscordBuilder,
    options: Options,
) -> Result<Vec<Shard>, ShardsError> {
    start_shards(
        config,
        identify,
        count,
        queue,
        (profile, options),
        |config, discord, options| crate::connect_with(url, config, discord, options),
    )
}
