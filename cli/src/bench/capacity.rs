//! Gateway capacity: N discord sessions with 1 s heartbeats held by one gateway process,
//! fed by a clients process, tether against bare tokio-tungstenite with the same buffers,
//! measured from `/proc`; and a restart storm: the gateway killed and started again on the
//! same port while the clients find their way back.

use std::time::Duration;

use super::node::Implementation;
use super::proc::{Node, NodeError, TICKS_PER_SECOND};

/// Settle time after every session is ready, and the CPU window after it.
const SETTLE: Duration = Duration::from_secs(3);
const WINDOW: Duration = Duration::from_secs(5);
const READY_LIMIT: Duration = Duration::from_secs(180);

/// What one side of one run cost.
#[derive(Debug, Clone, Copy)]
pub struct Side {
    /// Resident memory added per session, KiB.
    pub kib_per_session: f64,
    /// Steady CPU, percent of one core.
    pub cpu_percent: f64,
}

/// One held run.
#[derive(Debug, Clone, Copy)]
pub struct Held {
    /// The implementation measured.
    pub implementation: Implementation,
    /// Sessions held.
    pub sessions: usize,
    /// The gateway process.
    pub gateway: Side,
    /// The clients process.
    pub clients: Side,
}

/// The pair of processes of a run.
struct Run {
    gateway: Node,
    clients: Node,
    addr: String,
    base_gateway: u64,
    base_clients: u64,
}

fn node_args(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| (*s).to_owned()).collect()
}

fn implementation_arg(implementation: Implementation) -> &'static str {
    match implementation {
        Implementation::Tether => "tether",
        Implementation::Bare => "bare",
    }
}

async fn start_gateway(
    implementation: Implementation,
    listen: &str,
) -> Result<(Node, String), NodeError> {
    let mut gateway = Node::spawn(&node_args(&[
        "gateway",
        "--impl",
        implementation_arg(implementation),
        "--listen",
        listen,
        "--heartbeat-ms",
        "1000",
    ]))?;
    let addr = gateway.expect("listening", Duration::from_secs(30)).await?;
    Ok((gateway, addr))
}

async fn hold(
    implementation: Implementation,
    sessions: usize,
    spread_ms: Option<u64>,
) -> Result<Run, NodeError> {
    let (gateway, addr) = start_gateway(implementation, "127.0.0.1:0").await?;
    let count = sessions.to_string();
    let url = format!("ws://{addr}/");
    let mut args = node_args(&[
        "clients",
        "--impl",
        implementation_arg(implementation),
        "--url",
        &url,
        "--count",
        &count,
    ]);
    if let Some(ms) = spread_ms {
        args.extend(["--spread-ms".to_owned(), ms.to_string()]);
    }
    let mut clients = Node::spawn(&args)?;
    clients.expect("idle", Duration::from_secs(30)).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (base_gateway, base_clients) = (gateway.rss_kib(), clients.rss_kib());
    clients.ask("go", "going").await?;
    clients.expect("all-ready", READY_LIMIT).await?;
    Ok(Run {
        gateway,
        clients,
        addr,
        base_gateway,
        base_clients,
    })
}

async fn measure(run: &Run, sessions: usize) -> (Side, Side) {
    tokio::time::sleep(SETTLE).await;
    let (g0, c0) = (run.gateway.cpu_ticks(), run.clients.cpu_ticks());
    tokio::time::sleep(WINDOW).await;
    let (g1, c1) = (run.gateway.cpu_ticks(), run.clients.cpu_ticks());
    let cpu = |ticks: u64| ticks as f64 / TICKS_PER_SECOND / WINDOW.as_secs_f64() * 100.0;
    let per = |now: u64, base: u64| now.saturating_sub(base) as f64 / sessions as f64;
    (
        Side {
            kib_per_session: per(run.gateway.rss_kib(), run.base_gateway),
            cpu_percent: cpu(g1.saturating_sub(g0)),
        },
        Side {
            kib_per_session: per(run.clients.rss_kib(), run.base_clients),
            cpu_percent: cpu(c1.saturating_sub(c0)),
        },
    )
}

/// Holds `sessions` with each implementation and measures both sides.
pub async fn held(implementation: Implementation, sessions: usize) -> Result<Held, NodeError> {
    let run = hold(implementation, sessions, None).await?;
    let (gateway, clients) = measure(&run, sessions).await;
    run.gateway.kill().await;
    run.clients.kill().await;
    Ok(Held {
        implementation,
        sessions,
        gateway,
        clients,
    })
}

/// Prints the capacity table for each count, bare and tether measured in the same run.
pub async fn scale(counts: &[usize]) -> Result<Vec<Held>, NodeError> {
    println!(
        "capacity: discord profile, 1 s heartbeats, 8 KiB socket buffers, gateway and clients in separate processes"
    );
    println!(
        "{:<8} {:>9} {:>18} {:>14} {:>18} {:>14}",
        "impl",
        "sessions",
        "gateway KiB/sess",
        "gateway CPU %",
        "clients KiB/sess",
        "clients CPU %"
    );
    let mut rows = Vec::new();
    for &n in counts {
        for implementation in [Implementation::Bare, Implementation::Tether] {
            let row = held(implementation, n).await?;
            println!(
                "{:<8} {:>9} {:>18.1} {:>14.1} {:>18.1} {:>14.1}",
                implementation_arg(implementation),
                n,
                row.gateway.kib_per_session,
                row.gateway.cpu_percent,
                row.clients.kib_per_session,
                row.clients.cpu_percent
            );
            rows.push(row);
        }
    }
    for &n in counts {
        let find = |i: Implementation| {
            rows.iter()
                .find(|r| r.sessions == n && r.implementation == i)
        };
        if let (Some(bare), Some(tether)) =
            (find(Implementation::Bare), find(Implementation::Tether))
        {
            println!(
                "ratio tether/bare memory per session at {n}: gateway {:.2}, clients {:.2}",
                tether.gateway.kib_per_session / bare.gateway.kib_per_session.max(0.001),
                tether.clients.kib_per_session / bare.clients.kib_per_session.max(0.001)
            );
        }
    }
    Ok(rows)
}

/// A restart storm's figures.
#[derive(Debug, Clone, Copy)]
pub struct Storm {
    /// Sessions.
    pub sessions: usize,
    /// From the kill until every client was ready again, seconds.
    pub recovered_secs: f64,
    /// Connections the new gateway accepted.
    pub connections: u64,
    /// The busiest 100 ms, as connections per second.
    pub peak_rate: f64,
    /// Connections per second over the window from the first to the last.
    pub mean_rate: f64,
}

/// Kills the gateway under `sessions` tether clients (with the default configuration, or
/// the given spread of first reconnects), starts it again on the same port, and measures the way
/// back.
pub async fn storm(sessions: usize, spread_ms: Option<u64>) -> Result<Storm, NodeError> {
    let run = hold(Implementation::Tether, sessions, spread_ms).await?;
    let Run {
        gateway,
        mut clients,
        addr,
        ..
    } = run;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed = std::time::Instant::now();
    gateway.kill().await;
    let (mut gateway, _) = start_gateway(Implementation::Tether, &addr).await?;
    clients.expect("all-ready", READY_LIMIT).await?;
    let recovered_secs = killed.elapsed().as_secs_f64();
    let samples = gateway.ask("accepts", "accepts").await?;
    gateway.kill().await;
    clients.kill().await;
    let samples: Vec<(f64, f64)> = samples
        .split(',')
        .filter_map(|s| s.split_once(':'))
        .filter_map(|(t, n)| Some((t.parse::<f64>().ok()?, n.parse::<f64>().ok()?)))
        .collect();
    let (peak_rate, mean_rate, connections) = rates(&samples);
    println!(
        "storm: connections per 250 ms from the first: {}",
        histogram(&samples, 250.0)
    );
    let storm = Storm {
        sessions,
        recovered_secs,
        connections,
        peak_rate,
        mean_rate,
    };
    println!(
        "storm: {} sessions, gateway killed and restarted: all ready again after {:.1} s; {} connections; peak {:.0}/s over 100 ms vs mean {:.0}/s over the window: ratio {:.2}",
        storm.sessions,
        storm.recovered_secs,
        storm.connections,
        storm.peak_rate,
        storm.mean_rate,
        storm.peak_rate / storm.mean_rate.max(f64::MIN_POSITIVE)
    );
    Ok(storm)
}

/// Connections per `bin` ms from the first one, space-separated.
fn histogram(samples: &[(f64, f64)], bin: f64) -> String {
    let Some(&(first, _)) = samples.first() else {
        return String::new();
    };
    let start = first - 10.0;
    let mut bins: Vec<f64> = Vec::new();
    let mut before = 0.0;
    for &(t, n) in samples {
        let i = ((t - start) / bin) as usize;
        if bins.len() <= i {
            bins.resize(i + 1, 0.0);
        }
        bins[i] += n - before;
        before = n;
    }
    bins.iter()
        .map(|c| format!("{c:.0}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Peak (busiest 100 ms) and mean connection rates from (unix ms, cumulative) samples.
fn rates(samples: &[(f64, f64)]) -> (f64, f64, u64) {
    let (Some(&(first_t, _)), Some(&(last_t, total))) = (samples.first(), samples.last()) else {
        return (0.0, 0.0, 0);
    };
    // The window starts a sample before the first connection was counted.
    let start = first_t - 10.0;
    let count_at = |t: f64| {
        samples
            .iter()
            .take_while(|(at, _)| *at <= t)
            .last()
            .map_or(0.0, |(_, n)| *n)
    };
    let mut peak: f64 = 0.0;
    let mut edge = start;
    while edge < last_t {
        peak = peak.max(count_at(edge + 100.0) - count_at(edge));
        edge += 10.0;
    }
    let window = ((last_t - start) / 1000.0).max(0.1);
    (peak * 10.0, total / window, total as u64)
}

#[cfg(test)]
mod tests {
    use super::rates;

    #[test]
    fn rates_of_an_even_and_a_bursty_arrival() {
        // 100 connections evenly over 1 s: the peak 100 ms holds ~10.
        let even: Vec<(f64, f64)> = (1..=100)
            .map(|i| (f64::from(i) * 10.0, f64::from(i)))
            .collect();
        let (peak, mean, total) = rates(&even);
        assert_eq!(total, 100);
        assert!((peak / mean) < 1.3, "{peak} {mean}");
        // All 100 at once after a quiet second.
        let burst = [(0.0, 1.0), (1000.0, 1.0), (1010.0, 100.0)];
        let (peak, mean, _) = rates(&burst);
        assert!(peak / mean > 5.0, "{peak} {mean}");
    }
}
