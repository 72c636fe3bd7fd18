//! `rq suspend` / `rq resume` while running: checked between jobs, as RQ does (at most once
//! per [`CHECK_INTERVAL`], so the check costs nothing per job under load).

use std::time::Duration;

use super::context::WorkerContext;
use crate::store::worker_record::{is_suspended, set_state};

/// How often the worker looks at `rq:suspended` between jobs (RQ polls once a second while
/// suspended).
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What a suspension check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suspension {
    /// Not suspended: go on.
    Running,
    /// Suspended in burst mode: the worker quits, as `rq worker --burst` does.
    QuitBurst,
    /// Was suspended, now resumed (or a shutdown was requested meanwhile).
    Resumed,
}

/// Checks `rq:suspended`; while it is set (and not in burst mode), runs `before_waiting`
/// (the dequeuer ends its blocking pops: no job may be taken while suspended), shows state
/// `suspended` and waits, polling every second, until `rq resume` or a shutdown request.
pub async fn check(
    ctx: &WorkerContext,
    before_waiting: impl std::future::Future<Output = ()>,
) -> Suspension {
    let mut conn = ctx.conn.clone();
    match is_suspended(&mut conn, &ctx.keys).await {
        Ok(false) => return Suspension::Running,
        Ok(true) => {}
        Err(e) => {
            tracing::warn!(error = %e, "could not check for suspension");
            return Suspension::Running;
        }
    }
    if ctx.config.burst {
        tracing::info!(
            "Worker {}: suspended in burst mode, quitting",
            ctx.identity.name
        );
        return Suspension::QuitBurst;
    }
    tracing::info!(
        "Worker {}: suspended, run `rq resume` to resume",
        ctx.identity.name
    );
    before_waiting.await;
    loop {
        if let Err(e) = set_state(&mut conn, &ctx.keys, &ctx.identity.name, "suspended").await {
            tracing::warn!(error = %e, "could not record state suspended");
        }
        tokio::select! {
            _ = tokio::time::sleep(CHECK_INTERVAL) => {}
            _ = ctx.shutdown.warm().cancelled() => break,
        }
        if let Ok(false) = is_suspended(&mut conn, &ctx.keys).await {
            break;
        }
    }
    let state = if ctx.running.is_empty() {
        "idle"
    } else {
        "busy"
    };
    if let Err(e) = set_state(&mut conn, &ctx.keys, &ctx.identity.name, state).await {
        tracing::warn!(error = %e, "could not record the worker state");
    }
    tracing::info!("Worker {}: resuming", ctx.identity.name);
    Suspension::Resumed
}
