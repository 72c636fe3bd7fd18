//! The outcome decision, pure: what RQ records for the way an execution ended (a result, an
//! error, a timeout, a stop), with its retry and repeat policies and TTLs. This is the one
//! place the rule is computed for a job rqw ran; `finish.lua` only applies the [`Outcome`] it
//! is handed.
//!
//! The retry rule (RQ's `Job.retry` / `Worker.handle_job_failure`): a failure that may be
//! retried, of a job whose `retries_left` is above 0, is retried with `retries_left - 1`,
//! after the interval [`JobRecord::next_retry_interval`] picks: 0 puts it back on its queue
//! (at the front when `enqueue_at_front_on_retry`), more schedules it. Anything else fails for
//! good. [`is_last_attempt`] is the same rule seen before the run, as handlers are told it.
//!
//! One other place decides a retry, and cannot call this: `recover.lua`, the duties' cleanup
//! of abandoned jobs (a worker died mid-job), which runs inside Redis for atomicity and
//! mirrors RQ's own `StartedJobRegistry.cleanup` / `handle_job_failure` in Lua (same
//! `retries_left` / `retry_intervals` reading as [`JobRecord::next_retry_interval`]). Change
//! one, change the other.

use crate::job_record::JobRecord;
use crate::payload::{encode_return_value, PayloadError, Serializer};
use crate::result::{failure_entry, success_entry, ExecutionSpan, ResultEntry};
use crate::value::PyValue;

/// RQ's `UNSERIALIZABLE_RETURN_VALUE_PAYLOAD`: written when a return value cannot be serialized.
pub const UNSERIALIZABLE_RETURN_VALUE: &str = "Unserializable return value";

/// RQ's `exc_string` for a stopped job (`Worker.monitor_work_horse`).
pub const STOPPED_TEXT: &str = "Job stopped by user, work-horse terminated.";

/// What a run produced (a value, an error, a stop, a forward), the input of [`decide`]; not
/// yet how the job ended, which is its [`Outcome`].
#[derive(Debug, Clone)]
pub enum RunResult {
    /// The handler returned a value.
    Succeeded(PyValue),
    /// A Python horse returned a value already serialized with the job's serializer
    /// (`None` for Python `None`).
    SucceededSerialized(Option<Vec<u8>>),
    /// The job failed; `retryable` is false for permanent errors.
    Failed {
        /// The Python-style traceback text.
        exc_string: String,
        /// Whether RQ's retry policy may run it again.
        retryable: bool,
    },
    /// Stopped by a `stop-job` / `stop-execution` command: never retried.
    Stopped,
    /// Not runnable here (no handler, or undecodable): moved to this queue intact.
    Forwarded(String),
}

/// How a job's execution ended, the one terminal type: what RQ records for it, as [`decide`]
/// makes it from the [`RunResult`]; the store's `finish.lua` writes it (and answers with
/// what it did, `store::finish::Recorded`).
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Success: result entry, finished registry, `result_ttl`.
    Finished {
        /// Run again (2.12+ `Repeat`): `(repeats_left after this run, run-at unix time or 0 for now)`.
        repeat: Option<(u32, i64)>,
        /// The job's `result_ttl` or the worker default.
        result_ttl: i64,
        /// The result stream entry.
        result: ResultEntry,
    },
    /// Failure without retry: failed registry, `failure_ttl` (`None` = RQ's default).
    Failed {
        /// The job's `failure_ttl`, if set.
        failure_ttl: Option<i64>,
        /// The result stream entry (type 2).
        result: ResultEntry,
    },
    /// Stopped by a command: like `Failed`, with status `stopped`.
    Stopped {
        /// The job's `failure_ttl`, if set.
        failure_ttl: Option<i64>,
        /// The result stream entry (type 2).
        result: ResultEntry,
    },
    /// Retry now: back on its queue.
    Requeue {
        /// `retries_left` after this attempt.
        retries_left: u32,
        /// LPUSH instead of RPUSH (`enqueue_at_front_on_retry`).
        at_front: bool,
    },
    /// Not run here: moved intact to another queue (`--forward-unknown`).
    Forward {
        /// The queue a Python worker serves.
        queue: String,
    },
    /// Retry later: into the scheduled registry.
    Schedule {
        /// `retries_left` after this attempt.
        retries_left: u32,
        /// Unix time to run at.
        run_at: i64,
    },
}

impl Outcome {
    /// The name the worker's log and metrics give this outcome.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Finished { .. } => "finished",
            Outcome::Failed { .. } => "failed",
            Outcome::Stopped { .. } => "stopped",
            Outcome::Requeue { .. } => "requeued",
            Outcome::Forward { .. } => "forwarded",
            Outcome::Schedule { .. } => "scheduled",
        }
    }

    /// Whether recording it writes a result entry (so a repeat after a lost reply can look
    /// for it).
    pub fn writes_result_entry(&self) -> bool {
        match self {
            Outcome::Finished { result_ttl, .. } => *result_ttl != 0,
            Outcome::Failed { .. } | Outcome::Stopped { .. } => true,
            Outcome::Requeue { .. } | Outcome::Schedule { .. } | Outcome::Forward { .. } => false,
        }
    }
}

/// The worker settings a decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// The serializer of return values.
    pub serializer: Serializer,
    /// `result_ttl` for a job that names none (`--results-ttl`).
    pub default_result_ttl: i64,
}

/// Whether a failure of this run would be final: no retry is left by the rule [`decide`]
/// applies (handlers are told it as `JobContext::last_attempt`).
pub fn is_last_attempt(record: &JobRecord) -> bool {
    record.next_retry_interval().is_none()
}

/// A return value serialized as its result entry holds it (`None` for Python `None`).
pub fn encode_result(
    value: &PyValue,
    serializer: Serializer,
) -> Result<Option<Vec<u8>>, PayloadError> {
    match value {
        PyValue::None => Ok(None),
        other => encode_return_value(other, serializer).map(Some),
    }
}

/// RQ's placeholder for a return value that cannot be serialized, serialized.
pub fn unserializable_placeholder(serializer: Serializer) -> Option<Vec<u8>> {
    Some(
        encode_return_value(
            &PyValue::String(UNSERIALIZABLE_RETURN_VALUE.into()),
            serializer,
        )
        .unwrap_or_default(),
    )
}

/// Decides the [`Outcome`] of an execution of `record` that ended as `ended`.
pub fn decide(
    record: &JobRecord,
    ended: RunResult,
    policy: &Policy,
    span: &ExecutionSpan,
) -> Outcome {
    let finished = |encoded: Option<Vec<u8>>| Outcome::Finished {
        result_ttl: record.result_ttl.unwrap_or(policy.default_result_ttl),
        result: success_entry(encoded.as_deref(), span),
        repeat: repeat_plan(record, span),
    };
    match ended {
        RunResult::Succeeded(value) => finished(
            encode_result(&value, policy.serializer)
                .unwrap_or_else(|_| unserializable_placeholder(policy.serializer)),
        ),
        RunResult::SucceededSerialized(encoded) => finished(encoded),
        RunResult::Forwarded(queue) => Outcome::Forward { queue },
        RunResult::Stopped => Outcome::Stopped {
            failure_ttl: record.failure_ttl,
            result: failure_entry(STOPPED_TEXT, span),
        },
        RunResult::Failed {
            exc_string,
            retryable,
        } => {
            let retries_left = record.retries_left.unwrap_or(0);
            match record.next_retry_interval().filter(|_| retryable) {
                Some(0) => Outcome::Requeue {
                    retries_left: retries_left - 1,
                    at_front: record.enqueue_at_front_on_retry,
                },
                Some(delay) => Outcome::Schedule {
                    retries_left: retries_left - 1,
                    run_at: span.ended_at.unix_seconds() + delay as i64,
                },
                None => Outcome::Failed {
                    failure_ttl: record.failure_ttl,
                    result: failure_entry(&exc_string, span),
                },
            }
        }
    }
}

/// `Repeat` after a success: `(repeats_left after this run, run-at unix time or 0 for now)`.
fn repeat_plan(record: &JobRecord, span: &ExecutionSpan) -> Option<(u32, i64)> {
    record.next_repeat_interval().map(|delay| {
        let left = record.repeats_left.unwrap_or(1).saturating_sub(1);
        let at = if delay == 0 {
            0
        } else {
            span.ended_at.unix_seconds() + delay as i64
        };
        (left, at)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timestamp::RqTimestamp;
    use std::collections::HashMap;

    fn record(pairs: &[(&str, &str)]) -> JobRecord {
        let mut fields: HashMap<String, Vec<u8>> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        fields.insert("data".into(), b"x".to_vec());
        JobRecord::parse("j", "q", fields)
    }

    fn policy(default_result_ttl: i64) -> Policy {
        Policy {
            serializer: Serializer::Pickle,
            default_result_ttl,
        }
    }

    fn span() -> ExecutionSpan {
        ExecutionSpan {
            started_at: RqTimestamp::now(),
            ended_at: RqTimestamp::now(),
        }
    }

    fn failed(retryable: bool) -> RunResult {
        RunResult::Failed {
            exc_string: "E: m\n".into(),
            retryable,
        }
    }

    #[test]
    fn retries_then_fails() {
        let r = record(&[("retries_left", "2"), ("retry_intervals", "[0]")]);
        assert!(matches!(
            decide(&r, failed(true), &policy(500), &span()),
            Outcome::Requeue {
                retries_left: 1,
                at_front: false
            }
        ));
        let r = record(&[
            ("retries_left", "2"),
            ("retry_intervals", "[5]"),
            ("enqueue_at_front_on_retry", "1"),
        ]);
        assert!(matches!(
            decide(&r, failed(true), &policy(500), &span()),
            Outcome::Schedule {
                retries_left: 1,
                ..
            }
        ));
        let r = record(&[("retries_left", "0")]);
        assert!(matches!(
            decide(&r, failed(true), &policy(500), &span()),
            Outcome::Failed { .. }
        ));
    }

    #[test]
    fn permanent_errors_skip_retries() {
        let r = record(&[("retries_left", "3"), ("failure_ttl", "3600")]);
        match decide(&r, failed(false), &policy(500), &span()) {
            Outcome::Failed { failure_ttl, .. } => assert_eq!(failure_ttl, Some(3600)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn repeats_are_planned_from_repeats_left() {
        let r = record(&[("repeats_left", "2"), ("repeat_intervals", "[0]")]);
        assert!(matches!(
            decide(
                &r,
                RunResult::Succeeded(PyValue::None),
                &policy(500),
                &span()
            ),
            Outcome::Finished {
                repeat: Some((1, 0)),
                ..
            }
        ));
        let r = record(&[("repeats_left", "1"), ("repeat_intervals", "[30]")]);
        match decide(
            &r,
            RunResult::Succeeded(PyValue::None),
            &policy(500),
            &span(),
        ) {
            Outcome::Finished {
                repeat: Some((0, at)),
                ..
            } => assert!(at > 0),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn result_ttl_defaults_to_worker_setting() {
        let r = record(&[]);
        match decide(
            &r,
            RunResult::Succeeded(PyValue::None),
            &policy(77),
            &span(),
        ) {
            Outcome::Finished {
                result_ttl,
                result,
                repeat: None,
            } => {
                assert_eq!(result_ttl, 77);
                assert_eq!(result.kind, crate::result::ResultType::Successful);
                assert_eq!(result.value, None, "a None return value is omitted");
            }
            other => panic!("unexpected {other:?}"),
        }
        let r = record(&[("result_ttl", "-1")]);
        assert!(matches!(
            decide(
                &r,
                RunResult::Succeeded(PyValue::None),
                &policy(77),
                &span()
            ),
            Outcome::Finished { result_ttl: -1, .. }
        ));
    }

    #[test]
    fn retry_interval_schedules_from_the_end_of_the_run() {
        let r = record(&[("retries_left", "1"), ("retry_intervals", "[7]")]);
        let s = span();
        match decide(&r, failed(true), &policy(500), &s) {
            Outcome::Schedule {
                retries_left: 0,
                run_at,
            } => assert_eq!(run_at, s.ended_at.unix_seconds() + 7),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn last_attempt_is_the_rule_decide_retries_by() {
        for pairs in [
            &[][..],
            &[("retries_left", "0")][..],
            &[("retries_left", "1")][..],
            &[("retries_left", "2"), ("retry_intervals", "[3, 4]")][..],
        ] {
            let r = record(pairs);
            let failed_for_good = matches!(
                decide(&r, failed(true), &policy(500), &span()),
                Outcome::Failed { .. }
            );
            assert_eq!(is_last_attempt(&r), failed_for_good, "{pairs:?}");
        }
    }

    #[test]
    fn stops_and_forwards_are_never_retried() {
        let r = record(&[("retries_left", "3"), ("failure_ttl", "9")]);
        match decide(&r, RunResult::Stopped, &policy(500), &span()) {
            Outcome::Stopped {
                failure_ttl: Some(9),
                ..
            } => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            decide(&r, RunResult::Forwarded("py".into()), &policy(500), &span()),
            Outcome::Forward { queue } if queue == "py"
        ));
    }
}
