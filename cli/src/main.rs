//! `tether`: the demo, a resilient client, a gateway with faults on demand, and the
//! benchmarks.
//!
//! Exit codes: 0 success; 1 the command ran and failed (a broken invariant in the demo, a
//! session that stopped on a fatal error, a benchmark that could not run); 2 bad arguments.

// A binary: `pub` marks what a module offers the rest of the command.
#![allow(unreachable_pub)]

mod bench;
mod connect;
mod demo;
mod gateway;
mod logs;
mod openclaw;
mod report;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use bench::node::Implementation;

/// Keeps long-lived WebSocket sessions correct.
#[derive(Debug, Parser)]
#[command(name = "tether", version, about)]
struct Cli {
    /// Log to stderr at this level or filter (`trace`, `debug`, `tether_tokio=debug`...).
    /// The WebSocket crates are held at `debug` whatever the filter: at `trace` they print
    /// every frame, tokens included.
    #[arg(long, global = true, value_name = "FILTER")]
    log: Option<String>,
    #[command(subcommand)]
    command: Commands,
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// Plays the faults long sessions meet against a client and an embedded gateway, with
    /// a live timeline and a summary; exits 0 only if every invariant held.
    Demo {
        /// The seed of the client's jitter.
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// A resilient interactive client: stdin lines are sent, messages printed, and the
    /// session survives drops, zombies and restarts.
    Connect(connect::ConnectArgs),
    /// A gateway server with faults on demand, for testing clients.
    Gateway(gateway::GatewayArgs),
    /// Runs the benchmarks, each printing a table.
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
    },
    /// One process of a capacity run (started by `tether bench`).
    #[command(hide = true)]
    BenchNode {
        #[command(subcommand)]
        node: NodeCommand,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Echo throughput, tether against the raw WebSocket crate of the same runtime.
    Echo {
        /// tokio (tether-tokio against tokio-tungstenite) or smol (tether-smol against
        /// async-tungstenite).
        #[arg(long, value_enum, default_value = "tokio")]
        runtime: EchoRuntime,
    },
    /// Sessions held by one gateway: memory per session and heartbeat CPU on each side,
    /// tether against bare tokio-tungstenite.
    Scale {
        /// Session counts, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [1000usize, 10000])]
        sessions: Vec<usize>,
    },
    /// The gateway killed and restarted under its clients: time back to all ready, and the
    /// connection rate's peak against its mean.
    Storm {
        /// Sessions.
        #[arg(long, default_value_t = 10_000)]
        sessions: usize,
        /// How widely the clients spread their first reconnect after a drop, ms: their
        /// first-retry window and first backoff (the core's defaults, 1000, when not given).
        #[arg(long)]
        spread_ms: Option<u64>,
    },
}

/// The runtimes `tether bench echo` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum EchoRuntime {
    Tokio,
    Smol,
}

#[derive(Debug, Subcommand)]
enum NodeCommand {
    Gateway {
        #[arg(long = "impl", value_enum)]
        implementation: Implementation,
        #[arg(long)]
        listen: String,
        #[arg(long, default_value_t = 1000)]
        heartbeat_ms: u64,
    },
    Clients {
        #[arg(long = "impl", value_enum)]
        implementation: Implementation,
        #[arg(long)]
        url: String,
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 500)]
        ramp: usize,
        #[arg(long)]
        spread_ms: Option<u64>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help and version to stdout with success, errors to stderr with 2.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if let Some(filter) = &cli.log {
        if let Err(e) = logs::init(filter) {
            eprintln!("tether: --log {e}");
            return ExitCode::from(2);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tether: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run(cli.command));
    // Not waiting for blocking tasks: one may be reading a stdin that never ends, and the
    // command is done.
    runtime.shutdown_background();
    code
}

async fn run(command: Commands) -> ExitCode {
    let outcome: Result<(), String> = match command {
        Commands::Connect(args) => {
            return match connect::run(args).await {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(failure) => {
                    eprintln!("tether connect: {}", failure.message);
                    ExitCode::from(if failure.usage { 2 } else { 1 })
                }
            };
        }
        Commands::Gateway(args) => {
            // Flags that cannot work are bad arguments, like clap's own (exit 2).
            if let Err(e) = args.faults().and_then(|_| args.config()) {
                eprintln!("tether gateway: {e}");
                return ExitCode::from(2);
            }
            gateway::run(args).await
        }
        Commands::Demo { seed } => {
            return match demo::run(seed).await {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("tether demo: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Commands::Bench { which } => match which {
            BenchCommand::Echo {
                runtime: EchoRuntime::Tokio,
            } => bench::echo::echo().await.map(drop),
            // smol runs on threads of its own, away from this command's tokio runtime.
            BenchCommand::Echo {
                runtime: EchoRuntime::Smol,
            } => tokio::task::spawn_blocking(bench::echo_smol::echo)
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map(drop)),
            BenchCommand::Scale { sessions } => bench::capacity::scale(&sessions)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            BenchCommand::Storm {
                sessions,
                spread_ms,
            } => bench::capacity::storm(sessions, spread_ms)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
        },
        Commands::BenchNode { node } => match node {
            NodeCommand::Gateway {
                implementation,
                listen,
                heartbeat_ms,
            } => bench::node::gateway(implementation, &listen, Duration::from_millis(heartbeat_ms))
                .await
                .map_err(|e| e.to_string()),
            NodeCommand::Clients {
                implementation,
                url,
                count,
                ramp,
                spread_ms,
            } => bench::node::clients(
                implementation,
                url,
                count,
                ramp,
                spread_ms.map(Duration::from_millis),
            )
            .await
            .map_err(|e| e.to_string()),
        },
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tether: {e}");
            ExitCode::FAILURE
        }
    }
}
