//! What a handler knows about the job it runs, besides its arguments, and where it reports
//! what it measured ([`Recorder`]): a handler sees only this context.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::PyValue;

/// Per-job context handed to a handler.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The RQ job id (`rq:job:<id>`).
    pub job_id: String,
    /// The queue the job was taken from (its `origin`).
    pub queue: String,
    /// The job's `meta` dict, decoded; `None` when the job has none or it could not be decoded.
    pub meta: Option<PyValue>,
    /// How many retries RQ will still grant after this attempt fails (`retries_left`), for
    /// information: whether this attempt is the last is [`JobContext::is_last_attempt`].
    pub retries_left: u32,
    /// A retryable failure of this attempt is final: the worker will not retry the job (set
    /// by the worker, by the rule it retries with; read it through
    /// [`JobContext::is_last_attempt`]).
    pub last_attempt: bool,
    /// Cancelled when the job must stop (timeout, stop command, forced shutdown).
    /// Long-running handlers should select on it and clean up.
    pub cancel: CancellationToken,
    /// Where the handler reports what it measured (the runtime feeds the metrics from it).
    pub recorder: Recorder,
}

impl JobContext {
    /// Whether the worker would not retry this job if this attempt failed retryably (no
    /// retry left). A handler that must act on the final failure asks this; it does not
    /// re-derive the rule from `retries_left`.
    pub fn is_last_attempt(&self) -> bool {
        self.last_attempt
    }
}

/// Something a handler measured, for the worker's metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Measure {
    /// A recording job found no free download slot and waited.
    RecordingSemaphoreWait,
    /// Seconds a recording job took to get its download slot.
    RecordingSlotWait(f64),
    /// Bytes of a recording downloaded.
    RecordingDownloaded(u64),
}

/// Where a handler reports its [`Measure`]s. The runtime passes one in the [`JobContext`];
/// the default reports nowhere (tests, and handlers run outside a worker).
#[derive(Clone, Default)]
pub struct Recorder(Option<Arc<dyn Fn(Measure) + Send + Sync>>);

impl Recorder {
    /// A recorder that hands every measure to `sink`.
    pub fn new(sink: impl Fn(Measure) + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(sink)))
    }

    /// Reports `measure`.
    pub fn record(&self, measure: Measure) {
        if let Some(sink) = &self.0 {
            sink(measure);
        }
    }
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Recorder"
        } else {
            "Recorder(none)"
        })
    }
}
