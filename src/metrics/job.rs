//! [`JobProbe`]: what one job contributes to the metrics, from start to recorded outcome.
//!
//! The runtime creates a probe when a job starts (it counts as in flight until the probe is
//! dropped), names its function once the payload is decoded (the start is counted then), and
//! reports the outcome once `finish.lua` has written it.

use std::sync::OnceLock;

use super::registry::{JobLabels, Metrics, OutcomeKind, UNDECODED_FUNCTION};

/// One job's metrics; in flight while alive.
#[derive(Debug)]
pub struct JobProbe {
    metrics: &'static Metrics,
    queue: String,
    function: OnceLock<String>,
}

impl JobProbe {
    /// A job from `queue` starts running (in flight until dropped).
    pub fn start(metrics: &'static Metrics, queue: &str) -> Self {
        metrics.in_flight_add(queue, 1);
        Self {
            metrics,
            queue: queue.to_string(),
            function: OnceLock::new(),
        }
    }

    /// Names the job's function and counts the start (once; later calls are ignored).
    pub fn set_function(&self, function: &str) {
        if self.function.set(function.to_string()).is_ok() {
            self.metrics.job_started(&self.labels());
        }
    }

    /// Counts the job under the runtime that runs it (`native` or `python`).
    pub fn set_runtime(&self, runtime: &str) {
        self.metrics.job_runtime(runtime);
    }

    /// Counts the recorded outcome (a runtime outcome name, see [`OutcomeKind::from_name`])
    /// after `seconds` of work. A job whose function was never named counts as started here,
    /// under [`UNDECODED_FUNCTION`].
    pub fn recorded(&self, outcome: &str, seconds: f64) {
        self.set_function(UNDECODED_FUNCTION);
        if let Some(kind) = OutcomeKind::from_name(outcome) {
            self.metrics.job_ended(&self.labels(), kind, seconds);
        }
    }

    fn labels(&self) -> JobLabels {
        JobLabels {
            queue: self.queue.clone(),
            function: self
                .function
                .get()
                .cloned()
                .unwrap_or_else(|| UNDECODED_FUNCTION.to_string()),
        }
    }
}

impl Drop for JobProbe {
    fn drop(&mut self) {
        self.metrics.in_flight_add(&self.queue, -1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaked() -> &'static Metrics {
        Box::leak(Box::new(Metrics::new()))
    }

    #[test]
    fn a_job_is_in_flight_until_dropped_and_counted_once() {
        let m = leaked();
        let probe = JobProbe::start(m, "q");
        assert!(m.encode().contains("rqw_jobs_in_flight{queue=\"q\"} 1"));
        probe.set_function("f.g");
        probe.set_function("other");
        probe.recorded("finished", 0.5);
        drop(probe);
        let text = m.encode();
        assert!(text.contains("rqw_jobs_in_flight{queue=\"q\"} 0"), "{text}");
        assert!(text.contains("rqw_jobs_started_total{queue=\"q\",function=\"f.g\"} 1"));
        assert!(text.contains("rqw_jobs_finished_total{queue=\"q\",function=\"f.g\"} 1"));
        assert!(!text.contains("function=\"other\""));
    }

    #[test]
    fn an_undecodable_job_still_counts() {
        let m = leaked();
        JobProbe::start(m, "q").recorded("failed", 0.1);
        let text = m.encode();
        assert!(text.contains("rqw_jobs_started_total{queue=\"q\",function=\"(undecoded)\"} 1"));
        assert!(text.contains("rqw_jobs_failed_total{queue=\"q\",function=\"(undecoded)\"} 1"));
    }
}
