//! A bot's shards in one process on tokio: shard `[i, n]` for every `i`, each a client of
//! its own, their identifies spaced by one [`IdentifyQueue`] as Discord's `max_concurrency`
//! allows.

use std::num::{NonZeroU16, NonZeroU32};
use std::sync::Arc;
use std::time::Duration;

use tether_adapter::shards::{IDENTIFY_SPACING, IdentifyQueue, Sleep};
use tether_adapter::{ConnectError, Events, Handle, Options};
use tether_core::protocol::discord::DiscordBuilder;
use tether_core::{ConfigBuilder, ConfigError, Discord, Identify};

/// One running shard.
pub struct Shard {
    /// Its id, `i` of `[i, n]`.
    pub id: u32,
    /// Its client.
    pub handle: Handle<Discord>,
    /// Its events.
    pub events: Events<Discord>,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Why the shards could not start.
#[derive(Debug, thiserror::Error)]
pub enum ShardsError {
    /// The session settings were refused.
    #[error("settings: {0}")]
    Config(ConfigError),
    /// A shard's profile was refused.
    #[error("shard {shard}: {source}")]
    Profile {
        /// The shard.
        shard: u32,
        /// Why.
        source: ConfigError,
    },
    /// A shard could not connect.
    #[error("shard {shard}: {source}")]
    Connect {
        /// The shard.
        shard: u32,
        /// Why.
        source: ConnectError,
    },
}

/// An identify queue on tokio's clock: `max_concurrency` buckets, one identify each per
/// `spacing` ([`IDENTIFY_SPACING`] for Discord).
pub fn identify_queue(max_concurrency: NonZeroU16, spacing: Duration) -> Arc<IdentifyQueue> {
    let sleep: Sleep =
        Arc::new(|at| Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(at))));
    IdentifyQueue::new(max_concurrency, spacing, sleep)
}

/// Starts shards `0..count` of one bot on `url`: each identifies with `identify` and its own
/// `[i, count]`, gets its profile from `profile` (compression, an imported session...),
/// and waits for its bucket's turn in one queue of `max_concurrency` buckets spaced
/// [`IDENTIFY_SPACING`] apart. `config` gets its start gate turned on.
pub fn connect_shards(
    url: &str,
    config: ConfigBuilder,
    identify: &Identify,
    count: NonZeroU32,
    max_concurrency: NonZeroU16,
    profile: impl Fn(u32, DiscordBuilder) -> DiscordBuilder,
    options: Options,
) -> Result<Vec<Shard>, ShardsError> {
    let queue = identify_queue(max_concurrency, IDENTIFY_SPACING);
    connect_shards_with(url, config, identify, count, &queue, profile, options)
}

/// [`connect_shards`] with a queue of the caller's (spaced as it likes, shared with other
/// processes' shards of the same bot through the caller's own gate, say).
pub fn connect_shards_with(
    url: &str,
    config: ConfigBuilder,
    identify: &Identify,
    count: NonZeroU32,
    queue: &Arc<IdentifyQueue>,
    profile: impl Fn(u32, DiscordBuilder) -> DiscordBuilder,
    options: Options,
) -> Result<Vec<Shard>, ShardsError> {
    // Every fresh session asks the queue first; resumes never wait.
    let config = config
        .start_gate(true)
        .build()
        .map_err(ShardsError::Config)?;
    (0..count.get())
        .map(|id| {
            let builder = Discord::builder(identify.clone().shard(id, count.get()));
            let discord = profile(id, builder)
                .build()
                .map_err(|source| ShardsError::Profile { shard: id, source })?;
            let options = options.clone().with_start_gate(queue.gate(id));
            let (handle, events) = crate::connect_with(url, config.clone(), discord, options)
                .map_err(|source| ShardsError::Connect { shard: id, source })?;
            Ok(Shard { id, handle, events })
        })
        .collect()
}
