//! [`JobProbe`]: what one job contributes to the metrics, from start to recorded outcome.
//!
//! The runtime creates a probe when a job starts (it counts as in flight until the probe is
//! dropped), names its function once the payload is decoded (the start is counted then), and
//! reports the outcome once `finish.lua` has written it.
//!
//! The queue (a job's `origin`) and the function path come from producers: as label values
//! they are escaped and bounded ([`MAX_LABEL_CHARS`]), and at most [`MAX_LABEL_VALUES`]
//! distinct values of each are kept, later ones count under [`OTHER_LABEL`], so hostile jobs
//! cannot grow the registry (one series per value) without bound.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use crate::protocol::text::escaped;

use super::registry::{JobLabels, Metrics, OutcomeKind, UNDECODED_FUNCTION};

/// Most distinct values of the queue label, and of the function label, the probes create.
pub const MAX_LABEL_VALUES: usize = 256;
/// Longest label value, in characters of its escaped form.
pub const MAX_LABEL_CHARS: usize = 120;
/// The label value of queues or functions past [`MAX_LABEL_VALUES`].
pub const OTHER_LABEL: &str = "(other)";

/// The label values a registry's probes have used, per label.
#[derive(Debug, Default)]
pub struct LabelValues {
    queues: Mutex<HashSet<String>>,
    functions: Mutex<HashSet<String>>,
}

/// `value` as a label value: escaped and bounded, or [`OTHER_LABEL`] once `seen` is full.
fn bounded(seen: &Mutex<HashSet<String>>, value: &str) -> String {
    let value = escaped(value.as_bytes(), MAX_LABEL_CHARS);
    let Ok(mut seen) = seen.lock() else {
        return OTHER_LABEL.to_string();
    };
    if seen.contains(&value) {
        return value;
    }
    if seen.len() >= MAX_LABEL_VALUES {
        return OTHER_LABEL.to_string();
    }
    seen.insert(value.clone());
    value
}

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
        let queue = bounded(&metrics.label_values.queues, queue);
        metrics.in_flight_add(&queue, 1);
        Self {
            metrics,
            queue,
            function: OnceLock::new(),
        }
    }

    /// Names the job's function and counts the start (once; later calls are ignored).
    /// True when this call named it, so the caller names the job's log span once too.
    pub fn set_function(&self, function: &str) -> bool {
        if self.function.get().is_some() {
            return false;
        }
        if self
            .function
            .set(bounded(&self.metrics.label_values.functions, function))
            .is_ok()
        {
            self.metrics.job_started(&self.labels());
            return true;
        }
        false
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

    #[test]
    fn hostile_labels_are_escaped_and_their_number_bounded() {
        let metrics = leaked();
        let probe = JobProbe::start(metrics, "q\nforged");
        probe.set_function(&"f".repeat(1000));
        probe.recorded("finished", 0.1);
        drop(probe);
        let text = metrics.encode();
        // One line per series: the newline is escaped (as `\n`, which a scraper reads back).
        assert!(text.contains("queue=\"q\\nforged\""), "{text}");
        assert!(!text.contains("\nforged"));
        assert!(!text.contains(&"f".repeat(121)));
        for i in 0..(MAX_LABEL_VALUES + 10) {
            let probe = JobProbe::start(metrics, "q");
            probe.set_function(&format!("hostile.f{i}"));
        }
        let text = metrics.encode();
        assert!(
            text.contains(&format!("function=\"{OTHER_LABEL}\"")),
            "{text}"
        );
        assert!(!text.contains(&format!("hostile.f{}", MAX_LABEL_VALUES + 5)));
    }
}
