//! RQ's scheduler (`rq/scheduler.py: RQScheduler`), run by `rqw worker --with-scheduler`:
//! moves the due jobs of `rq:scheduled:<q>` (`enqueue_at`, `enqueue_in`, retry intervals) to
//! their queues, for the queues whose scheduler lock it holds.
//!
//! Cadence, as `RQScheduler.work` with `interval=1`: every second one script call acquires
//! or refreshes the held locks (TTL 61 = interval + 60) and the `rq:scheduler:<name>` hash
//! (the heartbeat), then one call per held queue moves up to 1000 due jobs. Locks not held are
//! tried again every `--maintenance-interval`, at most every 120 s ([`lock_retry_period`]:
//! RQ's worker retries from its maintenance, its scheduler process every 120 s,
//! `DEFAULT_SCHEDULER_FALLBACK_PERIOD`); a lock found in another scheduler's hands is dropped. On shutdown the locks still ours are
//! released and the hash deleted. See [`crate::duties`] for how this interoperates with rq
//! 2.0.0's and 2.12+'s Python schedulers.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::context::DutyContext;
use crate::error::StoreError;
use crate::protocol::job_record::DEFAULT_JOB_TIMEOUT_SECS;
use crate::protocol::timestamp::RqTimestamp;
use crate::store::duties::{
    acquire_or_refresh, move_scheduled, release_locks, LockOutcome, Moved, QueueCall,
};

/// Seconds between scheduler passes (`RQScheduler(interval=1)`).
pub const SCHEDULER_INTERVAL: Duration = Duration::from_secs(1);
/// TTL of the locks and of the scheduler hash (`interval + 60`).
pub const SCHEDULER_LOCK_TTL: u64 = 61;
/// Longest wait before trying again for locks held by others
/// (`DEFAULT_SCHEDULER_FALLBACK_PERIOD`, how often RQ's scheduler process retries).
pub const LOCK_RETRY_PERIOD: Duration = Duration::from_secs(120);

/// How long to wait before trying again for locks held by others: `--maintenance-interval`
/// (RQ's worker retries from its maintenance, when its scheduler holds no lock), but never
/// longer than [`LOCK_RETRY_PERIOD`] (RQ's scheduler process, when it holds some). So a dead
/// scheduler's lock is retaken within one of these after it expires, and never later than
/// RQ would with its defaults.
pub fn lock_retry_period(maintenance_interval: u64) -> Duration {
    Duration::from_secs(maintenance_interval).min(LOCK_RETRY_PERIOD)
}
/// Most due jobs moved per queue and pass (`get_jobs_to_schedule(chunk_size=1000)`).
pub const MOVE_BATCH: u64 = 1000;

/// One scheduler's state: its name and the locks it holds.
struct Scheduler {
    /// `uuid4().hex`, as RQ names schedulers: the value of the locks it holds.
    name: String,
    /// When it started (`created_at` of its hash).
    created_at: RqTimestamp,
    /// Queues whose lock is ours, in the worker's queue order.
    held: Vec<String>,
    /// When locks were last tried for (`lock_acquisition_time`).
    last_attempt: Option<tokio::time::Instant>,
}

impl Scheduler {
    fn new() -> Self {
        Self {
            name: uuid::Uuid::new_v4().simple().to_string(),
            created_at: RqTimestamp::now(),
            held: Vec::new(),
            last_attempt: None,
        }
    }

    /// `RQScheduler.to_dict`.
    fn hash_fields(&self, ctx: &DutyContext, now: RqTimestamp) -> Vec<(&'static str, String)> {
        vec![
            ("name", self.name.clone()),
            ("hostname", ctx.hostname.clone()),
            ("pid", ctx.pid.to_string()),
            ("queues", ctx.queues.join(",")),
            ("created_at", self.created_at.rq_format()),
            ("last_heartbeat", now.rq_format()),
        ]
    }

    /// `should_reacquire_locks`.
    fn should_try_all(&self, ctx: &DutyContext) -> bool {
        self.held.len() < ctx.queues.len()
            && self
                .last_attempt
                .is_none_or(|at| at.elapsed() >= lock_retry_period(ctx.maintenance_interval))
    }

    /// Acquires free locks (every queue) or refreshes held ones (the heartbeat), and keeps
    /// `held` in step with what Redis says.
    async fn lock(&mut self, ctx: &DutyContext) -> Result<(), StoreError> {
        let try_all = self.should_try_all(ctx);
        let queues = if try_all {
            ctx.queues.clone()
        } else {
            self.held.clone()
        };
        let keys: Vec<String> = queues.iter().map(|q| ctx.keys.scheduler_lock(q)).collect();
        let now = RqTimestamp::now();
        let mut conn = ctx.conn.clone();
        let outcomes = acquire_or_refresh(
            &mut conn,
            &self.name,
            SCHEDULER_LOCK_TTL,
            &ctx.keys.scheduler(&self.name),
            &self.hash_fields(ctx, now),
            &keys,
        )
        .await?;
        if try_all {
            self.last_attempt = Some(tokio::time::Instant::now());
        }
        let mut held = Vec::new();
        for (queue, outcome) in queues.into_iter().zip(outcomes) {
            let was_held = self.held.contains(&queue);
            match outcome {
                LockOutcome::Acquired if was_held => {
                    tracing::warn!(queue = %queue, "scheduler lock had expired; re-acquired")
                }
                LockOutcome::Acquired => {
                    tracing::info!(queue = %queue, scheduler = %self.name, "acquired scheduler lock for {queue}")
                }
                LockOutcome::Taken if was_held => {
                    tracing::warn!(queue = %queue, "scheduler lock for {queue} was taken over by another scheduler")
                }
                LockOutcome::Taken if try_all => {
                    tracing::debug!(queue = %queue, "scheduler lock for {queue} is held by another scheduler")
                }
                _ => {}
            }
            if outcome.is_held() {
                held.push(queue);
            }
        }
        self.held = held;
        Ok(())
    }

    /// Moves the due jobs of every held queue; returns how many were enqueued.
    async fn move_due(&mut self, ctx: &DutyContext) -> u64 {
        let mut total = 0;
        let mut lost = Vec::new();
        for queue in &self.held {
            let call = QueueCall {
                prefix: ctx.keys.prefix(),
                queue,
                now: RqTimestamp::now(),
                default_timeout: DEFAULT_JOB_TIMEOUT_SECS,
                limit: MOVE_BATCH,
            };
            let mut conn = ctx.conn.clone();
            let lock_key = ctx.keys.scheduler_lock(queue);
            match move_scheduled(&mut conn, &call, &lock_key, &self.name).await {
                Ok(Some(Moved { enqueued, dropped })) => {
                    if enqueued > 0 {
                        tracing::info!(queue = %queue, jobs = enqueued, "scheduler enqueued {enqueued} due job(s) on {queue}");
                    }
                    if dropped > 0 {
                        tracing::warn!(queue = %queue, entries = dropped, "scheduled registry held ids of deleted jobs; removed");
                    }
                    total += enqueued;
                }
                Ok(None) => {
                    tracing::warn!(queue = %queue, "scheduler lock for {queue} is no longer ours; not moving its jobs");
                    lost.push(queue.clone());
                }
                Err(e) => {
                    tracing::warn!(queue = %queue, error = %e, "could not move due scheduled jobs")
                }
            }
        }
        self.held.retain(|q| !lost.contains(q));
        total
    }

    /// Releases the locks still ours and deletes the hash.
    async fn release(&mut self, ctx: &DutyContext) -> Result<u64, StoreError> {
        let keys: Vec<String> = self
            .held
            .iter()
            .map(|q| ctx.keys.scheduler_lock(q))
            .collect();
        let mut conn = ctx.conn.clone();
        let released = release_locks(
            &mut conn,
            &self.name,
            &ctx.keys.scheduler(&self.name),
            &keys,
        )
        .await?;
        self.held.clear();
        Ok(released)
    }
}

/// Runs the scheduler until `stop` is cancelled, then releases its locks.
pub async fn run_scheduler(ctx: Arc<DutyContext>, stop: CancellationToken) {
    let mut scheduler = Scheduler::new();
    tracing::info!(
        scheduler = %scheduler.name,
        "Scheduler for {} started", ctx.queues.join(", ")
    );
    let mut ticker = tokio::time::interval(SCHEDULER_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        match scheduler.lock(&ctx).await {
            Ok(()) => {
                scheduler.move_due(&ctx).await;
            }
            // Without a confirmed lock this pass moves nothing; the next one tries again.
            Err(e) => tracing::warn!(error = %e, "scheduler heartbeat failed"),
        }
    }
    tracing::info!(
        "Scheduler stopping, releasing locks for {}",
        scheduler.held.join(", ")
    );
    if let Err(e) = scheduler.release(&ctx).await {
        tracing::warn!(error = %e, "could not release the scheduler locks; they expire within {SCHEDULER_LOCK_TTL} s");
    }
}

/// One scheduler pass, as `rq worker --burst --with-scheduler` makes before taking jobs:
/// acquires the free locks, moves the due jobs of those queues, releases the locks. Returns
/// the number of jobs enqueued.
pub async fn scheduler_pass(ctx: &DutyContext) -> Result<u64, StoreError> {
    let mut scheduler = Scheduler::new();
    scheduler.lock(ctx).await?;
    if scheduler.held.is_empty() {
        tracing::info!("every scheduler lock is held by another scheduler; no scheduler pass");
        return Ok(0);
    }
    let moved = scheduler.move_due(ctx).await;
    scheduler.release(ctx).await?;
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_are_retried_every_maintenance_interval_at_most_every_120_s() {
        assert_eq!(lock_retry_period(1), Duration::from_secs(1));
        assert_eq!(lock_retry_period(60), Duration::from_secs(60));
        // The default interval (600 s): RQ's scheduler fallback period.
        assert_eq!(lock_retry_period(600), LOCK_RETRY_PERIOD);
    }
}
