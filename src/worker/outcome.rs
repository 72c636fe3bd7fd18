//! Turns what happened to an execution into what RQ records: result entry, registry, retry.
//! The one place where a handler's return value or error becomes data in Redis.

use crate::handlers::PyValue;
use crate::protocol::job_record::JobRecord;
use crate::protocol::payload::{encode_return_value, Serializer};
use crate::protocol::result::{failure_fields, success_fields, ExecutionSpan};
use crate::store::finish::Outcome;

/// RQ's `UNSERIALIZABLE_RETURN_VALUE_PAYLOAD`: written when a return value cannot be serialized.
pub const UNSERIALIZABLE_RETURN_VALUE: &str = "Unserializable return value";

/// How an execution ended, before it is written.
#[derive(Debug, Clone)]
pub enum Ended {
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

/// RQ's `exc_string` for a stopped job (`Worker.monitor_work_horse`).
pub const STOPPED_TEXT: &str = "Job stopped by user, work-horse terminated.";

/// Decides the [`Outcome`] of an execution of `record`.
pub fn decide(
    record: &JobRecord,
    ended: Ended,
    serializer: Serializer,
    default_result_ttl: i64,
    worker_name: &str,
    span: &ExecutionSpan<'_>,
) -> Outcome {
    match ended {
        Ended::Succeeded(value) => {
            let encoded = match value {
                PyValue::None => None,
                other => Some(encode_return_value(&other, serializer).unwrap_or_else(|e| {
                    tracing::warn!(job_id = %record.id, error = %e, "return value cannot be serialized; writing RQ's placeholder");
                    encode_return_value(&PyValue::String(UNSERIALIZABLE_RETURN_VALUE.into()), serializer)
                        .unwrap_or_default()
                })),
            };
            Outcome::Finished {
                result_ttl: record.result_ttl.unwrap_or(default_result_ttl),
                result: success_fields(worker_name, encoded.as_deref(), span),
                repeat: repeat_plan(record, span),
            }
        }
        Ended::SucceededSerialized(encoded) => Outcome::Finished {
            result_ttl: record.result_ttl.unwrap_or(default_result_ttl),
            result: success_fields(worker_name, encoded.as_deref(), span),
            repeat: repeat_plan(record, span),
        },
        Ended::Forwarded(queue) => Outcome::Forward { queue },
        Ended::Stopped => Outcome::Stopped {
            failure_ttl: record.failure_ttl,
            result: failure_fields(worker_name, STOPPED_TEXT, span),
        },
        Ended::Failed {
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
                    result: failure_fields(worker_name, &exc_string, span),
                },
            }
        }
    }
}

/// `Repeat` after a success: `(repeats_left after this run, run-at unix time or 0 for now)`.
fn repeat_plan(record: &JobRecord, span: &ExecutionSpan<'_>) -> Option<(u32, i64)> {
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
    use crate::protocol::timestamp::RqTimestamp;
    use std::collections::HashMap;

    fn record(pairs: &[(&str, &str)]) -> JobRecord {
        let mut fields: HashMap<String, Vec<u8>> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        fields.insert("data".into(), b"x".to_vec());
        JobRecord::parse("j", "q", fields)
    }

    fn span() -> ExecutionSpan<'static> {
        ExecutionSpan {
            execution_id: "x",
            started_at: RqTimestamp::now(),
            ended_at: RqTimestamp::now(),
        }
    }

    fn failed(retryable: bool) -> Ended {
        Ended::Failed {
            exc_string: "E: m\n".into(),
            retryable,
        }
    }

    #[test]
    fn retries_then_fails() {
        let r = record(&[("retries_left", "2"), ("retry_intervals", "[0]")]);
        assert!(matches!(
            decide(&r, failed(true), Serializer::Pickle, 500, "w", &span()),
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
            decide(&r, failed(true), Serializer::Pickle, 500, "w", &span()),
            Outcome::Schedule {
                retries_left: 1,
                ..
            }
        ));
        let r = record(&[("retries_left", "0")]);
        assert!(matches!(
            decide(&r, failed(true), Serializer::Pickle, 500, "w", &span()),
            Outcome::Failed { .. }
        ));
    }

    #[test]
    fn permanent_errors_skip_retries() {
        let r = record(&[("retries_left", "3"), ("failure_ttl", "3600")]);
        match decide(&r, failed(false), Serializer::Pickle, 500, "w", &span()) {
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
                Ended::Succeeded(PyValue::None),
                Serializer::Pickle,
                500,
                "w",
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
            Ended::Succeeded(PyValue::None),
            Serializer::Pickle,
            500,
            "w",
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
            Ended::Succeeded(PyValue::None),
            Serializer::Pickle,
            77,
            "w",
            &span(),
        ) {
            Outcome::Finished {
                result_ttl,
                result,
                repeat: None,
            } => {
                assert_eq!(result_ttl, 77);
                assert!(result.iter().all(|(k, _)| *k != "return_value"));
            }
            other => panic!("unexpected {other:?}"),
        }
        let r = record(&[("result_ttl", "-1")]);
        assert!(matches!(
            decide(
                &r,
                Ended::Succeeded(PyValue::None),
                Serializer::Pickle,
                77,
                "w",
                &span()
            ),
            Outcome::Finished { result_ttl: -1, .. }
        ));
    }
}
