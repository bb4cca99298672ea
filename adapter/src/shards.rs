//! A bot's shards in one process: the identify queue that spaces their session starts as
//! Discord allows. Shard `i` belongs to bucket `i % max_concurrency`; each bucket starts one
//! session per spacing (Discord: 5 s), the buckets side by side, as twilight's queue does.
//! Resumes are no session starts and never wait here.

use std::future::Future;
use std::num::NonZeroU16;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tether_core::ConnId;

use crate::StartGate;

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
