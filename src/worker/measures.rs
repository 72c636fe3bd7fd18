//! What handlers measured, into the process metrics: the runtime gives each handler a
//! [`Recorder`] in its context, and feeds [`crate::metrics::global()`] from it, so handlers
//! never name the metrics.

use std::sync::LazyLock;

use crate::handlers::{Measure, Recorder};

/// The recorder every job's context carries (cheap to clone).
pub fn handler_recorder() -> Recorder {
    static RECORDER: LazyLock<Recorder> = LazyLock::new(|| {
        Recorder::new(|measure| {
            let metrics = crate::metrics::global();
            match measure {
                Measure::RecordingSemaphoreWait => metrics.recording_semaphore_wait(),
                Measure::RecordingSlotWait(seconds) => metrics.recording_slot_wait(seconds),
                Measure::RecordingDownloaded(bytes) => metrics.recording_downloaded(bytes),
            }
        })
    });
    RECORDER.clone()
}
