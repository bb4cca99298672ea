//! The method both adapters' echo benches share: warm-up, seven alternating rounds of raw
//! and tether, the ratio as the median of the rounds' ratios (a noisy neighbour moves it far
//! less than a best-of), a table, and one `ratio tether/raw <size>: X` line per size.

use std::future::Future;
use std::time::Duration;

/// The sizes measured: label, message size, messages per round.
pub const SIZES: [(&str, usize, usize); 2] = [("64B", 64, 200_000), ("16KiB", 16 * 1024, 20_000)];

/// Runs the comparison. `raw(size, count)` and `tether(size, count)` each run one round
/// and return how long it took.
pub async fn compare<R, RF, T, TF>(mut raw: R, mut tether: T)
where
    R: FnMut(usize, usize) -> RF,
    RF: Future<Output = Duration>,
    T: FnMut(usize, usize) -> TF,
    TF: Future<Output = Duration>,
{
    println!(
        "{:<8} {:>10} {:>14} {:>14} {:>14}",
        "size", "messages", "raw msg/s", "tether msg/s", "median ratio"
    );
    let mut ratios = Vec::new();
    for (label, size, count) in SIZES {
        raw(size, count / 10).await;
        tether(size, count / 10).await;
        let mut rounds = Vec::new();
        let mut best_raw = Duration::MAX;
        let mut best_tether = Duration::MAX;
        for round in 0..7 {
            let (r, t) = if round % 2 == 0 {
                let r = raw(size, count).await;
                (r, tether(size, count).await)
            } else {
                let t = tether(size, count).await;
                (raw(size, count).await, t)
            };
            best_raw = best_raw.min(r);
            best_tether = best_tether.min(t);
            rounds.push(r.as_secs_f64() / t.as_secs_f64());
        }
        rounds.sort_by(f64::total_cmp);
        let ratio = rounds.get(rounds.len() / 2).copied().unwrap_or(0.0);
        let raw_rate = count as f64 / best_raw.as_secs_f64();
        let tether_rate = count as f64 / best_tether.as_secs_f64();
        println!("{label:<8} {count:>10} {raw_rate:>14.0} {tether_rate:>14.0} {ratio:>14.3}");
        ratios.push((label, ratio));
    }
    for (label, ratio) in ratios {
        println!("ratio tether/raw {label}: {ratio:.3}");
    }
}
