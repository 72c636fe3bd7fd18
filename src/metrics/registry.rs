//! The metric families and the calls that record into them. Pure: no I/O, cheap to call from
//! any task (atomics behind a read lock per label set).
//!
//! Names (all prefixed `rqw_`), as Prometheus sees them:
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `rqw_jobs_started_total` | counter | queue, function |
//! | `rqw_jobs_finished_total` | counter | queue, function |
//! | `rqw_jobs_failed_total` (incl. stopped) | counter | queue, function |
//! | `rqw_jobs_retried_total` (requeued or scheduled by a retry) | counter | queue, function |
//! | `rqw_jobs_forwarded_total` (`--forward-unknown`) | counter | queue, function |
//! | `rqw_job_duration_seconds` | histogram | queue, function |
//! | `rqw_jobs_in_flight` | gauge | queue |
//! | `rqw_queue_depth` (`LLEN`, read at scrape) | gauge | queue |
//! | `rqw_redis_up` (the scrape's Redis read worked) | gauge | |
//! | `rqw_redis_master_changes` (the command connection moved to another master) | gauge | |
//! | `rqw_queue_watch_open` (a multi-queue worker waits without polling: blocking pops or client tracking; 0 = polling) | gauge | |
//! | `rqw_recording_semaphore_waits_total` | counter | |
//! | `rqw_recording_slot_wait_seconds` | histogram | |
//! | `rqw_recording_downloaded_bytes_total` | counter | |
//! | `rqw_jobs_by_runtime_total` (who ran it: `native` or `python`) | counter | runtime |
//! | `rqw_horse_restarts_total` (a Python horse replaced) | counter | cause |
//! | `rqw_horse_rss_bytes` (each horse's RSS after its last job) | gauge | pid |
//! | `rqw_build_info` | info | version |

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// Upper bounds (seconds) of the job duration buckets: from no-op jobs to the recording
/// job's ten-minute timeout.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// Upper bounds (seconds) of the slot wait buckets (0 = a slot was free).
pub const SLOT_WAIT_BUCKETS: [f64; 10] = [0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 180.0, 600.0];
/// The `function` label of a job whose payload could not be decoded.
pub const UNDECODED_FUNCTION: &str = "(undecoded)";

/// Labels of the per-job families.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    /// The job's origin queue.
    pub queue: String,
    /// The Python function path (or [`UNDECODED_FUNCTION`]).
    pub function: String,
}

/// Label of `rqw_jobs_by_runtime_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuntimeLabels {
    /// `native` or `python`.
    pub runtime: String,
}

/// Label of `rqw_horse_restarts_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CauseLabels {
    /// `timeout`, `killed`, `died`, `garbage`, `max_jobs` or `max_memory`.
    pub cause: String,
}

/// Label of `rqw_horse_rss_bytes`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PidLabels {
    /// The horse's process id.
    pub pid: String,
}

/// Labels of the per-queue families.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    /// The queue name.
    pub queue: String,
}

/// How a job's recorded outcome is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    /// Succeeded.
    Finished,
    /// Failed for good (or stopped).
    Failed,
    /// Failed, and RQ's retry put it back (now or scheduled).
    Retried,
    /// Moved intact to another queue.
    Forwarded,
}

impl OutcomeKind {
    /// Maps the runtime's outcome names (`finished`, `failed`, `stopped`, `requeued`,
    /// `scheduled`, `forwarded`) to a counter; `None` for a name it does not know.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "finished" => Some(Self::Finished),
            "failed" | "stopped" => Some(Self::Failed),
            "requeued" | "scheduled" => Some(Self::Retried),
            "forwarded" => Some(Self::Forwarded),
            _ => None,
        }
    }
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// Every metric rqw exposes, and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    started: Family<JobLabels, Counter>,
    finished: Family<JobLabels, Counter>,
    failed: Family<JobLabels, Counter>,
    retried: Family<JobLabels, Counter>,
    forwarded: Family<JobLabels, Counter>,
    duration: HistogramFamily<JobLabels>,
    in_flight: Family<QueueLabels, Gauge>,
    queue_depth: Family<QueueLabels, Gauge>,
    redis_up: Gauge,
    master_changes: Gauge,
    queue_watch_open: Gauge,
    semaphore_waits: Counter,
    slot_wait: Histogram,
    downloaded_bytes: Counter,
    by_runtime: Family<RuntimeLabels, Counter>,
    horse_restarts: Family<CauseLabels, Counter>,
    horse_rss: Family<PidLabels, Gauge>,
    /// The queue and function label values the job probes have used (bounded there).
    pub(crate) label_values: super::job::LabelValues,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates the families and registers them.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("rqw");
        let m = Self {
            registry: Registry::default(),
            started: Family::default(),
            finished: Family::default(),
            failed: Family::default(),
            retried: Family::default(),
            forwarded: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            in_flight: Family::default(),
            queue_depth: Family::default(),
            redis_up: Gauge::default(),
            master_changes: Gauge::default(),
            queue_watch_open: Gauge::default(),
            semaphore_waits: Counter::default(),
            slot_wait: Histogram::new(SLOT_WAIT_BUCKETS),
            downloaded_bytes: Counter::default(),
            by_runtime: Family::default(),
            horse_restarts: Family::default(),
            horse_rss: Family::default(),
            label_values: Default::default(),
        };
        let r = &mut registry;
        r.register(
            "build",
            "rqw version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        r.register("jobs_started", "Jobs taken and started", m.started.clone());
        r.register("jobs_finished", "Jobs that succeeded", m.finished.clone());
        r.register(
            "jobs_failed",
            "Jobs failed for good (no retry left, permanent error, or stopped)",
            m.failed.clone(),
        );
        r.register(
            "jobs_retried",
            "Failed runs that RQ's retry policy put back (queued again or scheduled)",
            m.retried.clone(),
        );
        r.register(
            "jobs_forwarded",
            "Jobs without a native handler moved intact to the --forward-unknown queue",
            m.forwarded.clone(),
        );
        r.register_with_unit(
            "job_duration",
            "Time from start to recorded outcome",
            Unit::Seconds,
            m.duration.clone(),
        );
        r.register("jobs_in_flight", "Jobs running now", m.in_flight.clone());
        r.register(
            "queue_depth",
            "Jobs waiting in the worker's queues (LLEN, read at scrape)",
            m.queue_depth.clone(),
        );
        r.register(
            "redis_up",
            "1 when the last scrape could read Redis",
            m.redis_up.clone(),
        );
        r.register(
            "redis_master_changes",
            "Times this process found the Redis master again and moved its connections (failover, READONLY)",
            m.master_changes.clone(),
        );
        r.register(
            "queue_watch_open",
            "1 while a multi-queue worker is told of enqueues by client tracking; 0 while it polls",
            m.queue_watch_open.clone(),
        );
        r.register(
            "recording_semaphore_waits",
            "Recording jobs that found no free download slot and waited",
            m.semaphore_waits.clone(),
        );
        r.register_with_unit(
            "recording_slot_wait",
            "Time a recording job took to get its download slot",
            Unit::Seconds,
            m.slot_wait.clone(),
        );
        r.register_with_unit(
            "recording_downloaded",
            "Bytes of recordings downloaded",
            Unit::Bytes,
            m.downloaded_bytes.clone(),
        );
        r.register(
            "jobs_by_runtime",
            "Jobs by the kind of handler that ran them (native, python)",
            m.by_runtime.clone(),
        );
        r.register(
            "horse_restarts",
            "Python horses replaced, by cause",
            m.horse_restarts.clone(),
        );
        r.register_with_unit(
            "horse_rss",
            "Resident memory of each Python horse after its last job",
            Unit::Bytes,
            m.horse_rss.clone(),
        );
        Self { registry, ..m }
    }

    /// Counts a job run by `runtime` (`native` or `python`).
    pub fn job_runtime(&self, runtime: &str) {
        self.by_runtime
            .get_or_create(&RuntimeLabels {
                runtime: runtime.to_string(),
            })
            .inc();
    }

    /// Counts a Python horse replaced for `cause`.
    pub fn horse_replaced(&self, cause: &str) {
        self.horse_restarts
            .get_or_create(&CauseLabels {
                cause: cause.to_string(),
            })
            .inc();
    }

    /// Sets a horse's RSS.
    pub fn horse_rss(&self, pid: u32, bytes: u64) {
        self.horse_rss
            .get_or_create(&PidLabels {
                pid: pid.to_string(),
            })
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Drops the RSS series of a horse that exited.
    pub fn horse_gone(&self, pid: u32) {
        self.horse_rss.remove(&PidLabels {
            pid: pid.to_string(),
        });
    }

    /// Counts a job started with this function.
    pub fn job_started(&self, labels: &JobLabels) {
        self.started.get_or_create(labels).inc();
    }

    /// Counts a recorded outcome and observes the job's duration.
    pub fn job_ended(&self, labels: &JobLabels, outcome: OutcomeKind, seconds: f64) {
        let family = match outcome {
            OutcomeKind::Finished => &self.finished,
            OutcomeKind::Failed => &self.failed,
            OutcomeKind::Retried => &self.retried,
            OutcomeKind::Forwarded => &self.forwarded,
        };
        family.get_or_create(labels).inc();
        if seconds.is_finite() && seconds >= 0.0 {
            self.duration.get_or_create(labels).observe(seconds);
        }
    }

    /// Adds `delta` (+1 or -1) to the jobs running from `queue`.
    pub fn in_flight_add(&self, queue: &str, delta: i64) {
        let labels = QueueLabels {
            queue: queue.to_string(),
        };
        self.in_flight.get_or_create(&labels).inc_by(delta);
    }

    /// Sets the number of jobs waiting in `queue`.
    pub fn set_queue_depth(&self, queue: &str, depth: i64) {
        let labels = QueueLabels {
            queue: queue.to_string(),
        };
        self.queue_depth.get_or_create(&labels).set(depth);
    }

    /// Records whether the scrape could read Redis.
    pub fn set_redis_up(&self, up: bool) {
        self.redis_up.set(i64::from(up));
    }

    /// Sets how many times the connections moved to another master since start.
    pub fn set_master_changes(&self, changes: u64) {
        self.master_changes
            .set(i64::try_from(changes).unwrap_or(i64::MAX));
    }

    /// Records whether the queue watch (client tracking) of a multi-queue worker is open.
    pub fn set_queue_watch_open(&self, open: bool) {
        self.queue_watch_open.set(i64::from(open));
    }

    /// Counts a recording job that had to wait for a download slot.
    pub fn recording_semaphore_wait(&self) {
        self.semaphore_waits.inc();
    }

    /// Observes how long a recording job took to get its slot.
    pub fn recording_slot_wait(&self, seconds: f64) {
        if seconds.is_finite() && seconds >= 0.0 {
            self.slot_wait.observe(seconds);
        }
    }

    /// Counts bytes of a downloaded recording.
    pub fn recording_downloaded(&self, bytes: u64) {
        self.downloaded_bytes.inc_by(bytes);
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            // Writing into a String cannot fail; keep the output well-formed regardless.
            out = "# EOF\n".to_string();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> JobLabels {
        JobLabels {
            queue: "recordings".into(),
            function: "a.b".into(),
        }
    }

    #[test]
    fn outcome_names_map_to_counters() {
        assert_eq!(
            OutcomeKind::from_name("finished"),
            Some(OutcomeKind::Finished)
        );
        assert_eq!(OutcomeKind::from_name("stopped"), Some(OutcomeKind::Failed));
        assert_eq!(
            OutcomeKind::from_name("scheduled"),
            Some(OutcomeKind::Retried)
        );
        assert_eq!(
            OutcomeKind::from_name("requeued"),
            Some(OutcomeKind::Retried)
        );
        assert_eq!(
            OutcomeKind::from_name("forwarded"),
            Some(OutcomeKind::Forwarded)
        );
        assert_eq!(OutcomeKind::from_name("other"), None);
    }

    #[test]
    fn encodes_what_was_recorded() {
        let m = Metrics::new();
        m.job_started(&labels());
        m.job_ended(&labels(), OutcomeKind::Finished, 0.2);
        m.job_ended(&labels(), OutcomeKind::Failed, f64::NAN);
        m.in_flight_add("recordings", 1);
        m.set_queue_depth("recordings", 7);
        m.set_redis_up(true);
        m.set_master_changes(2);
        m.recording_semaphore_wait();
        m.recording_slot_wait(0.0);
        m.recording_downloaded(1234);
        let text = m.encode();
        let l = r#"{queue="recordings",function="a.b"}"#;
        for line in [
            format!("rqw_jobs_started_total{l} 1"),
            format!("rqw_jobs_finished_total{l} 1"),
            format!("rqw_jobs_failed_total{l} 1"),
            format!("rqw_job_duration_seconds_count{l} 1"),
            r#"rqw_jobs_in_flight{queue="recordings"} 1"#.to_string(),
            r#"rqw_queue_depth{queue="recordings"} 7"#.to_string(),
            "rqw_redis_up 1".to_string(),
            "rqw_redis_master_changes 2".to_string(),
            "rqw_recording_semaphore_waits_total 1".to_string(),
            "rqw_recording_slot_wait_seconds_count 1".to_string(),
            "rqw_recording_downloaded_bytes_total 1234".to_string(),
            format!(
                "rqw_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            ),
        ] {
            assert!(text.contains(&line), "missing {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
