//! The runtime: dequeue -> execute -> record, with heartbeats and shutdown.
//!
//! ```text
//!  Worker::start
//!   ├─ register worker (rq:worker:<name>, rq:workers, rq:workers:<q>)
//!   ├─ heartbeat task ─────────── every tick: worker key + all running executions
//!   ├─ unblock task ───────────── on shutdown: CLIENT UNBLOCK the pending BLMOVE
//!   (the top-level run, crate::run, starts the duties beside the worker here)
//!  Worker::work
//!   ├─ loop: Dequeuer::next ───── start.lua: queue -> started, atomic (BLMOVE waits: one per queue)
//!   │          └─ spawn run_job ── one straight path per job, each stage entered once:
//!   │               prepare ─────── check the hash, decode data and meta, pick the handler
//!   │                               (native, Python horse) or end it (failure, forward)
//!   │               run ─────────── timeout, cancel (stop/kill/shutdown), panic caught
//!   │               callbacks ───── on_success / on_failure / on_stopped, as RQ's perform_job
//!   │               decide ──────── protocol::outcome (pure): finished/failed/stopped/retry
//!   │               finish ──────── the Outcome to the finisher
//!   ├─ finisher task ──────────── finish.lua: every outcome ready at once in one call
//!   └─ drain running jobs, stop the horses
//!  Worker::finish ─────────────── stop tasks, register death
//! ```
//! Every task is owned by the `JoinSet` of [`Worker`] and stopped by `finish`. The worker
//! does not know the duties: the top-level run starts them beside it.

pub mod callbacks;
pub mod commands;
pub mod context;
pub mod dequeue;
pub mod execute;
pub mod finisher;
pub mod heartbeat;
pub mod measures;
pub mod outcome;
pub mod prepare;
pub mod python;
pub mod running;
pub mod shutdown;
pub mod startup;
pub mod suspension;
pub mod waiters;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::WorkerConfig;
use crate::error::WorkerError;
use crate::handlers::{native_registry, HandlerOptions};
use crate::keys::Keys;
use crate::protocol::timestamp::RqTimestamp;
use crate::store::connection::Endpoint;
use crate::store::queue_wait::unblock;
use crate::store::worker_record::{
    client_address, is_suspended, mark_shutdown_requested, register, register_death, WorkerIdentity,
};
use context::WorkerContext;
use dequeue::Dequeuer;
use running::RunningJobs;
pub use shutdown::Shutdown;

/// How often a worker that is stopping tries to look up a start call whose reply was lost
/// (one second apart).
const SHUTDOWN_RECONCILE_ATTEMPTS: u32 = 10;

/// What a worker run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Jobs started.
    pub jobs_started: u64,
}

/// A registered worker with its background tasks running (heartbeat, commands, shutdown
/// unblock, metrics server), ready to take jobs: [`Worker::start`], then [`Worker::work`],
/// then [`Worker::finish`]. The top-level run (`crate::run`) starts the duties beside it,
/// between `start` and `work`.
pub struct Worker {
    ctx: Arc<WorkerContext>,
    dequeuer: Dequeuer,
    background: JoinSet<()>,
    stop_tasks: CancellationToken,
}

impl Worker {
    /// Connects (waiting for Redis), registers the worker and starts its background tasks.
    /// `Ok(None)` when a shutdown was requested before Redis answered.
    pub async fn start(
        config: WorkerConfig,
        handler_options: HandlerOptions,
        shutdown: Shutdown,
    ) -> Result<Option<Self>, WorkerError> {
        let redis = Endpoint::from_settings(
            &config.redis_url,
            config.sentinel.as_ref(),
            config.tls_ca_cert.as_deref(),
        )?;
        let Some(mut conn) = startup::connect(&redis, &config, &shutdown).await? else {
            return Ok(None);
        };
        let keys = Keys::default();
        if is_suspended(&mut conn, &keys).await? {
            return Err(WorkerError::Suspended);
        }
        let identity = WorkerIdentity {
            name: config.name.clone(),
            queues: config.queues.clone(),
            pid: std::process::id(),
            hostname: gethostname::gethostname().to_string_lossy().into_owned(),
            ip_address: client_address(&mut conn).await,
        };
        let handlers = native_registry(conn.clone(), handler_options);
        let horses = config.python.clone().map(|python| {
            let observer: crate::horses::pool::PoolObserver = Arc::new(|event| {
                use crate::horses::pool::PoolEvent;
                let metrics = crate::metrics::global();
                match event {
                    PoolEvent::Replaced(cause) => metrics.horse_replaced(cause.label()),
                    PoolEvent::Rss { pid, bytes } => metrics.horse_rss(pid, bytes),
                    PoolEvent::Gone { pid } => metrics.horse_gone(pid),
                }
            });
            tracing::info!(
                command = %python.command.join(" "),
                processes = python.processes,
                "functions without a native handler run in Python horses"
            );
            crate::horses::HorsePool::start(python, Some(observer))
        });
        let ctx = Arc::new(WorkerContext {
            config,
            keys,
            identity,
            handlers,
            conn,
            running: RunningJobs::default(),
            shutdown,
            horses,
        });
        let metrics_listener = match ctx.config.metrics_addr {
            Some(addr) => Some(crate::metrics::server::bind(addr).await?),
            None => None,
        };
        let mut conn = ctx.conn.clone();
        register(
            &mut conn,
            &ctx.keys,
            &ctx.identity,
            ctx.worker_key_ttl(),
            RqTimestamp::now(),
        )
        .await?;
        tracing::info!(
            worker = %ctx.identity.name,
            queues = %ctx.config.queues.join(","),
            url = %redis.describe(),
            concurrency = ctx.config.concurrency,
            handlers = ctx.handlers.paths().count(),
            "Worker {} started, listening on {}", ctx.identity.name, ctx.config.queues.join(",")
        );

        let dequeuer = Dequeuer::new(
            redis.clone(),
            ctx.keys.clone(),
            ctx.config.queues.clone(),
            ctx.config.dequeue_strategy,
            ctx.config.queue_wait,
        );
        let stop_tasks = CancellationToken::new();
        let mut background = JoinSet::new();
        background.spawn(heartbeat::run(ctx.clone(), stop_tasks.clone()));
        background.spawn(commands::listen(ctx.clone(), redis, stop_tasks.clone()));
        background.spawn(unblock_on_shutdown(
            ctx.clone(),
            dequeuer.blocking_id(),
            stop_tasks.clone(),
        ));
        if let Some(listener) = metrics_listener {
            let probe = crate::metrics::WorkerProbe {
                conn: ctx.conn.clone(),
                keys: ctx.keys.clone(),
                worker: ctx.identity.name.clone(),
                queues: ctx.config.queues.clone(),
                stale_after: heartbeat::period(
                    ctx.config.job_monitoring_interval,
                    ctx.config.worker_ttl,
                ) * crate::metrics::probe::STALE_PERIODS,
            };
            let metrics = crate::metrics::global();
            background.spawn(crate::metrics::server::serve(
                listener,
                metrics,
                probe,
                stop_tasks.clone(),
            ));
        }
        Ok(Some(Self {
            ctx,
            dequeuer,
            background,
            stop_tasks,
        }))
    }

    /// The state shared by the worker's tasks (what the top-level run builds the duties'
    /// context from).
    pub fn context(&self) -> &Arc<WorkerContext> {
        &self.ctx
    }

    /// Takes and runs jobs until burst completion, `--max-jobs`, `--max-idle-time` or
    /// shutdown, drains the running ones and stops the Python horses.
    pub async fn work(&mut self) -> RunSummary {
        let summary = work(&self.ctx, &mut self.dequeuer).await;
        if let Some(pool) = &self.ctx.horses {
            pool.shutdown().await;
        }
        summary
    }

    /// Stops the background tasks and registers the worker's death.
    pub async fn finish(mut self, summary: RunSummary) {
        let ctx = &self.ctx;
        self.stop_tasks.cancel();
        while self.background.join_next().await.is_some() {}
        let mut conn = ctx.conn.clone();
        if let Err(e) =
            register_death(&mut conn, &ctx.keys, &ctx.identity, RqTimestamp::now()).await
        {
            tracing::warn!(error = %e, "could not deregister the worker; its key expires by itself");
        }
        tracing::info!(
            executions = summary.jobs_started,
            "Worker {}: done, quitting ({} executions started: a retried job counts once per attempt)",
            ctx.identity.name,
            summary.jobs_started
        );
    }
}

/// The dequeue loop and the drain of running jobs.
async fn work(ctx: &Arc<WorkerContext>, dequeuer: &mut Dequeuer) -> RunSummary {
    let config = &ctx.config;
    let mut jobs: JoinSet<()> = JoinSet::new();
    let (finisher, finisher_task) = finisher::Finisher::start(ctx.clone());
    let mut summary = RunSummary::default();
    let mut idle_since = tokio::time::Instant::now();
    let mut error_backoff = Duration::from_millis(100);
    let mut last_suspension_check = tokio::time::Instant::now();
    loop {
        while jobs.try_join_next().is_some() {
            idle_since = tokio::time::Instant::now();
        }
        if ctx.shutdown.warm().is_cancelled() {
            break;
        }
        if last_suspension_check.elapsed() >= suspension::CHECK_INTERVAL {
            last_suspension_check = tokio::time::Instant::now();
            match suspension::check(ctx, dequeuer.disarm(ctx)).await {
                suspension::Suspension::QuitBurst => break,
                suspension::Suspension::Resumed => continue,
                suspension::Suspension::Running => {}
            }
        }
        if config
            .max_jobs
            .is_some_and(|max| summary.jobs_started >= max)
        {
            tracing::info!(
                "Worker {}: finished executing {} jobs, quitting",
                ctx.identity.name,
                summary.jobs_started
            );
            break;
        }
        if jobs.len() >= config.concurrency {
            tokio::select! {
                _ = jobs.join_next() => idle_since = tokio::time::Instant::now(),
                _ = ctx.shutdown.warm().cancelled() => {}
            }
            continue;
        }
        let wait = if config.burst {
            Duration::ZERO
        } else {
            match config.max_idle_time {
                Some(max_idle) if jobs.is_empty() => {
                    let idle = idle_since.elapsed();
                    if idle >= max_idle {
                        tracing::info!(
                            "Worker {}: idle for {:?}, quitting",
                            ctx.identity.name,
                            max_idle
                        );
                        break;
                    }
                    (max_idle - idle).min(config.dequeue_timeout())
                }
                _ => config.dequeue_timeout(),
            }
        };
        let free = config.concurrency - jobs.len();
        let max = match config.max_jobs {
            Some(max_jobs) => {
                free.min(usize::try_from(max_jobs - summary.jobs_started).unwrap_or(free))
            }
            None => free,
        };
        match dequeuer.next(ctx, wait, max).await {
            Ok(started) if !started.is_empty() => {
                error_backoff = Duration::from_millis(100);
                summary.jobs_started += started.len() as u64;
                idle_since = tokio::time::Instant::now();
                for dequeued in started {
                    jobs.spawn(execute::run_job(ctx.clone(), finisher.clone(), dequeued));
                }
            }
            Ok(_) if config.burst => {
                // Running jobs may requeue themselves (retries) or enqueue dependents.
                if jobs.join_next().await.is_none() {
                    tracing::info!("Worker {}: done, quitting (burst)", ctx.identity.name);
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?error_backoff, "could not take a job from Redis");
                tokio::select! {
                    _ = tokio::time::sleep(error_backoff) => {}
                    _ = ctx.shutdown.warm().cancelled() => {}
                }
                error_backoff = (error_backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
    // Claimed ids that could not be started or put back yet (Redis was unreachable).
    dequeuer.close(ctx).await;
    // A start whose reply was lost just before the loop ended: run what it started.
    for attempt in 1..=SHUTDOWN_RECONCILE_ATTEMPTS {
        if !dequeuer.has_pending_start() {
            break;
        }
        match dequeuer.reconcile(ctx).await {
            Ok(adopted) => {
                for dequeued in adopted {
                    jobs.spawn(execute::run_job(ctx.clone(), finisher.clone(), dequeued));
                }
            }
            Err(e) if attempt < SHUTDOWN_RECONCILE_ATTEMPTS => {
                tracing::warn!(error = %e, "cannot look up a start whose reply was lost yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "could not look up a start whose reply was lost; its jobs, if it started any, are recovered by RQ's abandoned-job handling");
            }
        }
    }
    if !jobs.is_empty() {
        let mut conn = ctx.conn.clone();
        if let Err(e) =
            mark_shutdown_requested(&mut conn, &ctx.keys, &ctx.identity.name, RqTimestamp::now())
                .await
        {
            tracing::debug!(error = %e, "could not record shutdown_requested_date");
        }
        tracing::info!(running = jobs.len(), "waiting for running jobs to finish");
    }
    let drain = async { while jobs.join_next().await.is_some() {} };
    match config.shutdown_grace {
        Some(grace) if ctx.shutdown.warm().is_cancelled() => {
            if tokio::time::timeout(grace, drain).await.is_err() {
                tracing::warn!(grace = ?grace, running = ctx.running.len(), "shutdown grace period over: cancelling the jobs still running");
                ctx.shutdown.request_force();
                while jobs.join_next().await.is_some() {}
            }
        }
        _ => drain.await,
    }
    // Every job task has ended: the finisher writes what it holds, then stops.
    drop(finisher);
    if let Err(e) = finisher_task.await {
        tracing::error!(error = %e, "the outcome batching task failed");
    }
    summary
}

/// Ends a pending blocking pop as soon as a shutdown is requested.
async fn unblock_on_shutdown(
    ctx: Arc<WorkerContext>,
    blocking_id: Arc<std::sync::atomic::AtomicI64>,
    stop: CancellationToken,
) {
    tokio::select! {
        _ = stop.cancelled() => return,
        _ = ctx.shutdown.warm().cancelled() => {}
    }
    let id = blocking_id.load(Ordering::SeqCst);
    if id != 0 {
        let mut conn = ctx.conn.clone();
        if let Err(e) = unblock(&mut conn, id).await {
            tracing::debug!(error = %e, "CLIENT UNBLOCK failed; the pending pop ends by its timeout");
        }
    }
}
