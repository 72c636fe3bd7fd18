//! The `rqw` binary: command line -> configuration -> worker run, with signal handling.

use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;

use rqw::cli::{Cli, Command, WorkerArgs};
use rqw::handlers::recording::RecordingConfig;
use rqw::handlers::{native_paths, HandlerOptions};
use rqw::worker::Shutdown;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Handlers {
            enable_testing_handlers,
            python,
        } => {
            for path in native_paths(enable_testing_handlers) {
                match python {
                    Some(_) => println!("{path}\tnative"),
                    None => println!("{path}"),
                }
            }
            if python.is_some() {
                println!("*\tpython");
            }
            ExitCode::SUCCESS
        }
        Command::Worker(args) => run_worker(*args),
        Command::Info(args) => {
            run_ops(async move { rqw::ops::info::run(args.into_options()?).await })
        }
        Command::Inspect(args) => {
            run_ops(async move { rqw::ops::inspect::run(args.into_options()?).await })
        }
        Command::Healthcheck(args) => run_ops(rqw::ops::healthcheck::run(args)),
    }
}

/// Runs a read-only operator command on a small runtime; errors go to stderr, exit 1.
fn run_ops(command: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rqw: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rqw: {}", rqw::error::chain_text(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn run_worker(args: WorkerArgs) -> ExitCode {
    if let Err(e) = rqw::logging::init(args.log_format, &args.logging_level) {
        eprintln!("rqw: {e}");
        return ExitCode::from(2);
    }
    std::panic::set_hook(Box::new(|info| tracing::error!(panic = %info, "panic")));
    let enable_testing_handlers = args.enable_testing_handlers;
    let recording = match RecordingConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let handler_options = HandlerOptions {
        recording,
        enable_testing_handlers,
    };
    let threads = args.threads;
    let config = match args.into_config(std::env::var("RQ_QUEUES").ok()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match worker_runtime(threads) {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let shutdown = Shutdown::new();
        let stop_signals = CancellationToken::new();
        let signals = tokio::spawn(shutdown.clone().listen_for_signals(stop_signals.clone()));
        let result = rqw::run::run(config, handler_options, shutdown).await;
        stop_signals.cancel();
        match signals.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "signal handling failed"),
            Err(e) => tracing::warn!(error = %e, "signal task failed"),
            Ok(Ok(())) => {}
        }
        match result {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// The worker's runtime: one thread for `--threads 1`, else a multi-threaded one (`None`: one
/// thread per core).
fn worker_runtime(threads: Option<u16>) -> std::io::Result<tokio::runtime::Runtime> {
    match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(n))
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    }
}
