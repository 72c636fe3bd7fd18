//! The fuzz targets' bodies, shared by the cargo-fuzz binaries (`fuzz_targets/*.rs`, nightly)
//! and the stable smoke test (`tests/fuzz_smoke.rs`, run by `cargo test`), so both exercise
//! exactly the same code and check the same properties:
//!
//! - nothing panics, whatever the bytes (a panic is what a fuzzer reports);
//! - an error's text is one short line: it becomes the tail of the job's `exc_string`;
//! - what decodes is plain data that re-encodes (RQ's result path) and decodes back equal;
//! - a parsed job hash never yields an unusable record without saying why.

use std::collections::HashMap;

use rqw::handlers::PyValue;
use rqw::protocol::job_record::{JobRecord, JobTimeout};
use rqw::protocol::payload::{decode_job_data, encode_return_value, Serializer};
use rqw::protocol::pickle_scan;

/// Longest error text accepted (it ends up in `exc_string`).
const MAX_ERROR_CHARS: usize = 600;

/// The job hash fields the worker reads; a field-name byte >= 0xE0 in the `job_record` input
/// picks one of these, so the fuzzer reaches them without guessing names.
pub const JOB_FIELDS: &[&str] = &[
    "data",
    "meta",
    "origin",
    "status",
    "timeout",
    "result_ttl",
    "failure_ttl",
    "retries_left",
    "retry_intervals",
    "enqueue_at_front_on_retry",
    "repeats_left",
    "repeat_intervals",
    "success_callback_name",
    "success_callback_timeout",
    "failure_callback_name",
    "failure_callback_timeout",
    "stopped_callback_name",
    "stopped_callback_timeout",
    "created_at",
    "enqueued_at",
];

fn check_error_text(text: &str) {
    assert!(!text.contains('\n'), "multi-line error text: {text:?}");
    assert!(
        text.chars().count() <= MAX_ERROR_CHARS,
        "error text of {} chars",
        text.chars().count()
    );
}

/// Equality as Python's `==` would see it after a round trip, except that NaN equals NaN.
fn same(a: &PyValue, b: &PyValue) -> bool {
    match (a, b) {
        (PyValue::F64(x), PyValue::F64(y)) => x == y || (x.is_nan() && y.is_nan()),
        (PyValue::List(x), PyValue::List(y)) | (PyValue::Tuple(x), PyValue::Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (PyValue::Dict(x), PyValue::Dict(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((k1, v1), (k2, v2))| k1 == k2 && same(v1, v2))
        }
        _ => a == b,
    }
}

fn holds_set(value: &PyValue) -> bool {
    match value {
        PyValue::Set(_) | PyValue::FrozenSet(_) => true,
        PyValue::List(items) | PyValue::Tuple(items) => items.iter().any(holds_set),
        PyValue::Dict(map) => {
            map.values().any(holds_set)
                || map.keys().any(|k| format!("{k:?}").contains("FrozenSet"))
        }
        _ => false,
    }
}

/// A decoded pickle re-encodes as RQ's results are written and decodes back to the same value.
fn check_roundtrip(value: &PyValue) {
    match encode_return_value(value, Serializer::Pickle) {
        Ok(bytes) => match pickle_scan::decode(&bytes) {
            Ok(again) => assert!(
                same(value, &again),
                "round trip changed {value:?} into {again:?}"
            ),
            // Results are written in protocol 3, which has no set opcodes: serde-pickle writes
            // `builtins.set([...])`, which Python reads and rqw's reader (plain data only)
            // refuses. rqw never reads results back, so only that refusal is allowed.
            Err(e) if holds_set(value) && e.forbidden_label().is_some() => {}
            Err(e) => panic!("re-encoded value does not decode: {e}"),
        },
        Err(e) => {
            // Only values the serializer cannot hold may be refused.
            assert!(e.is_unserializable(), "unexpected encode error: {e}");
        }
    }
}

/// `payload::decode_job_data` with the pickle serializer (zlib or raw bytes).
pub fn decode_job_data_pickle(data: &[u8]) {
    match decode_job_data(data, Serializer::Pickle) {
        Ok(call) => {
            for arg in &call.args {
                check_roundtrip(arg);
            }
        }
        Err(e) => check_error_text(&e.to_string()),
    }
}

/// `payload::decode_job_data` with the JSON serializer.
pub fn decode_job_data_json(data: &[u8]) {
    match decode_job_data(data, Serializer::Json) {
        Ok(call) => {
            // What JSON decodes can be written back as JSON (RQ's result path).
            for arg in &call.args {
                if let Err(e) = encode_return_value(arg, Serializer::Json) {
                    assert!(e.is_unserializable(), "unexpected encode error: {e}");
                }
            }
        }
        Err(e) => check_error_text(&e.to_string()),
    }
}

/// `pickle_scan::decode` on raw pickle bytes; `scan` must agree with it.
pub fn pickle_decode(data: &[u8]) {
    let decoded = pickle_scan::decode(data);
    let scanned = pickle_scan::scan(data);
    match decoded {
        Ok(value) => {
            assert!(
                scanned.is_ok(),
                "decode accepted what scan refused: {scanned:?}"
            );
            check_roundtrip(&value);
        }
        Err(e) => {
            check_error_text(&e.to_string());
            if let Some(label) = e.forbidden_label() {
                assert!(!label.contains('\n'));
                assert!(
                    scanned.is_err(),
                    "scan accepted what decode refused ({label})"
                );
            }
        }
    }
}

/// Splits fuzz bytes into a job hash: entries of `[name length][name][u16 BE value
/// length][value]`; a name length byte >= 0xE0 names [`JOB_FIELDS`]`[byte - 0xE0]` instead.
pub fn job_fields(mut data: &[u8]) -> HashMap<String, Vec<u8>> {
    let mut fields = HashMap::new();
    while let Some((&n, rest)) = data.split_first() {
        let (name, rest) = if n >= 0xE0 {
            let name = JOB_FIELDS[usize::from(n - 0xE0) % JOB_FIELDS.len()].to_string();
            (name, rest)
        } else {
            let n = usize::from(n).min(rest.len());
            (String::from_utf8_lossy(&rest[..n]).into_owned(), &rest[n..])
        };
        let (len, rest) = match rest {
            [hi, lo, rest @ ..] => (usize::from(u16::from_be_bytes([*hi, *lo])), rest),
            _ => (rest.len(), &rest[rest.len()..]),
        };
        let len = len.min(rest.len());
        fields.insert(name, rest[..len].to_vec());
        data = &rest[len..];
    }
    fields
}

/// `JobRecord::parse` on a job hash built from the fuzz bytes.
pub fn job_record(data: &[u8]) {
    let fields = job_fields(data);
    let had_data = fields.contains_key("data");
    let record = JobRecord::parse("fuzz-job", "fuzz-queue", fields);
    assert!(!record.origin.is_empty(), "empty origin");
    assert_eq!(record.data.is_some(), had_data);
    if !had_data {
        assert!(
            !record.problems.is_empty(),
            "a hash without data must be reported"
        );
    }
    if let JobTimeout::Seconds(s) = record.timeout {
        assert!(s > 0, "a zero timeout must become the default");
    }
    for problem in &record.problems {
        check_error_text(problem);
    }
    let _ = record.next_retry_interval();
    let _ = record.next_repeat_interval();
}
