//! What a handler knows about the job it runs, besides its arguments.

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
    /// How many retries RQ will still grant after this attempt fails (`retries_left`).
    pub retries_left: u32,
    /// Cancelled when the job must stop (timeout, stop command, forced shutdown).
    /// Long-running handlers should select on it and clean up.
    pub cancel: CancellationToken,
}
