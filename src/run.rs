//! The top-level run of `rqw worker`: starts the worker, then the duties beside it (each
//! with a context of its own), and stops them in turn. Nothing else of the crate names this
//! room; it names the rooms it wires, never the command line or the operator commands.
//!
//! ```text
//!  run()
//!   ├─ Worker::start ──────────── connect, register, heartbeat/commands/unblock/metrics tasks
//!   ├─ duties::start ──────────── scheduler + maintenance tasks (burst: one pass each, now)
//!   ├─ Worker::work ───────────── take and run jobs, drain, stop the horses
//!   ├─ stop the duties ────────── cancel, join (a maintenance pass in progress may finish)
//!   └─ Worker::finish ─────────── stop the worker's tasks, register death
//! ```

use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::WorkerConfig;
use crate::duties::{self, DutyContext};
use crate::error::WorkerError;
use crate::handlers::HandlerOptions;
use crate::worker::context::WorkerContext;
use crate::worker::{RunSummary, Shutdown, Worker};

/// Runs a worker and its duties until burst completion, `--max-jobs`, `--max-idle-time` or
/// shutdown.
pub async fn run(
    config: WorkerConfig,
    handler_options: HandlerOptions,
    shutdown: Shutdown,
) -> Result<RunSummary, WorkerError> {
    let Some(mut worker) = Worker::start(config, handler_options, shutdown).await? else {
        return Ok(RunSummary::default());
    };
    let duty_context = Arc::new(duty_context(worker.context()));
    let stop_duties = CancellationToken::new();
    let mut duty_tasks = JoinSet::new();
    duties::start(&duty_context, &mut duty_tasks, &stop_duties).await;

    let summary = worker.work().await;

    stop_duties.cancel();
    while duty_tasks.join_next().await.is_some() {}
    worker.finish(summary).await;
    Ok(summary)
}

/// The duties' narrow view of a started worker.
fn duty_context(ctx: &WorkerContext) -> DutyContext {
    let running = ctx.running.clone();
    DutyContext {
        conn: ctx.conn.clone(),
        keys: ctx.keys.clone(),
        worker_name: ctx.identity.name.clone(),
        hostname: ctx.identity.hostname.clone(),
        pid: ctx.identity.pid,
        queues: ctx.config.queues.clone(),
        maintenance_interval: ctx.config.maintenance_interval,
        with_scheduler: ctx.config.with_scheduler,
        burst: ctx.config.burst,
        own_executions: Arc::new(move || running.registry_members()),
    }
}
