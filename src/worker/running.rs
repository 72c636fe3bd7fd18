//! The executions this worker is running now: what heartbeats refresh and what a forced
//! shutdown cancels.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::protocol::job_record::JobTimeout;
use crate::store::scripts::RunningExecution;

/// Why a running job was cancelled from outside (absent: timeout or forced shutdown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// `stop-job` / `stop-execution`: the job ends `stopped`, never retried.
    StoppedByUser,
    /// `kill-horse`: the job fails as a killed work-horse; retries apply.
    HorseKilled,
}

/// One running execution.
#[derive(Debug, Clone)]
pub struct RunningEntry {
    /// Job id.
    pub job_id: String,
    /// Queue (origin).
    pub queue: String,
    /// When it started (monotonic).
    pub started: Instant,
    /// Its timeout, for the heartbeat TTL.
    pub timeout: JobTimeout,
    /// Registered under the plain job id (rq 1.x), as start.lua entered it.
    pub rq1_member: bool,
    /// Cancels the handler.
    pub cancel: CancellationToken,
    /// Set before `cancel` when a command stops the job.
    pub stop_reason: Arc<OnceLock<StopReason>>,
}

/// Shared map execution id -> entry.
#[derive(Debug, Clone, Default)]
pub struct RunningJobs {
    inner: Arc<Mutex<HashMap<String, RunningEntry>>>,
}

impl RunningJobs {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, RunningEntry>> {
        // A poisoned lock only means a panic elsewhere while holding it; the map is still valid.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds an execution.
    pub fn insert(&self, execution_id: String, entry: RunningEntry) {
        self.lock().insert(execution_id, entry);
    }

    /// Removes an execution.
    pub fn remove(&self, execution_id: &str) {
        self.lock().remove(execution_id);
    }

    /// Number of running executions.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing runs.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Heartbeat rows for every execution, with RQ's heartbeat TTL for each, and the
    /// working time of the longest-running one (RQ's `current_job_working_time`).
    pub fn heartbeat_rows(&self, monitoring_interval: u64) -> (Vec<RunningExecution>, Option<f64>) {
        let map = self.lock();
        let mut longest: Option<f64> = None;
        let rows = map
            .iter()
            .map(|(execution_id, e)| {
                let elapsed = e.started.elapsed().as_secs_f64();
                longest = Some(longest.map_or(elapsed, |l: f64| l.max(elapsed)));
                RunningExecution {
                    job_id: e.job_id.clone(),
                    execution_id: execution_id.clone(),
                    queue: e.queue.clone(),
                    ttl: heartbeat_ttl(e.timeout, elapsed, monitoring_interval),
                    rq1_member: e.rq1_member,
                }
            })
            .collect();
        (rows, longest)
    }

    /// The StartedJobRegistry members of every execution, in both forms start.lua writes
    /// (`<id>:<execution id>`, and the plain id of an rq 1.x job): what maintenance must not
    /// take for abandoned.
    pub fn registry_members(&self) -> Vec<String> {
        self.lock()
            .iter()
            .flat_map(|(execution_id, e)| {
                [format!("{}:{execution_id}", e.job_id), e.job_id.clone()]
            })
            .collect()
    }

    /// Stops every execution for which `matches(job_id, execution_id)` holds; returns how many.
    pub fn stop_matching(&self, matches: impl Fn(&str, &str) -> bool, reason: StopReason) -> usize {
        let map = self.lock();
        let mut stopped = 0;
        for (execution_id, e) in map.iter() {
            if matches(&e.job_id, execution_id) {
                let _ = e.stop_reason.set(reason);
                e.cancel.cancel();
                stopped += 1;
            }
        }
        stopped
    }
}

/// `BaseWorker.get_heartbeat_ttl`: `int(min(timeout - elapsed, interval)) + 60`, or
/// `interval + 60` without a timeout.
pub fn heartbeat_ttl(timeout: JobTimeout, elapsed: f64, monitoring_interval: u64) -> u64 {
    match timeout {
        JobTimeout::Seconds(t) => {
            let remaining = (t as f64 - elapsed).max(0.0);
            remaining.min(monitoring_interval as f64) as u64 + 60
        }
        JobTimeout::Unlimited => monitoring_interval + 60,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_follows_rq() {
        assert_eq!(heartbeat_ttl(JobTimeout::Seconds(180), 0.0, 30), 90);
        assert_eq!(heartbeat_ttl(JobTimeout::Seconds(2), 0.0, 30), 62);
        assert_eq!(heartbeat_ttl(JobTimeout::Seconds(10), 50.0, 30), 60);
        assert_eq!(heartbeat_ttl(JobTimeout::Unlimited, 1000.0, 30), 90);
    }
}
