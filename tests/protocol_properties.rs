//! Property tests of the pure wire-format code (proptest: generated values, shrunk to the
//! smallest failing one). Complements the golden fixtures (exact bytes real rq wrote) and the
//! fuzz targets (arbitrary bytes): here the inputs are *valid* encodings of generated values,
//! and the properties say that decoding gives back exactly what was encoded.
//!
//! - pickle: any plain value written by serde-pickle (what rqw writes for results) decodes
//!   through `unpickle::decode` to itself; a job tuple, zlib-compressed or not, decodes to
//!   the same call; every strict prefix of a job pickle is refused (a truncated payload never
//!   passes for another value);
//! - JSON: `json_value::dumps` then `loads` gives the value back (tuples read back as lists,
//!   as in Python);
//! - job hash: integer fields parse as RQ reads them and every malformed value is reported on
//!   one line.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use proptest::prelude::*;
use serde_pickle::{HashableValue, Value};

use rqw::protocol::job_record::{JobRecord, JobTimeout, DEFAULT_JOB_TIMEOUT_SECS};
use rqw::protocol::json_value;
use rqw::protocol::payload::{decode_job_data, Serializer};
use rqw::protocol::unpickle;

fn big_int(digits: &str) -> Value {
    json_value::loads(digits.as_bytes()).expect("an integer literal")
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::None),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::I64),
        "-?[1-9][0-9]{19,60}".prop_map(|d| big_int(&d)),
        any::<f64>().prop_map(Value::F64),
        Just(Value::F64(f64::NAN)),
        ".{0,40}".prop_map(Value::String),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Value::Bytes),
    ]
}

fn hashable() -> impl Strategy<Value = HashableValue> {
    prop_oneof![
        ".{0,12}".prop_map(HashableValue::String),
        any::<i64>().prop_map(HashableValue::I64),
        any::<bool>().prop_map(HashableValue::Bool),
        Just(HashableValue::None),
        proptest::collection::vec(
            any::<i32>().prop_map(|i| HashableValue::I64(i.into())),
            0..3
        )
        .prop_map(HashableValue::Tuple),
    ]
}

/// Plain Python data as RQ pickles it. Sets are left out: serde-pickle writes protocol 3,
/// which has no set opcodes (it writes `builtins.set(...)`, refused by the reader; see
/// tests/fuzz/targets.rs).
fn plain() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Tuple),
            proptest::collection::btree_map(hashable(), inner, 0..6).prop_map(Value::Dict),
        ]
    })
}

/// Values JSON can carry (what a JSON producer's arguments look like).
fn json_like() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::None),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::I64),
        "-?[1-9][0-9]{19,60}".prop_map(|d| big_int(&d)),
        any::<f64>().prop_map(Value::F64),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            proptest::collection::btree_map(".{0,12}".prop_map(HashableValue::String), inner, 0..6)
                .prop_map(Value::Dict),
        ]
    })
}

/// Equality where NaN equals NaN (Python's `==` would say otherwise, but the bits survive).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::F64(x), Value::F64(y)) => x == y || (x.is_nan() && y.is_nan()),
        (Value::List(x), Value::List(y)) | (Value::Tuple(x), Value::Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Dict(x), Value::Dict(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((k1, v1), (k2, v2))| k1 == k2 && same(v1, v2))
        }
        _ => a == b,
    }
}

/// What JSON gives back for a value: tuples become lists.
fn as_json_reads(value: &Value) -> Value {
    match value {
        Value::Tuple(items) | Value::List(items) => {
            Value::List(items.iter().map(as_json_reads).collect())
        }
        Value::Dict(map) => Value::Dict(
            map.iter()
                .map(|(k, v)| (k.clone(), as_json_reads(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn pickle(value: &Value) -> Vec<u8> {
    serde_pickle::value_to_vec(value, serde_pickle::SerOptions::new()).expect("serializable")
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).expect("to a Vec");
    e.finish().expect("to a Vec")
}

fn job_tuple(func: &str, args: Vec<Value>, kwargs: BTreeMap<String, Value>) -> Value {
    Value::Tuple(vec![
        Value::String(func.to_string()),
        Value::None,
        Value::Tuple(args),
        Value::Dict(
            kwargs
                .into_iter()
                .map(|(k, v)| (HashableValue::String(k), v))
                .collect(),
        ),
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn pickled_plain_values_decode_to_themselves(value in plain()) {
        let decoded = unpickle::decode(&pickle(&value)).expect("plain data decodes");
        prop_assert!(same(&value, &decoded), "{value:?} came back as {decoded:?}");
    }

    #[test]
    fn job_tuples_decode_to_the_same_call(
        func in "[a-z_][a-z0-9_]{0,8}(\\.[a-z_][a-z0-9_]{0,8}){0,3}",
        args in proptest::collection::vec(plain(), 0..4),
        kwargs in proptest::collection::btree_map("[a-z_]{1,8}", plain(), 0..4),
        compressed in any::<bool>(),
    ) {
        let raw = pickle(&job_tuple(&func, args.clone(), kwargs.clone()));
        let data = if compressed { zlib(&raw) } else { raw };
        let call = decode_job_data(&data, Serializer::Pickle).expect("a valid job decodes");
        prop_assert_eq!(&call.func_name, &func);
        prop_assert!(same(&Value::List(call.args.clone()), &Value::List(args)));
        prop_assert_eq!(call.kwargs.len(), kwargs.len());
        for (k, v) in &kwargs {
            prop_assert!(same(&call.kwargs[k], v));
        }
    }

    #[test]
    fn a_truncated_job_pickle_is_always_refused(
        args in proptest::collection::vec(plain(), 0..3),
        cut in any::<prop::sample::Index>(),
    ) {
        let raw = pickle(&job_tuple("m.f", args, BTreeMap::new()));
        let at = cut.index(raw.len());
        prop_assert!(unpickle::decode(&raw[..at]).is_err(), "prefix of {} bytes accepted", at);
        prop_assert!(decode_job_data(&zlib(&raw[..at]), Serializer::Pickle).is_err());
    }

    #[test]
    fn json_dumps_then_loads_gives_the_value_back(value in json_like()) {
        let bytes = json_value::dumps(&value).expect("JSON-able");
        let back = json_value::loads(&bytes).expect("what dumps writes, loads reads");
        prop_assert!(same(&as_json_reads(&value), &back), "{value:?} came back as {back:?}");
    }

    #[test]
    fn json_job_data_decodes_to_the_same_call(
        func in "[a-z_]{1,8}\\.[a-z_]{1,8}",
        args in proptest::collection::vec(json_like(), 0..4),
    ) {
        let doc = Value::List(vec![
            Value::String(func.clone()),
            Value::None,
            Value::List(args.clone()),
            Value::Dict(BTreeMap::new()),
        ]);
        let data = zlib(&json_value::dumps(&doc).expect("JSON-able"));
        let call = decode_job_data(&data, Serializer::Json).expect("a valid job decodes");
        prop_assert_eq!(call.func_name, func);
        prop_assert!(same(&Value::List(call.args), &as_json_reads(&Value::List(args))));
    }

    #[test]
    fn job_hash_integers_parse_as_rq_reads_them(
        timeout in any::<i64>(),
        retries in 0i64..1000,
        ttl in -1i64..100_000,
    ) {
        let fields: HashMap<String, Vec<u8>> = [
            ("data", b"x".to_vec()),
            ("timeout", timeout.to_string().into_bytes()),
            ("retries_left", retries.to_string().into_bytes()),
            ("result_ttl", ttl.to_string().into_bytes()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let record = JobRecord::parse("j", "q", fields);
        prop_assert!(record.problems.is_empty(), "{:?}", record.problems);
        let expected = match timeout {
            0 => JobTimeout::Seconds(DEFAULT_JOB_TIMEOUT_SECS),
            t if t < 0 => JobTimeout::Unlimited,
            t => JobTimeout::Seconds(t as u64),
        };
        prop_assert_eq!(record.timeout, expected);
        prop_assert_eq!(record.retries_left, Some(retries as u32));
        prop_assert_eq!(record.result_ttl, Some(ttl));
        prop_assert_eq!(record.origin, "q");
    }

    #[test]
    fn malformed_job_hash_fields_are_reported_on_one_line(
        field in prop::sample::select(vec!["timeout", "retries_left", "result_ttl", "failure_ttl",
                                           "retry_intervals", "repeat_intervals", "origin"]),
        value in proptest::collection::vec(any::<u8>(), 1..60),
    ) {
        let mut fields = HashMap::from([("data".to_string(), b"x".to_vec())]);
        fields.insert(field.to_string(), value);
        let record = JobRecord::parse("j", "q", fields);
        for problem in &record.problems {
            prop_assert!(!problem.contains('\n') && !problem.contains('\r'), "{}", problem);
            prop_assert!(problem.contains(field), "{}", problem);
        }
        prop_assert!(!record.origin.is_empty());
    }
}
