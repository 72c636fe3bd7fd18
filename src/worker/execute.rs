//! Running one job, each stage entered once: prepare it (`prepare`: check, decode, dispatch),
//! run it (its native handler under its timeout, cancel-aware, panics caught, or a Python
//! horse), its callbacks, the decision (`protocol::outcome`), and its recording. Nothing here can take the worker down: every
//! failure becomes a failed job.

use std::any::Any;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::FutureExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::callbacks;
use super::context::WorkerContext;
use super::dequeue::Dequeued;
use super::finisher::Finisher;
use super::outcome::decide;
use super::prepare::{prepare, Plan};
use super::python;
use super::running::{RunningEntry, StopReason};
use crate::config::CANCEL_GRACE;
use crate::handlers::{Handler, JobArgs, JobContext, PyValue};
use crate::metrics::JobProbe;
use crate::protocol::exception::{
    format_exception, timeout_message, HANDLER_PANIC, HORSE_START_ERROR, JOB_TIMEOUT_EXCEPTION,
    SHUTDOWN_ERROR,
};
use crate::protocol::job_record::{JobRecord, JobTimeout};
use crate::protocol::outcome::{is_last_attempt, RunResult};
use crate::protocol::payload::JobCall;
use crate::protocol::result::ExecutionSpan;
use crate::protocol::text::shown;
use crate::protocol::timestamp::RqTimestamp;
use crate::store::finish::FinishRequest;
use crate::store::reconcile::{FinishKnown, FinishReport};

/// RQ's `exc_string` for a work-horse killed by `kill-horse` (`Worker.monitor_work_horse`).
pub const KILLED_HORSE_TEXT: &str =
    "Work-horse terminated unexpectedly; waitpid returned 9 (signal 9); ";

/// Runs a started job to its recorded outcome (recorded by `finisher`, in a batch with the
/// outcomes ready at the same moment).
pub async fn run_job(ctx: Arc<WorkerContext>, finisher: Finisher, dequeued: Dequeued) {
    let Dequeued { job, started_at } = dequeued;
    let rq1_member = job.rq1_member();
    let execution_id = job.execution_id;
    // A Python horse gets the hash as read at the start (no second fetch).
    let hash = ctx.horses.as_ref().map(|_| job.fields.clone());
    let record = JobRecord::parse(&job.id, &job.queue, job.fields);
    let cancel = ctx.shutdown.force().child_token();
    let stop_reason = Arc::new(OnceLock::new());
    ctx.running.insert(
        execution_id.clone(),
        RunningEntry {
            job_id: record.id.clone(),
            queue: record.origin.clone(),
            started: std::time::Instant::now(),
            timeout: record.timeout,
            rq1_member,
            cancel: cancel.clone(),
            stop_reason: stop_reason.clone(),
        },
    );
    // Whatever happens below, the execution stops being heartbeaten when this task ends.
    let _running = RunningGuard {
        ctx: ctx.clone(),
        execution_id: execution_id.clone(),
    };
    let probe = crate::metrics::job_started(&record.origin);
    // Ids and origins come from producers: escaped and bounded, they cannot forge log lines.
    let span = tracing::info_span!("job", job_id = %shown(record.id.as_bytes()), queue = %shown(record.origin.as_bytes()), function = tracing::field::Empty);
    async {
        // A panic outside the handler (decoding, callbacks) fails the job like a handler's.
        let ended = AssertUnwindSafe(async {
            let (ended, runtime) =
                execute(&ctx, &record, hash.as_ref(), cancel, &stop_reason, &probe).await;
            callbacks::apply(&ctx, &record, ended, runtime).await
        })
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| failed("rqw", HANDLER_PANIC, &panic_text(&*panic), true));
        if let RunResult::Failed { exc_string, .. } = &ended {
            let last = exc_string.lines().last().unwrap_or_default();
            tracing::warn!(error = %shown(last.as_bytes()), "job failed");
        }
        let ended_at = RqTimestamp::now();
        let span = ExecutionSpan {
            started_at,
            ended_at,
        };
        let decide_for = |ended: RunResult| {
            decide(
                &record,
                ended,
                ctx.config.serializer,
                ctx.config.results_ttl,
                &span,
            )
        };
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| decide_for(ended)))
            .unwrap_or_else(|panic| {
                decide_for(failed("rqw", HANDLER_PANIC, &panic_text(&*panic), false))
            });
        let request = FinishRequest {
            job_id: record.id.clone(),
            execution_id: execution_id.clone(),
            queue: record.origin.clone(),
            rq1_member,
            now: ended_at,
            working_time: ended_at.seconds_since(&started_at),
            rate_limit_key: record.rate_limit_key.clone(),
            has_dependencies: record.has_dependencies,
            outcome,
        };
        record_outcome(&finisher, request, &probe).await;
    }
    .instrument(span)
    .await;
}

/// Removes an execution from the running set when its task ends, even by a panic.
struct RunningGuard {
    ctx: Arc<WorkerContext>,
    execution_id: String,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.ctx.running.remove(&self.execution_id);
    }
}

async fn record_outcome(finisher: &Finisher, request: FinishRequest, probe: &JobProbe) {
    let outcome = request.outcome.name();
    let working_time = request.working_time;
    let execution_id = request.execution_id.clone();
    // Repeated until its outcome is known (a lost reply is looked up, never guessed); a
    // forced shutdown stops the repeats.
    match finisher.record(request).await {
        Ok(FinishReport {
            known,
            lost_replies,
        }) => match known {
            FinishKnown::Written => {
                probe.recorded(outcome, working_time);
                if lost_replies > 0 {
                    tracing::warn!(execution_id = %execution_id, lost_replies, "outcome reply lost; the repeated call wrote it");
                }
                tracing::info!(outcome = ?outcome, "job recorded");
            }
            FinishKnown::WrittenEarlier => {
                probe.recorded(outcome, working_time);
                tracing::warn!(execution_id = %execution_id, lost_replies, outcome = ?outcome, "outcome reply lost; the lost call had written it (its result entry is there); not written again");
            }
            FinishKnown::GoneAfterLostReply => {
                probe.recorded(outcome, working_time);
                tracing::warn!(execution_id = %execution_id, lost_replies, outcome = ?outcome, "outcome reply lost; the execution had left the started registry (the lost call wrote it, or RQ's abandoned-job cleanup took the job over); not written again");
            }
            FinishKnown::JobMissing => {
                tracing::warn!("the job hash was deleted while the job ran; no result recorded");
            }
            FinishKnown::AlreadyRecorded => {
                tracing::warn!(
                    "the execution had left the started registry; outcome not written again"
                );
            }
        },
        Err(e) => {
            tracing::error!(execution_id = %execution_id, error = %e, "giving up recording the job outcome; RQ's abandoned-job handling will recover it");
        }
    }
}

/// Which kind of handler ran a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// A native handler (or none: the job failed before any ran).
    Native,
    /// A Python horse (`--python`), which also ran the callbacks rqw has no native one for.
    Python,
}

impl Runtime {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Runtime::Native => "native",
            Runtime::Python => "python",
        }
    }
}

/// Dispatches a started job by its [`Plan`] (prepared once, [`prepare`]): its native handler,
/// a Python horse when `--python` is set, or the end it was prepared to (a failure, or
/// `--forward-unknown`).
async fn execute(
    ctx: &WorkerContext,
    record: &JobRecord,
    hash: Option<&HashMap<String, Vec<u8>>>,
    cancel: CancellationToken,
    stop_reason: &OnceLock<StopReason>,
    probe: &JobProbe,
) -> (RunResult, Runtime) {
    match (prepare(ctx, record, probe), &ctx.horses, hash) {
        (Plan::Python { call }, Some(pool), Some(hash)) => {
            // The operators' line, as for a native job (the Python worker's own).
            let function = call.as_ref().map_or_else(
                || "(read by the horse)".to_string(),
                |call| shown(short_name(&call.func_name).as_bytes()),
            );
            tracing::info!(
                "🔨 JOB PICKED queue='{}' job_id={} function={} (Python horse)",
                shown(record.origin.as_bytes()),
                shown(record.id.as_bytes()),
                function
            );
            probe.set_runtime(Runtime::Python.label());
            let ended = python::execute(ctx, pool, record, hash, &cancel, stop_reason, probe).await;
            (ended, Runtime::Python)
        }
        (
            Plan::Native {
                call,
                meta,
                handler,
            },
            _,
            _,
        ) => {
            probe.set_runtime(Runtime::Native.label());
            let ended = execute_native(record, call, meta, handler, cancel, stop_reason).await;
            (ended, Runtime::Native)
        }
        (Plan::End(ended), _, _) => {
            probe.set_runtime(Runtime::Native.label());
            (ended, Runtime::Native)
        }
        // Only prepared with horses, which always come with the started hash.
        (Plan::Python { .. }, _, _) => {
            probe.set_runtime(Runtime::Native.label());
            let ended = failed(
                "rqw",
                HORSE_START_ERROR,
                "no Python horse for this job",
                true,
            );
            (ended, Runtime::Native)
        }
    }
}

/// Runs the job's native handler with its decoded `call`; every way it can end becomes an
/// [`RunResult`].
async fn execute_native(
    record: &JobRecord,
    call: JobCall,
    meta: Option<PyValue>,
    handler: Arc<dyn Handler>,
    cancel: CancellationToken,
    stop_reason: &OnceLock<StopReason>,
) -> RunResult {
    let function = short_name(&call.func_name).to_string();
    tracing::info!(
        "🔨 JOB PICKED queue='{}' job_id={} function={}",
        shown(record.origin.as_bytes()),
        shown(record.id.as_bytes()),
        shown(function.as_bytes())
    );
    let job_ctx = JobContext {
        job_id: record.id.clone(),
        queue: record.origin.clone(),
        meta,
        retries_left: record.retries_left.unwrap_or(0),
        // The rule the outcome retries by (`protocol::outcome`).
        last_attempt: is_last_attempt(record),
        cancel: cancel.clone(),
        recorder: super::measures::handler_recorder(),
    };
    let args = JobArgs {
        args: call.args,
        kwargs: call.kwargs,
    };
    let future = match std::panic::catch_unwind(AssertUnwindSafe(|| handler.call(job_ctx, args))) {
        Ok(future) => future,
        Err(panic) => return failed(&call.func_name, HANDLER_PANIC, &panic_text(&*panic), true),
    };
    let mut future = AssertUnwindSafe(future).catch_unwind();
    let timeout = async {
        match record.timeout {
            JobTimeout::Seconds(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            JobTimeout::Unlimited => std::future::pending().await,
        }
    };
    let cancelled = |func: &str| match stop_reason.get() {
        Some(StopReason::StoppedByUser) => RunResult::Stopped,
        Some(StopReason::HorseKilled) => RunResult::Failed {
            exc_string: KILLED_HORSE_TEXT.to_string(),
            retryable: true,
        },
        None => failed(
            func,
            SHUTDOWN_ERROR,
            "the worker was shut down (forced) while the job ran",
            true,
        ),
    };
    // Biased: a cancellation wins over the handler's own reaction to it.
    let interrupted = tokio::select! {
        biased;
        _ = cancel.cancelled() => cancelled(&call.func_name),
        _ = timeout => failed(&call.func_name, JOB_TIMEOUT_EXCEPTION, &timeout_message(record.timeout.as_rq_int()), true),
        result = &mut future => {
            return match result {
                // The handler may have returned in reaction to a stop command.
                _ if stop_reason.get().is_some() => cancelled(&call.func_name),
                Ok(Ok(value)) => RunResult::Succeeded(value),
                Ok(Err(e)) => failed(&call.func_name, &e.exc_type, &e.message, e.is_retryable()),
                Err(panic) => failed(&call.func_name, HANDLER_PANIC, &panic_text(&*panic), true),
            };
        }
    };
    // Let the handler clean up (release slots, remove temp files) before it is dropped.
    cancel.cancel();
    if tokio::time::timeout(CANCEL_GRACE, &mut future)
        .await
        .is_err()
    {
        tracing::warn!(grace = ?CANCEL_GRACE, "handler did not stop within its grace period after cancellation");
    }
    interrupted
}

/// A failure with its Python-style exception text.
pub(super) fn failed(location: &str, exc_type: &str, message: &str, retryable: bool) -> RunResult {
    RunResult::Failed {
        exc_string: format_exception(location, exc_type, message),
        retryable,
    }
}

fn panic_text(panic: &(dyn Any + Send)) -> String {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic payload".to_string());
    format!("handler panicked: {detail}")
}

/// The last part of a function path, as the Python worker's `JOB PICKED` line names it
/// (`server.jobs.recording_job.process_recording_download_job` -> `process_recording_download_job`).
fn short_name(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}
