//! The fuzz targets' bodies, shared by the cargo-fuzz binaries (`fuzz_targets/*.rs`, nightly)
//! and the stable smoke test (`tests/fuzz_smoke.rs`, run by `cargo test`), so both exercise
//! exactly the same code and check the same properties:
//!
//! - nothing panics, whatever the bytes (a panic is what a fuzzer reports);
//! - an error's text is one short line: it becomes the tail of the job's `exc_string`;
//! - what decodes is plain data that re-encodes (RQ's result path) and decodes back equal;
//! - a parsed job hash never yields an unusable record without saying why;
//! - a decode within a small memory budget builds no value larger than that budget, and
//!   accepts only what the default budget accepts (issue 13);
//! - hostile text echoed in a log field or a failure text holds no control character, stays
//!   bounded, and a failure text's last line is one `Type: message` line (issue 13).

use std::collections::HashMap;

use rqw::handlers::PyValue;
use rqw::protocol::exception::{format_exception, MAX_LOCATION_CHARS};
use rqw::protocol::job_record::{JobRecord, JobTimeout};
use rqw::protocol::payload::{decode_job_data, encode_return_value, Serializer};
use rqw::protocol::text::{shown, MAX_MESSAGE_CHARS, MAX_SHOWN_CHARS};
use rqw::protocol::unpickle;

/// The memory budget of the second, small-budget decode in [`pickle_decode`].
const SMALL_BUDGET: u64 = 64 << 10;

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
        Ok(bytes) => match unpickle::decode(&bytes) {
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

/// What the decoder charges for a built value (`unpickle::cost::VALUE` per value plus the
/// str/bytes content).
fn built_cost(value: &PyValue) -> u64 {
    let bytes = |v: &PyValue| match v {
        PyValue::String(s) => s.len() as u64,
        PyValue::Bytes(b) => b.len() as u64,
        _ => 0,
    };
    let mut total = 0u64;
    let mut pending = vec![value.clone()];
    while let Some(v) = pending.pop() {
        total += unpickle::cost::VALUE + bytes(&v);
        match v {
            PyValue::List(items) | PyValue::Tuple(items) => pending.extend(items),
            PyValue::Set(items) | PyValue::FrozenSet(items) => {
                pending.extend(items.into_iter().map(|i| i.into_value()))
            }
            PyValue::Dict(map) => {
                for (k, v) in map {
                    pending.push(k.into_value());
                    pending.push(v);
                }
            }
            _ => {}
        }
    }
    total
}

/// `unpickle::decode` on raw pickle bytes; `scan` must agree with it, and a decode within
/// [`SMALL_BUDGET`] builds nothing larger and nothing the default budget refuses.
pub fn pickle_decode(data: &[u8]) {
    let decoded = unpickle::decode(data);
    let scanned = unpickle::scan(data);
    if let Ok(small) = unpickle::decode_within(data, SMALL_BUDGET) {
        // Dicts and sets merge equal keys, so the value can only be smaller than charged.
        assert!(
            built_cost(&small) <= SMALL_BUDGET,
            "a value of {} bytes built within a {SMALL_BUDGET}-byte budget",
            built_cost(&small)
        );
        match &decoded {
            // Debug text: NaN inside a set compares unequal to itself.
            Ok(value) => assert_eq!(
                format!("{value:?}"),
                format!("{small:?}"),
                "the budget changed the value"
            ),
            Err(e) => panic!("the small budget accepted what the default refused: {e}"),
        }
    }
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

/// Splits fuzz bytes at the first two NUL bytes into a function path, an exception type and a
/// message (lossy UTF-8), as a hostile job hash and handler could make them.
fn three_texts(data: &[u8]) -> [String; 3] {
    let mut parts = data.splitn(3, |&b| b == 0);
    [(); 3].map(|_| String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned())
}

/// Hostile text as it is echoed: `text::shown` (log fields) and `format_exception` (the
/// failure text written to Redis).
pub fn echo_text(data: &[u8]) {
    let escaped = shown(data);
    assert!(
        !escaped
            .chars()
            .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}'),
        "control character in {escaped:?}"
    );
    // The bound plus the `…[+N bytes]` marker.
    assert!(
        escaped.chars().count() <= MAX_SHOWN_CHARS + 32,
        "{} chars",
        escaped.chars().count()
    );
    let [location, exc_type, message] = three_texts(data);
    let exc_type = if exc_type.trim().is_empty() {
        "ValueError".to_string()
    } else {
        exc_type
    };
    let text = format_exception(&location, &exc_type, &message);
    let lines: Vec<&str> = text.split('\n').collect();
    assert_eq!(
        lines.len(),
        4,
        "a traceback of three lines and a final newline: {text:?}"
    );
    assert_eq!(lines[3], "");
    assert!(!text.contains('\r'), "{text:?}");
    let last = lines[2];
    assert!(
        last.contains(": "),
        "last line is not `Type: message`: {last:?}"
    );
    assert!(
        last.chars().count() <= MAX_LOCATION_CHARS + MAX_MESSAGE_CHARS + 64,
        "last line of {} chars",
        last.chars().count()
    );
}
