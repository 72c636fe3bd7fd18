//! Turns how an execution ended into what RQ records: the worker's side of the decision,
//! which itself is pure and lives in [`crate::protocol::outcome`] (the one place the rule is
//! computed). This adds only what needs the runtime: the worker's settings and the log line
//! for a return value that cannot be serialized.

use crate::protocol::job_record::JobRecord;
use crate::protocol::outcome::{
    encode_result, unserializable_placeholder, Outcome, Policy, RunResult,
};
use crate::protocol::payload::Serializer;
use crate::protocol::result::ExecutionSpan;

/// Decides the [`Outcome`] of an execution of `record` ([`crate::protocol::outcome::decide`]),
/// logging a return value that cannot be serialized (RQ's placeholder is written instead).
pub fn decide(
    record: &JobRecord,
    ended: RunResult,
    serializer: Serializer,
    default_result_ttl: i64,
    span: &ExecutionSpan,
) -> Outcome {
    let ended = match ended {
        RunResult::Succeeded(value) => RunResult::SucceededSerialized(
            encode_result(&value, serializer).unwrap_or_else(|e| {
                tracing::warn!(job_id = %record.id, error = %e, "return value cannot be serialized; writing RQ's placeholder");
                unserializable_placeholder(serializer)
            }),
        ),
        other => other,
    };
    let policy = Policy {
        serializer,
        default_result_ttl,
    };
    crate::protocol::outcome::decide(record, ended, &policy, span)
}
