//! Child processes of this executable, and what `/proc` says of them.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// A node: this executable run as `tether bench-node ...`, answering on stdout.
pub struct Node {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    pid: u32,
}

/// Why a node could not be run or did not answer.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Spawning or talking to it failed.
    #[error("bench node: {0}")]
    Io(#[from] std::io::Error),
    /// It ended, or did not say what was expected in time.
    #[error("bench node did not answer {0:?} in time")]
    Silent(String),
}

impl Node {
    /// Starts `tether bench-node <args>`.
    pub fn spawn(args: &[String]) -> Result<Self, NodeError> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .arg("bench-node")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().ok_or_else(|| NodeError::Silent("pid".into()))?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| NodeError::Silent("stdin".into()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| NodeError::Silent("stdout".into()))?;
        Ok(Self {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            pid,
        })
    }

    /// Reads lines until one starts with `prefix`; returns the rest of it.
    pub async fn expect(&mut self, prefix: &str, limit: Duration) -> Result<String, NodeError> {
        let wait = async {
            while let Some(line) = self.lines.next_line().await? {
                if let Some(rest) = line.strip_prefix(prefix) {
                    return Ok(rest.trim().to_owned());
                }
            }
            Err(NodeError::Silent(prefix.to_owned()))
        };
        tokio::time::timeout(limit, wait)
            .await
            .map_err(|_| NodeError::Silent(prefix.to_owned()))?
    }

    /// Sends one command line.
    pub async fn tell(&mut self, line: &str) -> Result<(), NodeError> {
        self.stdin.write_all(format!("{line}\n").as_bytes()).await?;
        self.stdin.flush().await?;
        Ok(())
    }

    /// Sends a command and returns its answer (the line starting with `answer`).
    pub async fn ask(&mut self, line: &str, answer: &str) -> Result<String, NodeError> {
        self.tell(line).await?;
        self.expect(answer, Duration::from_secs(30)).await
    }

    /// Resident memory now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// CPU time used so far (user + system), in clock ticks of 10 ms.
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        // Fields after the command name (which may hold spaces) closed by the last ')'.
        let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        field(11) + field(12)
    }

    /// Kills it at once (a crash, as far as its peers can tell).
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Linux reports CPU time in USER_HZ ticks, fixed at 100 per second.
pub const TICKS_PER_SECOND: f64 = 100.0;
