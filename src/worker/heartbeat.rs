//! The heartbeat task: refreshes the worker key and every running execution in one script
//! call, every tick, as RQ's worker loop and `maintain_heartbeats` do. One task per worker,
//! whatever the concurrency (heartbeats are batched across jobs).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::context::WorkerContext;
use crate::protocol::timestamp::RqTimestamp;
use crate::store::scripts::heartbeat;
use crate::store::worker_record::write_birth;

/// How often to beat: the job monitoring interval, but often enough that the worker key
/// (`worker_ttl + 60`) never lapses.
pub fn period(job_monitoring_interval: u64, worker_ttl: u64) -> Duration {
    Duration::from_secs(job_monitoring_interval.min(worker_ttl / 3).max(1))
}

/// Beats until `stop` is cancelled.
pub async fn run(ctx: Arc<WorkerContext>, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(period(
        ctx.config.job_monitoring_interval,
        ctx.config.worker_ttl,
    ));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // the first tick is immediate; registration has just written everything
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        beat(&ctx).await;
    }
}

/// One heartbeat; re-registers the worker if its hash vanished (expired during an outage).
pub async fn beat(ctx: &WorkerContext) {
    let (rows, working_time) = ctx
        .running
        .heartbeat_rows(ctx.config.job_monitoring_interval);
    let now = RqTimestamp::now();
    let mut conn = ctx.conn.clone();
    match heartbeat(
        &mut conn,
        ctx.keys.prefix(),
        &ctx.identity.name,
        now,
        ctx.worker_key_ttl(),
        working_time,
        &rows,
    )
    .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!("worker key had vanished; registering again");
            if let Err(e) = write_birth(
                &mut conn,
                &ctx.keys,
                &ctx.identity,
                ctx.worker_key_ttl(),
                now,
            )
            .await
            {
                tracing::warn!(error = %e, "re-registration failed");
            }
        }
        Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
    }
}
