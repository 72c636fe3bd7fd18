//! The worker's duties beyond running jobs, as `rq worker` has them: RQ's scheduler
//! (`--with-scheduler`) and RQ's maintenance. Both speak RQ's lock protocol, so Python workers
//! and rqw share a Redis without doing the same work twice.
//!
//! - [`scheduler`]: due jobs of `rq:scheduled:<q>` onto their queues, under
//!   `rq:scheduler-lock:<q>`.
//! - [`maintenance`]: abandoned and stranded jobs, expired registry entries, dead worker keys,
//!   3.0 ready leftovers, under `rq:clean_registries:<q>`.
//! - [`context`]: [`DutyContext`], the little they know of the worker they run beside.
//!
//! Their Redis side (Lua scripts, the maintenance lease, registry reads) is the store's
//! (`crate::store::duties`): the duties decide what to do and when, the store does it.
//!
//! ## Scheduler locks across RQ versions
//! rq 2.0.0 takes `rq:scheduler-lock:<q>` with `SET <pid> NX EX 61`, refreshes it with a bare
//! `EXPIRE` and releases it with `DEL`; rq 2.12+ keeps a uuid name in it through an
//! acquire-or-refresh script (GET; SET EX if empty, EXPIRE if ours) and a compare-and-DEL,
//! plus the hash `rq:scheduler:<name>`. rqw uses the 2.12+ protocol with a uuid name:
//! - a Python scheduler of any version holding the lock keeps it: rqw only sets an empty key,
//!   only refreshes or deletes a key holding its own name;
//! - rqw holding the lock keeps it from every Python scheduler: 2.0.0's `SET NX` and 2.12+'s
//!   script both refuse a key with any value;
//! - `Queue.scheduler_pid` works for 2.12+/3.0 readers (the hash has rqw's pid); a 2.0.0
//!   reader of that property fails on any 2.12+-style lock, Python's included.
//!
//! In addition, rqw moves a queue's jobs only in the same script call that finds the lock
//! still holding its name, so a lock lost between heartbeats never leads to a double move.
//! rqw tries for locks it does not hold every `--maintenance-interval`, at most every 120 s:
//! RQ's worker tries from its maintenance (every `--maintenance-interval`) while its
//! scheduler process holds no lock, and that process, once running, every 120 s; so a dead
//! scheduler's lock is retaken within one interval of its expiry, never later than RQ would.
//!
//! ## Jobs of dead workers, across RQ versions
//! Abandoned jobs are handled as rq 3.0 does, which all three versions read back: only jobs
//! still `started` are touched (a leftover entry of a finished job is just removed); with
//! retries left they are retried (requeued, or scheduled for an interval), otherwise failed:
//! status `failed`, FailedJobRegistry, `failure_ttl` (1 year by default), and a type 2 result
//! (`worker_name` empty, `Moved to FailedJobRegistry, due to AbandonedJobError, at ...`),
//! then dependents that allow failures. rq 2.0.0 writes the text into the hash's legacy
//! `exc_info` instead and no result, but its `job.exc_info` and `latest_result()` read the
//! result entry first, so every version sees the same failure.

pub mod context;
pub mod maintenance;
pub mod scheduler;

use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use context::{DutyContext, OwnExecutions};
pub use maintenance::{maintenance_pass, run_maintenance};
pub use scheduler::{run_scheduler, scheduler_pass};

/// Starts the duties of a worker run, beside the worker (the top-level run calls this once the
/// worker is registered, before it takes jobs). Burst: one scheduler pass (with
/// `--with-scheduler`) and one maintenance pass now, before the worker takes jobs, as
/// `rq worker --burst` does. Otherwise: the scheduler (with `--with-scheduler`) and
/// maintenance as tasks in `tasks`, stopped by `stop`.
pub async fn start(ctx: &Arc<DutyContext>, tasks: &mut JoinSet<()>, stop: &CancellationToken) {
    if ctx.burst {
        if ctx.with_scheduler {
            match scheduler_pass(ctx).await {
                Ok(n) => tracing::debug!(jobs = n, "scheduler pass done"),
                Err(e) => tracing::warn!(error = %e, "scheduler pass failed"),
            }
        }
        maintenance_pass(ctx).await;
        return;
    }
    if ctx.with_scheduler {
        tasks.spawn(run_scheduler(ctx.clone(), stop.clone()));
    }
    tasks.spawn(run_maintenance(ctx.clone(), stop.clone()));
}
