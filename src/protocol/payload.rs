//! The job's `data` and `meta` fields, and result values, in the queue's serializer.
//!
//! - `data` is `zlib.compress(serializer.dumps((func_name, instance, args, kwargs)))`;
//!   [`decode_job_data`] inflates it (falling back to the raw bytes, as `Job.data` does),
//!   decodes it and checks the tuple's shape.
//! - `meta` is `serializer.dumps(job.meta)`, not compressed (`Job.to_dict`, `Job.restore`);
//!   [`decode_meta`] decodes it.
//! - A return value is `serializer.dumps(rv)`, base64-encoded by the caller
//!   ([`encode_return_value`]).
//!
//! Pickles are decoded by [`unpickle::decode`], which refuses anything but plain data
//! (None, bool, int, float, str, bytes/bytearray, list, tuple, dict, set, frozenset) and
//! works around a serde-pickle 1.2 bug with shared containers (see there); JSON goes through
//! [`json_value::loads`], which reads what Python's `json.dumps` writes (big integers, `NaN`,
//! `Infinity`). A bytearray decodes to `Bytes` (`PyValue` has no bytearray).
//!
//! Error texts end up after `rq.exceptions.DeserializationError: ` in the job's `exc_string`,
//! so they are one short line and never quote the payload beyond a global's name.

use std::collections::BTreeMap;
use std::io::Read;

use crate::value::HashableValue;

use super::json_value::{self, JsonError};
use super::unpickle::{self, UnpickleError};
use crate::value::PyValue;

/// Default largest raw `data`/`meta` field (`--max-payload-bytes`).
pub const DEFAULT_MAX_FIELD_BYTES: u64 = 4 << 20;
/// Default largest `data` after zlib inflation (`--max-inflated-bytes`).
pub const DEFAULT_MAX_INFLATED_BYTES: u64 = 16 << 20;
/// Default memory budget of one decoded value (`--max-decoded-bytes`).
pub const DEFAULT_MAX_DECODED_BYTES: u64 = super::unpickle::DEFAULT_BUDGET;

/// The memory budget of decoding one payload: each cap is checked while the bytes or values
/// are produced, never after (see docs/SECURITY.md for what a job costs at most).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest raw `data` or `meta` field, in bytes (`start.lua` drops a longer one before it
    /// leaves Redis).
    pub max_field_bytes: u64,
    /// Largest `data` after zlib inflation, in bytes (the inflater stops there).
    pub max_inflated_bytes: u64,
    /// Memory budget of the decoded value, in bytes, charged as it is built.
    pub max_decoded_bytes: u64,
}

impl DecodeLimits {
    /// The limits `meta` is decoded within while the call's value is held: a quarter of the
    /// decoded budget (RQ's `meta` is a small dict; a larger one is not given to the handler).
    pub fn for_meta(&self) -> Self {
        Self {
            max_decoded_bytes: self.max_decoded_bytes / 4,
            ..*self
        }
    }
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_field_bytes: DEFAULT_MAX_FIELD_BYTES,
            max_inflated_bytes: DEFAULT_MAX_INFLATED_BYTES,
            max_decoded_bytes: DEFAULT_MAX_DECODED_BYTES,
        }
    }
}

/// Longest error detail quoted from serde-pickle (whose stack errors can dump whole values).
const MAX_DETAIL_CHARS: usize = 160;

/// The types a decoded pickle may hold, for error messages.
const PLAIN_TYPES: &str = "None, bool, int, float, str, bytes, list, tuple, dict, set, frozenset";

/// Which serializer the queue's producers use. RQ does not record it in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Serializer {
    /// `rq.serializers.DefaultSerializer`: pickle (protocol 5 on modern Python).
    #[default]
    Pickle,
    /// `rq.serializers.JSONSerializer`.
    Json,
}

/// The decoded `(func_name, instance, args, kwargs)` tuple of a job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobCall {
    /// Dotted Python path of the function.
    pub func_name: String,
    /// Positional arguments.
    pub args: Vec<PyValue>,
    /// Keyword arguments.
    pub kwargs: BTreeMap<String, PyValue>,
}

/// Why a payload could not be decoded or encoded.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// Anything else.
    #[error("{0}")]
    Invalid(String),
    /// The raw field is longer than [`DecodeLimits::max_field_bytes`].
    #[error(
        "the {field} field is {size} bytes, over the {limit}-byte limit (--max-payload-bytes)"
    )]
    FieldTooLarge {
        /// `data` or `meta`.
        field: &'static str,
        /// Its length.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// `data` inflates past [`DecodeLimits::max_inflated_bytes`].
    #[error("data inflates past the {limit}-byte limit (--max-inflated-bytes)")]
    InflatedTooLarge {
        /// The limit.
        limit: u64,
    },
    /// The decoded value would take more than [`DecodeLimits::max_decoded_bytes`].
    #[error("{0} (--max-decoded-bytes)")]
    DecodedTooLarge(String),
    /// The pickle holds an object other than plain data (datetime, Decimal, a class
    /// instance...). `location` says which part of the job tuple, when known.
    #[error(
        "unsupported pickle content{} ({label}); rqw decodes only {PLAIN_TYPES}",
        location.map(|l| format!(" in {l}")).unwrap_or_default()
    )]
    Unsupported {
        /// `func_name`, `args` or `kwargs`, when the scan could tell.
        location: Option<&'static str>,
        /// The opcode and global, e.g. `STACK_GLOBAL datetime.datetime`.
        label: String,
    },
    /// The job targets a bound method or a callable instance (`instance` is not None).
    #[error(
        "job calls a bound method or callable instance ({0}); rqw runs module-level functions only"
    )]
    BoundMethod(String),
    /// The pickle is malformed, truncated, too deep or too large.
    #[error("undecodable pickle: {0}")]
    Pickle(UnpickleError),
    /// The JSON is invalid or too deep.
    #[error("undecodable JSON: {0}")]
    Json(JsonError),
    /// The decoded value is not `(func_name, instance, args, kwargs)` as RQ writes it.
    #[error("job data is not RQ's (func_name, instance, args, kwargs): {0}")]
    Shape(String),
    /// A return value the serializer cannot write; RQ stores
    /// `serializer.dumps("Unserializable return value")` instead.
    #[error("return value cannot be serialized: {0}")]
    Unserializable(String),
}

impl PayloadError {
    /// Whether encoding failed because the value cannot be written in this serializer (the
    /// caller then writes RQ's `UNSERIALIZABLE_RETURN_VALUE_PAYLOAD` placeholder).
    pub fn is_unserializable(&self) -> bool {
        matches!(self, PayloadError::Unserializable(_))
    }
}

impl PayloadError {
    /// Whether the payload was refused for its size (a [`DecodeLimits`] cap), not its content.
    pub fn is_too_large(&self) -> bool {
        matches!(
            self,
            PayloadError::FieldTooLarge { .. }
                | PayloadError::InflatedTooLarge { .. }
                | PayloadError::DecodedTooLarge(_)
        )
    }
}

/// Decodes a job's `data` field into the call it describes, within the default
/// [`DecodeLimits`].
pub fn decode_job_data(raw: &[u8], serializer: Serializer) -> Result<JobCall, PayloadError> {
    decode_job_data_within(raw, serializer, &DecodeLimits::default())
}

/// [`decode_job_data`] within `limits`.
pub fn decode_job_data_within(
    raw: &[u8],
    serializer: Serializer,
    limits: &DecodeLimits,
) -> Result<JobCall, PayloadError> {
    check_field("data", raw, limits)?;
    let inflated = inflate_or_raw(raw, limits)?;
    let value = decode_value(&inflated, serializer, true, limits)?;
    drop(inflated);
    job_call(value)
}

/// Decodes a job's `meta` field (not compressed), within the default [`DecodeLimits`]. RQ
/// always writes a dict, but any plain value is returned as found.
pub fn decode_meta(raw: &[u8], serializer: Serializer) -> Result<PyValue, PayloadError> {
    decode_meta_within(raw, serializer, &DecodeLimits::default())
}

/// [`decode_meta`] within `limits`.
pub fn decode_meta_within(
    raw: &[u8],
    serializer: Serializer,
    limits: &DecodeLimits,
) -> Result<PyValue, PayloadError> {
    check_field("meta", raw, limits)?;
    decode_value(raw, serializer, false, limits)
}

fn check_field(field: &'static str, raw: &[u8], limits: &DecodeLimits) -> Result<(), PayloadError> {
    if raw.len() as u64 > limits.max_field_bytes {
        return Err(PayloadError::FieldTooLarge {
            field,
            size: raw.len() as u64,
            limit: limits.max_field_bytes,
        });
    }
    Ok(())
}

fn decode_value(
    bytes: &[u8],
    serializer: Serializer,
    job_tuple: bool,
    limits: &DecodeLimits,
) -> Result<PyValue, PayloadError> {
    match serializer {
        Serializer::Pickle => decode_pickle(bytes, job_tuple, limits.max_decoded_bytes),
        Serializer::Json => match json_value::loads_within(bytes, limits.max_decoded_bytes) {
            Ok(value) => Ok(value),
            Err(e @ JsonError::TooLarge { .. }) => {
                Err(PayloadError::DecodedTooLarge(e.to_string()))
            }
            Err(e) => Err(PayloadError::Json(e)),
        },
    }
}

/// Serializes a handler's return value for the results stream (before base64): pickle
/// protocol 3, or JSON as `json.dumps` writes it. A value the serializer cannot hold (bytes in
/// JSON, a tuple dict key in JSON, nesting beyond [`unpickle::MAX_DEPTH`]) gives
/// [`PayloadError::Unserializable`].
pub fn encode_return_value(
    value: &PyValue,
    serializer: Serializer,
) -> Result<Vec<u8>, PayloadError> {
    match serializer {
        Serializer::Pickle => {
            if nests_deeper_than(value, unpickle::MAX_DEPTH) {
                return Err(PayloadError::Unserializable(format!(
                    "nests deeper than {} levels",
                    unpickle::MAX_DEPTH
                )));
            }
            serde_pickle::value_to_vec(value, serde_pickle::SerOptions::new())
                .map_err(|e| PayloadError::Unserializable(short(&e.to_string())))
        }
        Serializer::Json => {
            json_value::dumps(value).map_err(|e| PayloadError::Unserializable(e.to_string()))
        }
    }
}

/// `zlib.decompress(raw)`, or `raw` itself when it is not a zlib stream (as `Job.data` does).
/// The inflater streams and stops one byte past [`DecodeLimits::max_inflated_bytes`], so a
/// zlib bomb costs at most that (and its buffer's growth).
fn inflate_or_raw(raw: &[u8], limits: &DecodeLimits) -> Result<Vec<u8>, PayloadError> {
    let limit = limits.max_inflated_bytes;
    let too_large = || PayloadError::InflatedTooLarge { limit };
    let mut inflated = Vec::new();
    let mut decoder = flate2::read::ZlibDecoder::new(raw).take(limit.saturating_add(1));
    match decoder.read_to_end(&mut inflated) {
        Ok(_) if inflated.len() as u64 > limit => Err(too_large()),
        Ok(_) => Ok(inflated),
        Err(_) if raw.len() as u64 > limit => Err(too_large()),
        Err(_) => Ok(raw.to_vec()),
    }
}

/// Decodes a plain-data pickle within `budget` bytes. `job_tuple` lets a refusal name the
/// element of RQ's job tuple that holds the offending object.
fn decode_pickle(bytes: &[u8], job_tuple: bool, budget: u64) -> Result<PyValue, PayloadError> {
    unpickle::decode_within(bytes, budget).map_err(|e| {
        if let UnpickleError::TooLarge { .. } = e {
            return PayloadError::DecodedTooLarge(e.to_string());
        }
        let outer_item = match &e {
            UnpickleError::Forbidden { outer_item, .. } if job_tuple => *outer_item,
            _ => None,
        };
        let Some(label) = e.forbidden_label() else {
            return PayloadError::Pickle(e);
        };
        match outer_item {
            Some(1) => PayloadError::BoundMethod(label),
            Some(0) => PayloadError::Unsupported {
                location: Some("func_name"),
                label,
            },
            Some(2) => PayloadError::Unsupported {
                location: Some("args"),
                label,
            },
            Some(3) => PayloadError::Unsupported {
                location: Some("kwargs"),
                label,
            },
            _ => PayloadError::Unsupported {
                location: None,
                label,
            },
        }
    })
}

/// Checks the `(func_name, instance, args, kwargs)` shape.
fn job_call(value: PyValue) -> Result<JobCall, PayloadError> {
    let found = type_name(&value);
    let items = match value {
        PyValue::Tuple(items) | PyValue::List(items) if items.len() == 4 => items,
        PyValue::Tuple(items) | PyValue::List(items) => {
            return Err(shape(format!("found a {found} of {} items", items.len())))
        }
        other => return Err(shape(format!("found {}", type_name(&other)))),
    };
    let [func_name, instance, args, kwargs]: [PyValue; 4] = items
        .try_into()
        .map_err(|_| shape("found a sequence of the wrong length".into()))?;
    let PyValue::String(func_name) = func_name else {
        return Err(shape(format!(
            "func_name is {}, expected str",
            type_name(&func_name)
        )));
    };
    if instance != PyValue::None {
        return Err(PayloadError::BoundMethod(format!(
            "instance is {}",
            type_name(&instance)
        )));
    }
    let args = match args {
        PyValue::Tuple(args) | PyValue::List(args) => args,
        other => {
            return Err(shape(format!(
                "args is {}, expected tuple or list",
                type_name(&other)
            )))
        }
    };
    let PyValue::Dict(map) = kwargs else {
        return Err(shape(format!(
            "kwargs is {}, expected dict",
            type_name(&kwargs)
        )));
    };
    let mut kwargs = BTreeMap::new();
    for (key, value) in map {
        match key {
            HashableValue::String(key) => {
                kwargs.insert(key, value);
            }
            other => {
                let found = type_name(&other.into_value());
                return Err(shape(format!("a kwargs key is {found}, expected str")));
            }
        }
    }
    Ok(JobCall {
        func_name,
        args,
        kwargs,
    })
}

fn shape(message: String) -> PayloadError {
    PayloadError::Shape(message)
}

/// The Python type name of a value, for error messages.
fn type_name(value: &PyValue) -> &'static str {
    match value {
        PyValue::None => "None",
        PyValue::Bool(_) => "bool",
        PyValue::I64(_) | PyValue::Int(_) => "int",
        PyValue::F64(_) => "float",
        PyValue::Bytes(_) => "bytes",
        PyValue::String(_) => "str",
        PyValue::List(_) => "list",
        PyValue::Tuple(_) => "tuple",
        PyValue::Set(_) => "set",
        PyValue::FrozenSet(_) => "frozenset",
        PyValue::Dict(_) => "dict",
    }
}

/// `text` cut to [`MAX_DETAIL_CHARS`] characters.
fn short(text: &str) -> String {
    let mut out: String = text.chars().take(MAX_DETAIL_CHARS).collect();
    if text.chars().nth(MAX_DETAIL_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// Whether `value` nests containers deeper than `max` (iteratively, so any depth is safe).
fn nests_deeper_than(value: &PyValue, max: usize) -> bool {
    enum Node<'a> {
        Value(&'a PyValue),
        Hashable(&'a HashableValue),
    }
    let mut pending = vec![(Node::Value(value), 0usize)];
    while let Some((node, depth)) = pending.pop() {
        let children: Vec<Node> = match node {
            Node::Value(PyValue::List(items) | PyValue::Tuple(items)) => {
                items.iter().map(Node::Value).collect()
            }
            Node::Value(PyValue::Set(items) | PyValue::FrozenSet(items)) => {
                items.iter().map(Node::Hashable).collect()
            }
            Node::Value(PyValue::Dict(map)) => map
                .iter()
                .flat_map(|(k, v)| [Node::Hashable(k), Node::Value(v)])
                .collect(),
            Node::Hashable(HashableValue::Tuple(items)) => {
                items.iter().map(Node::Hashable).collect()
            }
            Node::Hashable(HashableValue::FrozenSet(items)) => {
                items.iter().map(Node::Hashable).collect()
            }
            _ => continue,
        };
        if depth + 1 > max {
            return true;
        }
        pending.extend(children.into_iter().map(|child| (child, depth + 1)));
    }
    false
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// `('jobs.add', None, (2, 3), {})`, pickle protocol 5.
    const JOB5: &[u8] = b"\x80\x05\x95\x18\x00\x00\x00\x00\x00\x00\x00(\x8c\x08jobs.add\x94NK\x02K\x03\x86\x94}\x94t\x94.";
    /// `('f', None, (), {1: 2})`, pickle protocol 5.
    const INT_KWARG: &[u8] =
        b"\x80\x05\x95\x11\x00\x00\x00\x00\x00\x00\x00(\x8c\x01f\x94N)}\x94K\x01K\x02st\x94.";
    /// `{'progress': 5, 'tags': ('a',)}`, pickle protocol 5.
    const META: &[u8] = b"\x80\x05\x95\x1f\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x08progress\x94K\x05\x8c\x04tags\x94\x8c\x01a\x94\x85\x94u.";

    fn zlib(bytes: &[u8]) -> Vec<u8> {
        let mut encoder =
            flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn json_error(data: &str) -> String {
        decode_job_data(&zlib(data.as_bytes()), Serializer::Json)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn decodes_compressed_and_raw_data() {
        let expected = JobCall {
            func_name: "jobs.add".into(),
            args: vec![PyValue::I64(2), PyValue::I64(3)],
            kwargs: BTreeMap::new(),
        };
        assert_eq!(
            decode_job_data(&zlib(JOB5), Serializer::Pickle).unwrap(),
            expected
        );
        assert_eq!(decode_job_data(JOB5, Serializer::Pickle).unwrap(), expected);
        let json = br#"["jobs.add", null, [2, 3], {}]"#;
        assert_eq!(
            decode_job_data(&zlib(json), Serializer::Json).unwrap(),
            expected
        );
        assert_eq!(decode_job_data(json, Serializer::Json).unwrap(), expected);
    }

    #[test]
    fn refuses_zlib_bombs() {
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..=(DEFAULT_MAX_INFLATED_BYTES >> 20) {
            encoder.write_all(&chunk).unwrap();
        }
        let bomb = encoder.finish().unwrap();
        assert!(bomb.len() < 1 << 20);
        let error = decode_job_data(&bomb, Serializer::Pickle).unwrap_err();
        assert!(
            matches!(error, PayloadError::InflatedTooLarge { limit } if limit == DEFAULT_MAX_INFLATED_BYTES),
            "{error}"
        );
        assert_eq!(
            error.to_string(),
            "data inflates past the 16777216-byte limit (--max-inflated-bytes)"
        );
    }

    /// `('f', None, ([None] * n,), {})`, protocol 5 without frames: n bytes of `N` opcodes.
    fn nones(n: usize) -> Vec<u8> {
        let mut pickle = b"\x80\x05(\x8c\x01fN](".to_vec();
        pickle.extend(std::iter::repeat_n(b'N', n));
        pickle.extend(b"e\x85}t.");
        pickle
    }

    #[test]
    fn memory_budget_is_counted_as_the_value_is_built() {
        let limits = DecodeLimits {
            max_field_bytes: 1 << 20,
            max_inflated_bytes: 4 << 20,
            max_decoded_bytes: 1 << 20,
        };
        // 1000 Nones fit; 1 MiB of Nones (each costs far more than its byte) does not.
        let call =
            decode_job_data_within(&zlib(&nones(1000)), Serializer::Pickle, &limits).unwrap();
        assert_eq!(call.args, vec![PyValue::List(vec![PyValue::None; 1000])]);
        let bomb = zlib(&nones(1 << 20));
        assert!(bomb.len() < 4096);
        let error = decode_job_data_within(&bomb, Serializer::Pickle, &limits).unwrap_err();
        assert!(error.is_too_large(), "{error}");
        assert_eq!(
            error.to_string(),
            "pickle decodes to more than the 1048576-byte memory budget (while reading) \
             (--max-decoded-bytes)"
        );
        // The same in JSON: `[null, null, ...]`.
        let mut json = b"[\"f\", null, [[".to_vec();
        json.extend(b"null,".repeat(200_000));
        json.extend(b"null]], {}]");
        let error = decode_job_data_within(&zlib(&json), Serializer::Json, &limits).unwrap_err();
        assert!(error.is_too_large(), "{error}");
        assert!(
            error
                .to_string()
                .starts_with("JSON decodes to more than the 1048576-byte memory budget"),
            "{error}"
        );
        assert!(
            error.to_string().ends_with("(--max-decoded-bytes)"),
            "{error}"
        );
        // Raw fields are refused by their length before anything is read.
        let big = vec![b'N'; (1 << 20) + 1];
        let error = decode_meta_within(&big, Serializer::Pickle, &limits).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the meta field is 1048577 bytes, over the 1048576-byte limit (--max-payload-bytes)"
        );
        let error = decode_job_data_within(&big, Serializer::Pickle, &limits).unwrap_err();
        assert!(matches!(
            error,
            PayloadError::FieldTooLarge { field: "data", .. }
        ));
    }

    #[test]
    fn says_what_shape_it_found() {
        assert_eq!(
            json_error(r#"["f", {"x": 1}, [], {}]"#),
            "job calls a bound method or callable instance (instance is dict); \
             rqw runs module-level functions only"
        );
        assert!(json_error(r#"[1, null, [], {}]"#).ends_with("func_name is int, expected str"));
        assert!(
            json_error(r#"["f", null, {}, {}]"#).ends_with("args is dict, expected tuple or list")
        );
        assert!(json_error(r#"["f", null, [], []]"#).ends_with("kwargs is list, expected dict"));
        assert!(json_error(r#"["f"]"#).ends_with("found a list of 1 items"));
        assert!(json_error("{}").ends_with("found dict"));
        assert!(json_error("[1, 2").starts_with("undecodable JSON: invalid JSON"));
        let message = decode_job_data(INT_KWARG, Serializer::Pickle)
            .unwrap_err()
            .to_string();
        assert!(
            message.ends_with("a kwargs key is int, expected str"),
            "{message}"
        );
    }

    #[test]
    fn wrong_serializer_and_garbage_give_short_errors() {
        let as_json = decode_job_data(&zlib(JOB5), Serializer::Json)
            .unwrap_err()
            .to_string();
        assert!(as_json.starts_with("undecodable JSON"), "{as_json}");
        let json = zlib(br#"["f", null, [], {}]"#);
        let as_pickle = decode_job_data(&json, Serializer::Pickle)
            .unwrap_err()
            .to_string();
        assert_eq!(
            as_pickle,
            "undecodable pickle: not a pickle: unknown opcode 0x5b at offset 0"
        );
        let garbage = vec![b'V'; 1 << 20];
        assert!(
            decode_job_data(&garbage, Serializer::Pickle)
                .unwrap_err()
                .to_string()
                .len()
                < 100
        );
        assert!(
            decode_job_data(&garbage, Serializer::Json)
                .unwrap_err()
                .to_string()
                .len()
                < 100
        );
    }

    #[test]
    fn decodes_meta_uncompressed() {
        let PyValue::Dict(meta) = decode_meta(META, Serializer::Pickle).unwrap() else {
            panic!()
        };
        assert_eq!(
            meta[&HashableValue::String("progress".into())],
            PyValue::I64(5)
        );
        let json = decode_meta(br#"{"progress": 5}"#, Serializer::Json).unwrap();
        assert_eq!(
            json,
            PyValue::Dict([(HashableValue::String("progress".into()), PyValue::I64(5))].into())
        );
        assert!(decode_meta(&zlib(META), Serializer::Pickle).is_err());
    }

    #[test]
    fn encodes_return_values() {
        // Loaded by Python 3.11 as {1, 2}; more cases in python-fixtures/return_values.json.
        let set = PyValue::Set([1, 2].map(HashableValue::I64).into());
        assert_eq!(
            encode_return_value(&set, Serializer::Pickle).unwrap(),
            b"\x80\x03cbuiltins\nset\n](J\x01\x00\x00\x00J\x02\x00\x00\x00e\x85R."
        );
        assert_eq!(
            encode_return_value(&set, Serializer::Json).unwrap(),
            b"[1, 2]"
        );
        let bytes = PyValue::Bytes(b"\x00".to_vec());
        assert_eq!(
            encode_return_value(&bytes, Serializer::Pickle).unwrap(),
            b"\x80\x03C\x01\x00."
        );
        let error = encode_return_value(&bytes, Serializer::Json).unwrap_err();
        assert!(error.is_unserializable(), "{error}");
        let mut deep = PyValue::None;
        for _ in 0..=unpickle::MAX_DEPTH {
            deep = PyValue::List(vec![deep]);
        }
        assert!(encode_return_value(&deep, Serializer::Pickle)
            .unwrap_err()
            .is_unserializable());
        assert!(encode_return_value(&deep, Serializer::Json)
            .unwrap_err()
            .is_unserializable());
    }
}
