//! A bot's shards in one process: the identify queue that spaces their session starts as
//! Discord allows. Shard `i` belongs to bucket `i % max_concurrency`; each bucket starts one
//! session per spacing (Discord: 5 s), the buckets side by side, as twilight's queue does.
//! Resumes are no session starts and never wait here.

use std::future::Future;
use std::num::NonZeroU16;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::num::NonZeroU32;

use tether_core::protocol::discord::DiscordBuilder;
use tether_core::{ConfigBuilder, ConfigError, ConnId, Discord, Identify};

use crate::{ConnectError, Events, Handle, Options, StartGate};

/// How long a bucket waits between two identifies, as Discord asks.
pub const IDENTIFY_SPACING: Duration = Duration::from_secs(5);

/// Sleeps until an instant, on the application's runtime.
pub type Sleep = Arc<dyn Fn(Instant) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The identify queue of one bot, shared by all its shards.
pub struct IdentifyQueue {
    /// When each bucket may identify next.
    buckets: Vec<tokio::sync::Mutex<Option<Instant>>>,
    spacing: Duration,
    sleep: Sleep,
}

impl std::fmt::Debug for IdentifyQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentifyQueue")
            .field("buckets", &self.buckets.len())
            .field("spacing", &self.spacing)
            .finish_non_exhaustive()
    }
}

impl IdentifyQueue {
    /// A queue of `max_concurrency` buckets (the `max_concurrency` of Discord's
    /// `/gateway/bot`), one identify each per `spacing` ([`IDENTIFY_SPACING`] for Discord),
    /// sleeping with `sleep`.
    pub fn new(max_concurrency: NonZeroU16, spacing: Duration, sleep: Sleep) -> Arc<Self> {
        let buckets = (0..max_concurrency.get())
            .map(|_| tokio::sync::Mutex::new(None))
            .collect();
        Arc::new(Self {
            buckets,
            spacing,
            sleep,
        })
    }

    /// The start gate of shard `shard`: each session start waits for its bucket's turn.
    pub fn gate(self: &Arc<Self>, shard: u32) -> StartGate {
        let queue = self.clone();
        Arc::new(move |_: ConnId| {
            let queue = queue.clone();
            Box::pin(async move { queue.turn(shard).await })
        })
    }

    /// Waits for `shard`'s bucket, and books its next turn one spacing later.
    async fn turn(&self, shard: u32) {
        let count = u32::try_from(self.buckets.len()).unwrap_or(u32::MAX).max(1);
        let index = usize::try_from(shard % count).unwrap_or(0);
        let Some(bucket) = self.buckets.get(index) else {
            return;
        };
        // Held while waiting: the bucket's shards take their turns one after another.
        let mut next = bucket.lock().await;
        if let Some(at) = *next {
            if at > Instant::now() {
                (self.sleep)(at).await;
            }
        }
        *next = Some(tether_core::after(Instant::now(), self.spacing));
    }
}

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

/// Starts shards `0..count` of one bot with `connect` (an adapter's `connect_with`): each
/// identifies with `identify` and its own `[i, count]`, gets its profile from `profile`
/// (compression, an imported session...), and waits for its bucket's turn in `queue`.
/// `config` gets its start gate turned on: every fresh session asks the queue, resumes
/// never wait.
pub fn start_shards<C>(
    config: ConfigBuilder,
    identify: &Identify,
    count: NonZeroU32,
    queue: &Arc<IdentifyQueue>,
    (profile, options): (impl Fn(u32, DiscordBuilder) -> DiscordBuilder, Options),
    connect: C,
) -> Result<Vec<Shard>, ShardsError>
where
    C: Fn(
        tether_core::Config,
        Discord,
        Options,
    ) -> Result<(Handle<Discord>, Events<Discord>), ConnectError>,
{
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
            let (handle, events) = connect(config.clone(), discord, options)
                .map_err(|source| ShardsError::Connect { shard: id, source })?;
            Ok(Shard { id, handle, events })
        })
        .collect()
}
