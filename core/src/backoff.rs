//! Reconnect delays: exponential, capped, with seeded jitter.

use std::time::Duration;

use crate::config::Config;

/// The delay policy, from validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    multiplier: f64,
    jitter: f64,
}

impl Backoff {
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            initial: config.backoff_initial,
            max: config.backoff_max,
            multiplier: config.backoff_multiplier,
            jitter: config.backoff_jitter,
        }
    }

    /// The delay after `failures` consecutive failed attempts (at least 1): the capped
    /// exponential base `initial * multiplier^(failures - 1)`, of which the `jitter`
    /// fraction is drawn at random (full jitter at 1).
    pub(crate) fn delay(&self, failures: u32, rng: &mut fastrand::Rng) -> Duration {
        let exponent = i32::try_from(failures.saturating_sub(1)).unwrap_or(i32::MAX);
        let base = (self.initial.as_secs_f64() * self.multiplier.powi(exponent))
            .min(self.max.as_secs_f64());
        let fixed = base * (1.0 - self.jitter);
        let random = base * self.jitter * rng.f64();
        Duration::try_from_secs_f64(fixed + random)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

/// A delay drawn uniformly from `min..=max` (either order).
pub(crate) fn uniform(min: Duration, max: Duration, rng: &mut fastrand::Rng) -> Duration {
    let (lo, hi) = if min <= max { (min, max) } else { (max, min) };
    let span = hi.saturating_sub(lo).as_nanos();
    let span = u64::try_from(span).unwrap_or(u64::MAX);
    lo.saturating_add(Duration::from_nanos(rng.u64(0..=span)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff(jitter: f64) -> Backoff {
        let config = Config::builder()
            .backoff_initial(Duration::from_millis(100))
            .backoff_max(Duration::from_secs(2))
            .backoff_multiplier(2.0)
            .backoff_jitter(jitter)
            .build()
            .unwrap();
        Backoff::new(&config)
    }

    #[test]
    fn without_jitter_it_doubles_up_to_the_cap() {
        let b = backoff(0.0);
        let mut rng = fastrand::Rng::with_seed(1);
        let delays: Vec<u128> = (1..=7).map(|n| b.delay(n, &mut rng).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(b.delay(u32::MAX, &mut rng), Duration::from_secs(2));
    }

    #[test]
    fn full_jitter_stays_within_zero_and_the_base() {
        let b = backoff(1.0);
        let mut rng = fastrand::Rng::with_seed(7);
        let mut distinct = std::collections::HashSet::new();
        for _ in 0..1000 {
            let d = b.delay(3, &mut rng);
            assert!(d <= Duration::from_millis(400), "{d:?}");
            distinct.insert(d);
        }
        assert!(distinct.len() > 900, "jitter must spread delays");
    }

    #[test]
    fn equal_seeds_give_equal_delays() {
        let b = backoff(0.5);
        let mut a = fastrand::Rng::with_seed(42);
        let mut c = fastrand::Rng::with_seed(42);
        for n in 1..20 {
            assert_eq!(b.delay(n, &mut a), b.delay(n, &mut c));
        }
    }

    #[test]
    fn uniform_covers_its_range() {
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..1000 {
            let d = uniform(Duration::from_secs(1), Duration::from_secs(5), &mut rng);
            assert!((Duration::from_secs(1)..=Duration::from_secs(5)).contains(&d));
        }
        assert_eq!(
            uniform(Duration::ZERO, Duration::ZERO, &mut rng),
            Duration::ZERO
        );
    }
}
