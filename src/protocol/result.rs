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

/// The execution an entry belongs to.
#[derive(Debug, Clone)]
pub struct ExecutionSpan<'a> {
    /// The execution id (`uuid4().hex`).
    pub execution_id: &'a str,
    /// When the execution started.
    pub started_at: RqTimestamp,
    /// When it ended.
    pub ended_at: RqTimestamp,
}

/// Field/value pairs of one stream entry, in RQ's order, ready for `XADD`.
pub type ResultFields = Vec<(&'static str, String)>;

/// The fields of a successful result. `return_value` is the serialized value (pickle or
/// JSON bytes), `None` when the handler returned Python `None` (the field is then omitted).
pub fn success_fields(
    worker_name: &str,
    return_value: Option<&[u8]>,
    span: &ExecutionSpan<'_>,
) -> ResultFields {
    let mut fields = vec![
        ("type", (ResultType::Successful as u8).to_string()),
        ("worker_name", worker_name.to_string()),
    ];
    if let Some(bytes) = return_value {
        fields.push(("return_value", BASE64.encode(bytes)));
    }
    push_span(&mut fields, span);
    fields
}

/// The fields of a failed (or stopped) result carrying the traceback text `exc_string`.
pub fn failure_fields(
    worker_name: &str,
    exc_string: &str,
    span: &ExecutionSpan<'_>,
) -> ResultFields {
    let mut fields = vec![
        ("type", (ResultType::Failed as u8).to_string()),
        ("worker_name", worker_name.to_string()),
        ("exc_string", encode_exc_string(exc_string)),
    ];
    push_span(&mut fields, span);
    fields
}

fn push_span(fields: &mut ResultFields, span: &ExecutionSpan<'_>) {
    fields.push(("execution_id", span.execution_id.to_string()));
    fields.push((
        "execution_started_at",
        span.started_at.unix_float().to_string(),
    ));
    fields.push(("execution_ended_at", span.ended_at.unix_float().to_string()));
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

    fn span() -> ExecutionSpan<'static> {
        ExecutionSpan {
            execution_id: "abc",
            started_at: RqTimestamp::now(),
            ended_at: RqTimestamp::now(),
        }
    }

    #[test]
    fn none_return_value_is_omitted() {
        let fields = success_fields("w1", None, &span());
        assert!(fields.iter().all(|(k, _)| *k != "return_value"));
        assert_eq!(fields[0], ("type", "1".to_string()));
    }

    #[test]
    fn return_value_is_padded_base64() {
        // pickle of 5 with protocol 5 as RQ writes it: b'\x80\x05K\x05.'
        let fields = success_fields("w1", Some(b"\x80\x05K\x05."), &span());
        let rv = fields
            .iter()
            .find(|(k, _)| *k == "return_value")
            .map(|(_, v)| v.clone());
        assert_eq!(rv.as_deref(), Some("gAVLBS4="));
    }

    #[test]
    fn exc_string_is_base64_of_zlib() {
        let fields = failure_fields("w1", "ValueError: bad\n", &span());
        let enc = &fields
            .iter()
            .find(|(k, _)| *k == "exc_string")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let raw = BASE64.decode(enc).unwrap();
        let mut out = String::new();
        ZlibDecoder::new(&raw[..]).read_to_string(&mut out).unwrap();
        assert_eq!(out, "ValueError: bad\n");
        assert_eq!(fields[0].1, "2");
    }
}
