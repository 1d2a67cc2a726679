//! `throng`: messaging as a service in one binary.

mod amqp;
mod auth;
mod config;
mod http;
mod mesh;
mod mqtt;
mod recovery;
mod serve;
mod socket_buffers;
mod wills;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "throng",
    version,
    about = "Throng: messaging as a service (AMQP 1.0)"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Run a node: standalone (router and broker in one process), or a router of a mesh.
    Serve {
        /// TOML config file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Where data is kept (default ./data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// AMQP listener address, e.g. 127.0.0.1:0.
        #[arg(long)]
        amqp: Option<String>,
        /// MQTT listener address.
        #[arg(long)]
        mqtt: Option<String>,
        /// HTTP listener address.
        #[arg(long)]
        http: Option<String>,
        /// Start even if the journal is corrupt in the middle: skip the damaged records
        /// (each reported). Without it the node refuses to start.
        #[arg(long)]
        skip_corrupt_journal: bool,
        /// This node's id in a mesh (unique in it).
        #[arg(long)]
        node_id: Option<String>,
        /// standalone (default without a mesh), router (default with one), broker, edge.
        #[arg(long)]
        role: Option<String>,
        /// Inter-router listener address: other nodes of the mesh connect here.
        #[arg(long)]
        inter_router: Option<String>,
        /// A node to connect to, HOST:PORT or HOST:PORT,COST (repeatable).
        #[arg(long)]
        connect: Vec<String>,
    },
    /// Measure an AMQP 1.0 or MQTT server: throughput, latency, server CPU per message,
    /// idle connections.
    Bench(throng_bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("THRONG_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // colour codes only for a terminal: logs in files and pipes stay greppable
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Commands::Serve {
            config,
            data_dir,
            amqp,
            mqtt,
            http,
            skip_corrupt_journal,
            node_id,
            role,
            inter_router,
            connect,
        } => {
            let cfg = match config {
                Some(path) => match config::Config::load(&path) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("throng: {e}");
                        return ExitCode::from(2);
                    }
                },
                None => config::Config::default(),
            };
            let Some(runtime) = runtime(cfg.worker_threads.map(std::num::NonZeroUsize::get)) else {
                return ExitCode::FAILURE;
            };
            runtime.block_on(serve::serve(
                cfg,
                serve::ServeOverrides {
                    data_dir,
                    amqp,
                    mqtt,
                    http,
                    skip_corrupt_journal,
                    mesh: mesh::settings::MeshFlags {
                        node_id,
                        role,
                        inter_router,
                        connect,
                    },
                },
            ))
        }
        Commands::Bench(args) => match runtime(None) {
            Some(runtime) => runtime.block_on(throng_bench::run(args)),
            None => return ExitCode::FAILURE,
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("throng: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Locks a mutex, taking the value over from a thread that panicked while holding it
/// (what it guards stays consistent between statements).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The multi-threaded runtime, with `workers` threads (default: tokio's, one per core,
/// or `TOKIO_WORKER_THREADS`).
fn runtime(workers: Option<usize>) -> Option<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    // named, so `top -H` and /proc tell them apart (blocking-pool threads share the name)
    b.thread_name("throng-worker");
    if let Some(n) = workers {
        b.worker_threads(n);
    }
    match b.enable_all().build() {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("throng: cannot start the runtime: {e}");
            None
        }
    }
}

/// jemalloc: messages are allocated on one worker thread and freed on another, which
/// glibc's malloc serves with contended arena locks (see docs/BENCHMARKS.md, MQTT).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
