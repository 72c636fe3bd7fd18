//! Running a job in a Python horse (`--python`): the second kind of handler behind the same
//! dispatch as native ones. The horse runs the job with the app's own rq and answers with
//! the serialized return value or RQ's `exc_string`; everything Redis sees is written by the
//! runtime afterwards, exactly as for a native handler. A job that must stop (timeout,
//! `kill-horse`, `stop-job`, forced shutdown) stops for real: its horse is killed (SIGKILL)
//! and replaced.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::context::WorkerContext;
use super::execute::KILLED_HORSE_TEXT;
use super::running::StopReason;
use crate::horses::message::{callback_request, job_request, CallbackKind, HorseCallbacks};
use crate::horses::{CallError, Discard, HorsePool};
use crate::metrics::JobProbe;
use crate::protocol::exception::{
    format_exception, timeout_message, HORSE_PROTOCOL_ERROR, HORSE_START_ERROR,
    JOB_TIMEOUT_EXCEPTION, SHUTDOWN_ERROR,
};
use crate::protocol::job_record::{CallbackSpec, JobRecord, JobTimeout};
use crate::protocol::outcome::RunResult;

enum Interrupt {
    Cancelled,
    TimedOut,
}

/// Runs `record` (whose started hash is `hash`) in a horse of `pool`.
pub async fn execute(
    ctx: &WorkerContext,
    pool: &Arc<HorsePool>,
    record: &JobRecord,
    hash: &HashMap<String, Vec<u8>>,
    cancel: &CancellationToken,
    stop_reason: &OnceLock<StopReason>,
    probe: &JobProbe,
) -> RunResult {
    let python_callback = |spec: &Option<CallbackSpec>| {
        spec.as_ref()
            .is_some_and(|s| ctx.handlers.callbacks.get(&s.path).is_none())
    };
    let callbacks = HorseCallbacks {
        success: python_callback(&record.success_callback),
        failure: python_callback(&record.failure_callback),
    };
    let lease = tokio::select! {
        biased;
        _ = cancel.cancelled() => {
            let ended = interrupted(stop_reason);
            let run = python_callback(&record.stopped_callback);
            return after_stop(pool, record, hash, ended, run).await;
        }
        lease = pool.checkout() => lease,
    };
    let mut lease = match lease {
        Ok(lease) => lease,
        Err(e) => {
            return failed(
                HORSE_START_ERROR,
                &format!("Python horses cannot start: {e}"),
            );
        }
    };
    lease.horse.attach_span(tracing::Span::current());
    tracing::debug!(horse = lease.horse.pid(), "job given to a Python horse");
    let request = job_request(&record.id, hash, callbacks, !record.oversize.is_empty());
    let timeout = async {
        match record.timeout {
            JobTimeout::Seconds(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            JobTimeout::Unlimited => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(Interrupt::Cancelled),
        _ = timeout => Err(Interrupt::TimedOut),
        reply = lease.horse.call(&request) => Ok(reply),
    };
    let reply = match result {
        Ok(reply) => reply,
        Err(Interrupt::Cancelled) => {
            pool.discard(lease, Discard::Killed);
            let ended = interrupted(stop_reason);
            let run = python_callback(&record.stopped_callback);
            return after_stop(pool, record, hash, ended, run).await;
        }
        Err(Interrupt::TimedOut) => {
            pool.discard(lease, Discard::Timeout);
            let message = timeout_message(record.timeout.as_rq_int());
            let ended = failed(JOB_TIMEOUT_EXCEPTION, &message);
            if let (true, Some(spec)) = (callbacks.failure, &record.failure_callback) {
                if let Err(exc_string) =
                    callback_after_kill(pool, record, hash, spec, CallbackKind::Timeout, &message)
                        .await
                {
                    // RQ: a failing failure callback's text replaces the job's.
                    return RunResult::Failed {
                        exc_string,
                        retryable: true,
                    };
                }
            }
            return ended;
        }
    };
    match reply {
        Ok(reply) => {
            if let Some(name) = &reply.func_name {
                // Named here only when rqw could not read the path itself (execute.rs).
                if probe.set_function(name) {
                    let shown = crate::protocol::text::shown(name.as_bytes());
                    tracing::Span::current().record("function", shown.as_str());
                }
            }
            if !reply.ok {
                pool.checkin(lease);
                let exc_string = reply.exc_string.unwrap_or_else(|| {
                    format_exception("rqw", HORSE_PROTOCOL_ERROR, "a failure without exc_string")
                });
                return RunResult::Failed {
                    exc_string,
                    retryable: true,
                };
            }
            match reply.return_bytes() {
                Ok(bytes) => {
                    pool.checkin(lease);
                    RunResult::SucceededSerialized(bytes)
                }
                Err(e) => {
                    pool.discard(lease, Discard::Garbage);
                    failed(
                        HORSE_PROTOCOL_ERROR,
                        &format!("the return value is not base64: {e}"),
                    )
                }
            }
        }
        Err(CallError::Died(text)) => {
            pool.discard(lease, Discard::Died);
            tracing::warn!("{text}");
            RunResult::Failed {
                exc_string: text,
                retryable: true,
            }
        }
        Err(CallError::Garbage(detail)) => {
            pool.discard(lease, Discard::Garbage);
            failed(
                HORSE_PROTOCOL_ERROR,
                &format!("the Python horse answered garbage: {detail}"),
            )
        }
    }
}

/// A stopped job's Python `on_stopped` callback (when `run_callback`), run in a horse after
/// the job's own was killed (or before it had one); its failure is logged, as in RQ.
async fn after_stop(
    pool: &Arc<HorsePool>,
    record: &JobRecord,
    hash: &HashMap<String, Vec<u8>>,
    ended: RunResult,
    run_callback: bool,
) -> RunResult {
    if let (RunResult::Stopped, true, Some(spec)) = (&ended, run_callback, &record.stopped_callback)
    {
        if let Err(e) =
            callback_after_kill(pool, record, hash, spec, CallbackKind::Stopped, "").await
        {
            tracing::warn!(callback = %spec.path, error = %e.lines().last().unwrap_or_default(), "stopped callback failed");
        }
    }
    ended
}

/// Runs a callback of a job whose horse was killed in another horse, under the callback's
/// timeout; `Err` holds the callback's exception text.
async fn callback_after_kill(
    pool: &Arc<HorsePool>,
    record: &JobRecord,
    hash: &HashMap<String, Vec<u8>>,
    spec: &CallbackSpec,
    kind: CallbackKind,
    exc_message: &str,
) -> Result<(), String> {
    let mut lease = pool
        .checkout()
        .await
        .map_err(|e| format_exception(&spec.path, HORSE_START_ERROR, &e.to_string()))?;
    lease.horse.attach_span(tracing::Span::current());
    let request = callback_request(kind, &record.id, hash, exc_message);
    let limit = Duration::from_secs(spec.timeout_secs);
    match tokio::time::timeout(limit, lease.horse.call(&request)).await {
        Ok(Ok(reply)) => {
            pool.checkin(lease);
            if reply.ok {
                Ok(())
            } else {
                Err(reply.exc_string.unwrap_or_default())
            }
        }
        Ok(Err(CallError::Died(text))) => {
            pool.discard(lease, Discard::Died);
            Err(text)
        }
        Ok(Err(CallError::Garbage(detail))) => {
            pool.discard(lease, Discard::Garbage);
            Err(format_exception(&spec.path, HORSE_PROTOCOL_ERROR, &detail))
        }
        Err(_) => {
            pool.discard(lease, Discard::Timeout);
            Err(format_exception(
                &spec.path,
                JOB_TIMEOUT_EXCEPTION,
                &timeout_message(spec.timeout_secs as i64),
            ))
        }
    }
}

fn interrupted(stop_reason: &OnceLock<StopReason>) -> RunResult {
    match stop_reason.get() {
        Some(StopReason::StoppedByUser) => RunResult::Stopped,
        Some(StopReason::HorseKilled) => RunResult::Failed {
            exc_string: KILLED_HORSE_TEXT.to_string(),
            retryable: true,
        },
        None => failed(
            SHUTDOWN_ERROR,
            "the worker was shut down (forced) while the job ran",
        ),
    }
}

fn failed(exc_type: &str, message: &str) -> RunResult {
    RunResult::Failed {
        exc_string: format_exception("rqw", exc_type, message),
        retryable: true,
    }
}
