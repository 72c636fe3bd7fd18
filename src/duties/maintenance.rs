//! RQ's maintenance (`BaseWorker.run_maintenance_tasks` -> `clean_registries`): a first pass
//! at start, then one every `--maintenance-interval` seconds (600). Per queue, under RQ's lock
//! `rq:clean_registries:<q>` (a queue whose lock another worker holds is skipped, so Python
//! workers and rqw never clean the same queue at once). RQ takes it with `SET NX EX 899` and
//! never refreshes it, so a worker killed inside a pass blocks that queue's recovery for 15
//! minutes; rqw takes it as a lease instead: `SET <token> NX EX <ttl>` with a short TTL
//! ([`lease_ttl`]: the interval, within 5..=60 s), refreshed while the pass runs, and released
//! with a compare-and-delete at its end. Python workers, which only `SET NX`, honour it.
//! After a pass that cleaned a queue to the end, rqw sets its own marker
//! `rq:rqw:cleaned:<q>` for the interval ([`hold_ttl`]); the later passes of other rqw
//! workers skip a queue so marked, so a fleet cleans each queue about once per interval, not
//! once per replica (RQ's never-released 899 s lock has a Python fleet do the same). A
//! worker's first pass (and a burst pass) ignores markers, so a worker started after another
//! was killed cleans at once; Python workers never see the marker. Markers are released at
//! shutdown:
//!
//! 1. expired FinishedJobRegistry entries pruned;
//! 2. abandoned jobs (StartedJobRegistry members whose score expired: their worker died)
//!    retried or failed (`recover.lua`); this worker's own running executions are skipped;
//! 3. expired FailedJobRegistry entries pruned;
//! 4. rq 3.0's `rq:ready:<q>` leftovers enqueued;
//! 5. dead worker keys removed from `rq:workers:<q>` and `rq:workers`;
//! 6. ids stranded in `rq:queue:<q>:intermediate` failed (or retried) once first seen more
//!    than a minute ago.
//!
//! Not done (as rq 2.12+): 2.0.0's expiry of deferred jobs (2.12+ scores deferred entries by
//! creation time, so 2.0.0's rule would fail every deferred job of a 2.12+ producer). Not
//! done either: rq 3.0's rate-limit slot cleanup and group pruning (Python 3.0 workers do them).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::context::DutyContext;
use crate::error::StoreError;
use crate::protocol::job_record::DEFAULT_JOB_TIMEOUT_SECS;
use crate::protocol::timestamp::RqTimestamp;
use crate::store::duties::{
    clean_workers, enqueue_ready, expired_members, lease_acquire, lease_refresh, lease_release,
    marker_exists, marker_set, prune_expired, recover, QueueCall, RecoverRequest, Recovered,
    Recovery,
};

/// Shortest maintenance lease (seconds).
pub const MIN_LEASE_TTL: u64 = 5;
/// Longest maintenance lease (seconds).
pub const MAX_LEASE_TTL: u64 = 60;
/// Seconds an id may sit in an intermediate list before it counts as stuck
/// (`IntermediateQueue.should_be_cleaned_up`).
pub const STUCK_AFTER_SECS: u64 = 60;
/// Most abandoned registry members handled per script call.
pub const ABANDONED_BATCH: usize = 500;
/// Most ready jobs enqueued per script call.
pub const READY_BATCH: u64 = 1000;
/// How long a pass in progress may continue after the worker asked its tasks to stop.
pub const PASS_GRACE: Duration = Duration::from_secs(10);
/// `exc_string` of a job failed because it sat in an intermediate list.
pub const STUCK_TEXT: &str = "Job was stuck in intermediate queue.";

/// What one pass did, summed over the queues it could lock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Queues cleaned (their lock was ours).
    pub queues_cleaned: usize,
    /// Abandoned jobs failed or retried.
    pub abandoned: Recovered,
    /// Stranded intermediate jobs failed or retried.
    pub stuck: Recovered,
    /// Ready (3.0) jobs enqueued.
    pub ready: u64,
    /// Dead worker keys removed.
    pub dead_workers: u64,
}

/// `exc_string` of an abandoned job failed by maintenance, as rq 2.12+ words it
/// (`f'Moved to FailedJobRegistry, due to AbandonedJobError, at {now()}'`).
pub fn abandoned_text(now: chrono::DateTime<Utc>) -> String {
    format!(
        "Moved to FailedJobRegistry, due to AbandonedJobError, at {}",
        now.format("%Y-%m-%d %H:%M:%S%.6f+00:00")
    )
}

/// Runs a maintenance pass now and then every `maintenance_interval` until `stop`.
/// Each completed pass marks its queues ([`hold_ttl`]), so a fleet shares one pass per queue
/// and interval; the markers are released at shutdown.
pub async fn run_maintenance(ctx: Arc<DutyContext>, stop: CancellationToken) {
    let interval = Duration::from_secs(ctx.maintenance_interval);
    let mut held: Vec<Held> = Vec::new();
    let mut first = true;
    loop {
        let done = {
            let running = pass(&ctx, &mut held, true, std::mem::take(&mut first));
            tokio::pin!(running);
            tokio::select! {
                _ = &mut running => true,
                _ = stop.cancelled() => {
                    // Let the pass finish (each step is short) so no lock is left behind.
                    if tokio::time::timeout(PASS_GRACE, running).await.is_err() {
                        tracing::warn!("maintenance pass cut short at shutdown");
                    }
                    false
                }
            }
        };
        if done {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(interval) => continue,
            }
        }
        release_held(&ctx, &mut held, None).await;
        return;
    }
}

/// TTL of this worker's maintenance lease for a `--maintenance-interval` of `interval` s:
/// the interval, within 5..=60 s. Refreshed every third of it while the pass runs, released
/// when it ends; a worker killed inside a pass leaves the queue to the others at most this
/// long (RQ's own lock, `SET NX EX 899` and never refreshed, would hold it 15 minutes).
pub fn lease_ttl(interval: u64) -> u64 {
    interval.clamp(MIN_LEASE_TTL, MAX_LEASE_TTL)
}

/// How long the marker of a completed pass lives: until the worker's own next pass is due
/// (the interval; it releases its own marker just before that pass), so the later passes of
/// the other rqw workers of a fleet skip that queue meanwhile and the fleet cleans each queue
/// about once per interval, as RQ's never-released `SET NX EX 899` lock has a Python fleet
/// do. A pass cut short sets none.
pub fn hold_ttl(interval: u64) -> u64 {
    interval.max(1)
}

/// A marker set after a completed pass: its key and this pass's token.
type Held = (String, String);

/// One maintenance pass over the worker's queues, releasing every lock at its end (burst).
/// Like a worker's first pass, it ignores the markers of other rqw workers.
pub async fn maintenance_pass(ctx: &DutyContext) -> PassReport {
    pass(ctx, &mut Vec::new(), false, true).await
}

/// One pass; with `keep`, each queue cleaned to the end gets the marker
/// `rq:rqw:cleaned:<q>` for [`hold_ttl`], noted in `held` (this worker's own is released
/// before its next pass of that queue, and at shutdown). Without `first`, a queue another
/// rqw marked is skipped; a worker's first pass (or a burst one) cleans every queue whose
/// lock is free, so a worker started to replace a killed one recovers its jobs at once.
async fn pass(ctx: &DutyContext, held: &mut Vec<Held>, keep: bool, first: bool) -> PassReport {
    let mut report = PassReport::default();
    let ttl = lease_ttl(ctx.maintenance_interval);
    for queue in &ctx.queues {
        let lock = ctx.keys.clean_registries(queue);
        let mut conn = ctx.conn.clone();
        release_held(ctx, held, Some(&ctx.keys.cleaned_marker(queue))).await;
        // A fresh token per pass: only this pass refreshes or releases its lease.
        let owner = format!("rqw:{}:{}", ctx.worker_name, uuid::Uuid::new_v4().simple());
        let marker = ctx.keys.cleaned_marker(queue);
        if !first {
            match marker_exists(&mut conn, &marker).await {
                Ok(true) => {
                    tracing::debug!(queue = %queue, "{queue} was cleaned by another rqw less than an interval ago; skipped");
                    continue;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::debug!(queue = %queue, error = %e, "could not read the maintenance marker")
                }
            }
        }
        match lease_acquire(&mut conn, &lock, &owner, ttl).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(queue = %queue, "another worker is cleaning {queue}; skipped");
                continue;
            }
            Err(e) => {
                // Had the SET run and its reply been lost, the lease expires within `ttl`.
                tracing::warn!(queue = %queue, error = %e, "could not take the maintenance lock");
                continue;
            }
        }
        tracing::info!(
            "Worker {}: cleaning registries for queue: {queue}",
            ctx.worker_name
        );
        match hold_lease(
            ctx,
            &lock,
            &owner,
            ttl,
            clean_queue(ctx, queue, &mut report),
        )
        .await
        {
            Some(Ok(())) => {
                if keep {
                    let hold = hold_ttl(ctx.maintenance_interval);
                    match marker_set(&mut conn, &marker, &owner, hold).await {
                        Ok(()) => held.push((marker, owner.clone())),
                        Err(e) => {
                            tracing::debug!(queue = %queue, error = %e, "could not set the maintenance marker")
                        }
                    }
                }
            }
            Some(Err(e)) => {
                tracing::warn!(queue = %queue, error = %e, "maintenance of {queue} stopped early")
            }
            None => {
                tracing::warn!(queue = %queue, "maintenance lock of {queue} lost (expired); pass stopped")
            }
        }
        report.queues_cleaned += 1;
        if let Err(e) = lease_release(&mut conn, &lock, &owner).await {
            tracing::warn!(queue = %queue, error = %e, "could not release the maintenance lock; it expires in {ttl} s");
        }
    }
    report
}

/// Releases this worker's markers (all, or only `only`), each only if it still holds its
/// token (compare-and-delete).
async fn release_held(ctx: &DutyContext, held: &mut Vec<Held>, only: Option<&str>) {
    let mut conn = ctx.conn.clone();
    let mut kept = Vec::new();
    for (lock, owner) in held.drain(..) {
        if only.is_some_and(|l| l != lock) {
            kept.push((lock, owner));
        } else if let Err(e) = lease_release(&mut conn, &lock, &owner).await {
            tracing::debug!(error = %e, "could not release a maintenance marker; it expires by itself");
        }
    }
    *held = kept;
}

/// Runs `work` while refreshing the lease every third of its TTL. `None` when the lease was
/// found not ours any more (the work is then dropped between two of its steps).
async fn hold_lease<T>(
    ctx: &DutyContext,
    lock: &str,
    owner: &str,
    ttl: u64,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::pin!(work);
    let mut ticker = tokio::time::interval(Duration::from_secs(ttl) / 3);
    ticker.tick().await; // the first tick is immediate: the lease was just taken
    loop {
        tokio::select! {
            done = &mut work => return Some(done),
            _ = ticker.tick() => {
                let mut conn = ctx.conn.clone();
                match lease_refresh(&mut conn, lock, owner, ttl).await {
                    Ok(true) => {}
                    Ok(false) => return None,
                    // A lost reply or an outage: the next tick tries again.
                    Err(e) => tracing::debug!(error = %e, "could not refresh the maintenance lock"),
                }
            }
        }
    }
}

/// `clean_registries` + `clean_worker_registry` + `IntermediateQueue.cleanup` for one queue.
async fn clean_queue(
    ctx: &DutyContext,
    queue: &str,
    report: &mut PassReport,
) -> Result<(), StoreError> {
    let mut conn = ctx.conn.clone();
    let keys = &ctx.keys;
    let now = RqTimestamp::now();
    let call = QueueCall {
        prefix: keys.prefix(),
        queue,
        now,
        default_timeout: DEFAULT_JOB_TIMEOUT_SECS,
        limit: READY_BATCH,
    };
    prune_expired(&mut conn, &keys.finished(queue), now).await?;

    let abandoned = recover_abandoned(ctx, &call).await?;
    if abandoned.failed + abandoned.retried > 0 {
        tracing::warn!(queue = %queue, failed = abandoned.failed, retried = abandoned.retried, "abandoned jobs of dead workers recovered");
    }
    add(&mut report.abandoned, abandoned);

    prune_expired(&mut conn, &keys.failed(queue), now).await?;

    let ready = enqueue_ready(&mut conn, &call).await?;
    if ready.enqueued > 0 {
        tracing::info!(queue = %queue, jobs = ready.enqueued, "enqueued dependents left in the ready registry");
    }
    report.ready += ready.enqueued;

    report.dead_workers += clean_workers(&mut conn, keys.prefix(), queue).await?;

    let stuck = recover(
        &mut conn,
        &RecoverRequest {
            call,
            recovery: Recovery::Stuck {
                after_secs: STUCK_AFTER_SECS,
            },
            result_worker: &ctx.worker_name,
            count_worker: &ctx.worker_name,
            exc_string: STUCK_TEXT,
        },
    )
    .await?;
    if stuck.failed + stuck.retried > 0 {
        tracing::warn!(queue = %queue, failed = stuck.failed, retried = stuck.retried, "jobs stuck in the intermediate queue recovered");
    }
    add(&mut report.stuck, stuck);
    Ok(())
}

/// `StartedJobRegistry.cleanup`, in batches, leaving this worker's own executions alone (a
/// lapsed heartbeat of a job still running here does not make it abandoned), under either
/// member form start.lua writes: `<id>:<execution id>`, or the plain id of an rq 1.x job.
async fn recover_abandoned(
    ctx: &DutyContext,
    call: &QueueCall<'_>,
) -> Result<Recovered, StoreError> {
    let mut conn = ctx.conn.clone();
    let own = (ctx.own_executions)();
    let expired = expired_members(&mut conn, &ctx.keys.started(call.queue), call.now).await?;
    let members: Vec<String> = expired.into_iter().filter(|m| !own.contains(m)).collect();
    let mut total = Recovered::default();
    let text = abandoned_text(Utc::now());
    for batch in members.chunks(ABANDONED_BATCH) {
        let done = recover(
            &mut conn,
            &RecoverRequest {
                call: *call,
                recovery: Recovery::Abandoned { members: batch },
                result_worker: "",
                count_worker: "",
                exc_string: &text,
            },
        )
        .await?;
        add(&mut total, done);
    }
    Ok(total)
}

fn add(total: &mut Recovered, more: Recovered) {
    total.failed += more.failed;
    total.retried += more.retried;
    total.removed += more.removed;
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn abandoned_text_matches_rq() {
        let at = Utc.with_ymd_and_hms(2026, 11, 28, 13, 37, 7).unwrap()
            + chrono::Duration::microseconds(254_718);
        assert_eq!(
            abandoned_text(at),
            "Moved to FailedJobRegistry, due to AbandonedJobError, at 2026-11-28 13:37:07.254718+00:00"
        );
    }

    #[test]
    fn the_lease_follows_the_interval_within_bounds() {
        assert_eq!(lease_ttl(1), MIN_LEASE_TTL);
        assert_eq!(lease_ttl(30), 30);
        assert_eq!(lease_ttl(600), MAX_LEASE_TTL);
    }
}
