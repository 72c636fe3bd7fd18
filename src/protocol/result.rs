//! Entries of the `rq:results:<id>` stream (`rq/results.py: Result.serialize`).
//!
//! | field | encoding |
//! | --- | --- |
//! | `type` | `1` successful, `2` failed (stopped jobs are type 2 too) |
//! | `worker_name` | the worker's name |
//! | `return_value` | base64 (padded) of the serialized value; omitted when the value is `None` |
//! | `exc_string` | base64 of zlib of the UTF-8 traceback text; failures only |
//! | `execution_id`, `execution_started_at`, `execution_ended_at` | id and float unix times |

use std::io::Write;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use flate2::write::ZlibEncoder;
use flate2::Compression;

use super::timestamp::RqTimestamp;

/// `Result.Type` values that every supported RQ version reads (4 and 5 crash rq 2.0.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultType {
    /// `Result.Type.SUCCESSFUL`.
    Successful = 1,
    /// `Result.Type.FAILED` (also used for stopped jobs, as RQ does).
    Failed = 2,
}

impl ResultType {
    /// The `type` field's text (`"1"`, `"2"`).
    pub fn code(self) -> &'static str {
        match self {
            ResultType::Successful => "1",
            ResultType::Failed => "2",
        }
    }
}

/// When the execution an entry belongs to ran (its id is the finish call's, see
/// [`ResultEntry`]).
#[derive(Debug, Clone)]
pub struct ExecutionSpan {
    /// When the execution started.
    pub started_at: RqTimestamp,
    /// When it ended.
    pub ended_at: RqTimestamp,
}

/// One entry of a job's results stream, as an outcome carries it to the store. Its
/// `worker_name` and `execution_id` are not held here: they are the finishing worker's and
/// the execution being ended, which `finish.lua` has from its call (issue 15: fewer and
/// smaller arguments per job); [`ResultEntry::fields`] gives the whole entry in RQ's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultEntry {
    /// `type`.
    pub kind: ResultType,
    /// `return_value` (successful; `None` when the value is Python `None`: the field is
    /// omitted) or `exc_string` (failed).
    pub value: Option<String>,
    /// `execution_started_at` (float unix time).
    pub started_at: String,
    /// `execution_ended_at`.
    pub ended_at: String,
}

impl ResultEntry {
    /// The name of [`ResultEntry::value`]'s field: `return_value` or `exc_string`.
    pub fn value_field(&self) -> &'static str {
        match self.kind {
            ResultType::Successful => "return_value",
            ResultType::Failed => "exc_string",
        }
    }

    /// The entry's field/value pairs in RQ's order, as `finish.lua` writes them for the
    /// worker `worker_name` ending execution `execution_id`.
    pub fn fields<'a>(
        &'a self,
        worker_name: &'a str,
        execution_id: &'a str,
    ) -> Vec<(&'static str, &'a str)> {
        let mut fields = vec![("type", self.kind.code()), ("worker_name", worker_name)];
        if let Some(value) = &self.value {
            fields.push((self.value_field(), value));
        }
        fields.push(("execution_id", execution_id));
        fields.push(("execution_started_at", &self.started_at));
        fields.push(("execution_ended_at", &self.ended_at));
        fields
    }
}

/// The entry of a successful result. `return_value` is the serialized value (pickle or
/// JSON bytes), `None` when the handler returned Python `None` (the field is then omitted).
pub fn success_entry(return_value: Option<&[u8]>, span: &ExecutionSpan) -> ResultEntry {
    ResultEntry {
        kind: ResultType::Successful,
        value: return_value.map(|bytes| BASE64.encode(bytes)),
        started_at: span.started_at.unix_float().to_string(),
        ended_at: span.ended_at.unix_float().to_string(),
    }
}

/// The entry of a failed (or stopped) result carrying the traceback text `exc_string`.
pub fn failure_entry(exc_string: &str, span: &ExecutionSpan) -> ResultEntry {
    ResultEntry {
        kind: ResultType::Failed,
        value: Some(encode_exc_string(exc_string)),
        started_at: span.started_at.unix_float().to_string(),
        ended_at: span.ended_at.unix_float().to_string(),
    }
}

/// `base64(zlib.compress(text.encode()))`, as `Result.serialize` stores `exc_string`.
pub fn encode_exc_string(text: &str) -> String {
    BASE64.encode(zlib_compress(text.as_bytes()))
}

/// `zlib.compress(bytes)`: RFC 1950 wrapper, default level.
pub fn zlib_compress(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(
        Vec::with_capacity(bytes.len() / 2 + 16),
        Compression::default(),
    );
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::ZlibDecoder;
    use std::io::Read;

    fn span() -> ExecutionSpan {
        ExecutionSpan {
            started_at: RqTimestamp::now(),
            ended_at: RqTimestamp::now(),
        }
    }

    #[test]
    fn none_return_value_is_omitted() {
        let entry = success_entry(None, &span());
        let fields = entry.fields("w1", "abc");
        assert!(fields.iter().all(|(k, _)| *k != "return_value"));
        assert_eq!(fields[0], ("type", "1"));
        assert_eq!(
            fields.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            [
                "type",
                "worker_name",
                "execution_id",
                "execution_started_at",
                "execution_ended_at"
            ]
        );
    }

    #[test]
    fn return_value_is_padded_base64() {
        // pickle of 5 with protocol 5 as RQ writes it: b'\x80\x05K\x05.'
        let entry = success_entry(Some(b"\x80\x05K\x05."), &span());
        assert_eq!(entry.value.as_deref(), Some("gAVLBS4="));
        assert_eq!(entry.fields("w1", "abc")[2], ("return_value", "gAVLBS4="));
    }

    #[test]
    fn exc_string_is_base64_of_zlib() {
        let entry = failure_entry("ValueError: bad\n", &span());
        let fields = entry.fields("w1", "abc");
        assert_eq!(fields[0], ("type", "2"));
        assert_eq!(fields[1], ("worker_name", "w1"));
        assert_eq!(fields[3], ("execution_id", "abc"));
        let (name, enc) = fields[2];
        assert_eq!(name, "exc_string");
        let raw = BASE64.decode(enc).unwrap();
        let mut out = String::new();
        ZlibDecoder::new(&raw[..]).read_to_string(&mut out).unwrap();
        assert_eq!(out, "ValueError: bad\n");
    }
}
