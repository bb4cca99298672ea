//! `--log`: tracing to stderr, with the WebSocket crates held below `trace`, where they
//! print every frame read and written (an identify's token among them) and every handshake
//! request (its `Authorization` header among them).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::util::SubscriberInitExt;

/// The crates whose `trace` output carries frames.
const FRAME_PRINTERS: [&str; 2] = ["tungstenite", "tokio_tungstenite"];

/// `filter` with every directive for a frame-printing crate replaced by `debug`.
pub fn safe_filter(filter: &str) -> String {
    let mut directives: Vec<&str> = filter
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .filter(|d| !FRAME_PRINTERS.iter().any(|c| d.starts_with(c)))
        .collect();
    let capped: Vec<String> = FRAME_PRINTERS
        .iter()
        .map(|c| format!("{c}=debug"))
        .collect();
    directives.extend(capped.iter().map(String::as_str));
    directives.join(",")
}

/// Installs the subscriber, the `log` crate's records included.
pub fn init(filter: &str) -> Result<(), String> {
    let filter = EnvFilter::try_new(safe_filter(filter)).map_err(|e| e.to_string())?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .finish()
        .try_init()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_printers_never_reach_trace() {
        assert_eq!(
            safe_filter("trace"),
            "trace,tungstenite=debug,tokio_tungstenite=debug"
        );
        assert_eq!(
            safe_filter("debug, tungstenite=trace,tether_tokio=trace"),
            "debug,tether_tokio=trace,tungstenite=debug,tokio_tungstenite=debug"
        );
    }
}
