//! Running a job's callbacks after its handler, as RQ's `perform_job` does, with each
//! callback's timeout; a callback's failure changes the job's outcome exactly where RQ's does.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;

use super::context::WorkerContext;
use super::execute::Runtime;
use crate::handlers::callbacks::{CallbackContext, CallbackEvent};
use crate::protocol::exception::{
    format_exception, timeout_message, HANDLER_PANIC, JOB_TIMEOUT_EXCEPTION, UNKNOWN_FUNCTION_ERROR,
};
use crate::protocol::job_record::{CallbackSpec, JobRecord};
use crate::protocol::outcome::RunResult;
use crate::protocol::payload::decode_meta;
use crate::protocol::text::shown;

/// Runs the callbacks `record` names for `ended` and returns the final outcome:
/// - success: `on_success`; if it fails, the job fails with its error and `on_failure` runs;
/// - failure: `on_failure`; if it fails, its error text replaces the job's;
/// - stopped: `on_stopped`; a failure is logged.
///
/// After a Python horse (`runtime` Python), only callbacks with a native implementation run
/// here: the horse ran the others itself, with RQ's semantics.
pub async fn apply(
    ctx: &WorkerContext,
    record: &JobRecord,
    ended: RunResult,
    runtime: Runtime,
) -> RunResult {
    let here = |spec: &Option<CallbackSpec>| -> Option<CallbackSpec> {
        spec.clone()
            .filter(|s| runtime == Runtime::Native || ctx.handlers.callbacks.get(&s.path).is_some())
    };
    let (success, failure, stopped) = (
        here(&record.success_callback),
        here(&record.failure_callback),
        here(&record.stopped_callback),
    );
    let ended = match (ended, &success) {
        (RunResult::SucceededSerialized(bytes), Some(spec)) => {
            let value = bytes
                .as_deref()
                .and_then(|b| decode_meta(b, ctx.config.serializer).ok())
                .unwrap_or(crate::handlers::PyValue::None);
            match run(ctx, record, spec, CallbackEvent::Success(value)).await {
                Ok(()) => return RunResult::SucceededSerialized(bytes),
                Err(exc_string) => RunResult::Failed {
                    exc_string,
                    retryable: true,
                },
            }
        }
        (RunResult::Succeeded(value), Some(spec)) => {
            match run(ctx, record, spec, CallbackEvent::Success(value.clone())).await {
                Ok(()) => return RunResult::Succeeded(value),
                Err(exc_string) => RunResult::Failed {
                    exc_string,
                    retryable: true,
                },
            }
        }
        (other, _) => other,
    };
    match (ended, &failure, &stopped) {
        (
            RunResult::Failed {
                exc_string,
                retryable,
            },
            Some(spec),
            _,
        ) => {
            let event = CallbackEvent::Failure {
                exc_string: exc_string.clone(),
            };
            match run(ctx, record, spec, event).await {
                Ok(()) => RunResult::Failed {
                    exc_string,
                    retryable,
                },
                Err(callback_error) => RunResult::Failed {
                    exc_string: callback_error,
                    retryable,
                },
            }
        }
        (RunResult::Stopped, _, Some(spec)) => {
            if let Err(e) = run(ctx, record, spec, CallbackEvent::Stopped).await {
                tracing::warn!(callback = %shown(spec.path.as_bytes()), error = %shown(e.lines().last().unwrap_or_default().as_bytes()), "stopped callback failed");
            }
            RunResult::Stopped
        }
        (other, _, _) => other,
    }
}

/// Runs one callback; `Err` holds the exception text of its failure.
async fn run(
    ctx: &WorkerContext,
    record: &JobRecord,
    spec: &CallbackSpec,
    event: CallbackEvent,
) -> Result<(), String> {
    let Some(callback) = ctx.handlers.callbacks.get(&spec.path) else {
        let known: Vec<&str> = ctx.handlers.callbacks.paths().collect();
        let message = format!(
            "no native callback for '{}'; this rqw has callbacks for: {}",
            shown(spec.path.as_bytes()),
            if known.is_empty() {
                "(none)".to_string()
            } else {
                known.join(", ")
            }
        );
        return Err(format_exception(
            &spec.path,
            UNKNOWN_FUNCTION_ERROR,
            &message,
        ));
    };
    let context = CallbackContext {
        job_id: record.id.clone(),
        queue: record.origin.clone(),
        event,
    };
    let future = match std::panic::catch_unwind(AssertUnwindSafe(|| callback.call(context))) {
        Ok(f) => AssertUnwindSafe(f).catch_unwind(),
        Err(_) => {
            return Err(format_exception(
                &spec.path,
                HANDLER_PANIC,
                "callback panicked",
            ))
        }
    };
    match tokio::time::timeout(Duration::from_secs(spec.timeout_secs), future).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => Err(format_exception(&spec.path, &e.exc_type, &e.message)),
        Ok(Err(_)) => Err(format_exception(
            &spec.path,
            HANDLER_PANIC,
            "callback panicked",
        )),
        Err(_) => Err(format_exception(
            &spec.path,
            JOB_TIMEOUT_EXCEPTION,
            &timeout_message(spec.timeout_secs as i64),
        )),
    }
}
