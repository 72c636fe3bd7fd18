//! Golden fixtures made by real rq (`python-fixtures/`): every job hash under
//! `python-fixtures/golden/<rq version>/<serializer>/` is decoded with the public payload API
//! and compared, types included, with what rq's own serializer read back from the same bytes;
//! rejected cases must fail with a message naming the offending thing. A second test checks
//! `encode_return_value` against `python-fixtures/return_values.json`, whose bytes
//! `python-fixtures/check_return_values.py` loads with real Python.
//!
//! The tagged value format is described in `python-fixtures/tagged.py`.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rqw::handlers::PyValue;
use rqw::protocol::json_value::python_float_repr;
use rqw::protocol::payload::{decode_job_data, decode_meta, encode_return_value, Serializer};
use rqw::protocol::value::int_from_decimal;
use serde_json::{json, Value};

/// Fewer fixtures than this means the walk found the wrong directory.
const MIN_FIXTURES: usize = 100;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python-fixtures")
}

fn collect_json(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_json(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

/// The tagged description of a decoded value (see `python-fixtures/tagged.py`).
fn tag(value: &PyValue) -> Value {
    match value {
        PyValue::None => Value::Null,
        PyValue::Bool(b) => Value::Bool(*b),
        PyValue::I64(i) => json!({ "int": i.to_string() }),
        PyValue::Int(i) => {
            let digits = i.to_string();
            // serde-pickle's canonical form keeps values that fit in I64.
            if digits.parse::<i64>().is_ok() {
                json!({ "int (non-canonical Int)": digits })
            } else {
                json!({ "int": digits })
            }
        }
        PyValue::F64(f) => json!({ "float": float_repr(*f) }),
        PyValue::Bytes(b) => json!({ "bytes": B64.encode(b) }),
        PyValue::String(s) => json!({ "str": s }),
        PyValue::List(items) => json!({ "list": items.iter().map(tag).collect::<Vec<_>>() }),
        PyValue::Tuple(items) => json!({ "tuple": items.iter().map(tag).collect::<Vec<_>>() }),
        PyValue::Set(items) => {
            json!({ "set": sorted(items.iter().map(|v| tag(&v.clone().into_value()))) })
        }
        PyValue::FrozenSet(items) => {
            json!({ "frozenset": sorted(items.iter().map(|v| tag(&v.clone().into_value()))) })
        }
        PyValue::Dict(map) => {
            let mut pairs: Vec<Value> = map
                .iter()
                .map(|(k, v)| json!([tag(&k.clone().into_value()), tag(v)]))
                .collect();
            pairs.sort_by_key(|p| p[0].to_string());
            json!({ "dict": pairs })
        }
    }
}

fn float_repr(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f.is_infinite() {
        if f > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        python_float_repr(f)
    }
}

fn sorted(items: impl Iterator<Item = Value>) -> Vec<Value> {
    let mut items: Vec<Value> = items.collect();
    items.sort_by_key(Value::to_string);
    items
}

/// Puts an expected description in the form [`tag`] produces: Rust's sort order for sets and
/// dicts, and `bytearray` as `bytes` (serde-pickle decodes both to `Bytes`).
fn normalize(expected: &Value) -> Value {
    let Value::Object(map) = expected else {
        return expected.clone();
    };
    let Some((kind, body)) = map.iter().next() else {
        return expected.clone();
    };
    let items = || body.as_array().unwrap().iter().map(normalize);
    match kind.as_str() {
        "bytearray" => json!({ "bytes": body }),
        "list" | "tuple" => json!({ kind.clone(): items().collect::<Vec<_>>() }),
        "set" | "frozenset" => json!({ kind.clone(): sorted(items()) }),
        "dict" => {
            let mut pairs: Vec<Value> = body
                .as_array()
                .unwrap()
                .iter()
                .map(|p| json!([normalize(&p[0]), normalize(&p[1])]))
                .collect();
            pairs.sort_by_key(|p| p[0].to_string());
            json!({ "dict": pairs })
        }
        _ => expected.clone(),
    }
}

/// Builds a value from its tagged description.
fn untag(tagged: &Value) -> PyValue {
    let map = match tagged {
        Value::Null => return PyValue::None,
        Value::Bool(b) => return PyValue::Bool(*b),
        Value::Object(map) => map,
        other => panic!("not a tagged value: {other}"),
    };
    let (kind, body) = map.iter().next().unwrap();
    let items = || body.as_array().unwrap().iter().map(untag);
    match kind.as_str() {
        "int" => {
            let digits = body.as_str().unwrap();
            int_from_decimal(digits.as_bytes()).expect("an integer literal")
        }
        "float" => PyValue::F64(body.as_str().unwrap().parse().unwrap()),
        "str" => PyValue::String(body.as_str().unwrap().into()),
        "bytes" | "bytearray" => PyValue::Bytes(B64.decode(body.as_str().unwrap()).unwrap()),
        "list" => PyValue::List(items().collect()),
        "tuple" => PyValue::Tuple(items().collect()),
        "set" => PyValue::Set(items().map(|v| v.into_hashable().unwrap()).collect()),
        "frozenset" => PyValue::FrozenSet(items().map(|v| v.into_hashable().unwrap()).collect()),
        "dict" => PyValue::Dict(
            body.as_array()
                .unwrap()
                .iter()
                .map(|p| (untag(&p[0]).into_hashable().unwrap(), untag(&p[1])))
                .collect(),
        ),
        other => panic!("unknown tag {other}"),
    }
}

fn serializer_of(name: &str) -> Serializer {
    match name {
        "pickle" => Serializer::Pickle,
        "json" => Serializer::Json,
        other => panic!("unknown serializer {other}"),
    }
}

fn field(fixture: &Value, name: &str) -> Option<Vec<u8>> {
    fixture["job_hash"]
        .get(name)
        .map(|v| B64.decode(v.as_str().unwrap()).unwrap())
}

fn check_error(what: &str, message: &str, expected: &Value, failures: &mut Vec<String>) {
    for needle in expected.as_array().unwrap() {
        let needle = needle.as_str().unwrap();
        if !message.contains(needle) {
            failures.push(format!(
                "{what}: error {message:?} does not contain {needle:?}"
            ));
        }
    }
    if message.len() > 300 {
        failures.push(format!(
            "{what}: error message is {} bytes long",
            message.len()
        ));
    }
}

fn check_fixture(path: &Path, failures: &mut Vec<String>) {
    let what = path
        .strip_prefix(fixtures_dir())
        .unwrap_or(path)
        .display()
        .to_string();
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let serializer = serializer_of(fixture["serializer"].as_str().unwrap());
    let data = field(&fixture, "data").expect("fixture without data");
    let decoded = decode_job_data(&data, serializer);
    match (&decoded, fixture.get("expect"), fixture.get("expect_error")) {
        (Ok(call), Some(expect), None) => {
            let actual = json!({
                "func_name": call.func_name,
                "args": tag(&PyValue::Tuple(call.args.clone())),
                "kwargs": tag(&PyValue::Dict(
                    call.kwargs.iter().map(|(k, v)| (serde_pickle::HashableValue::String(k.clone()), v.clone())).collect()
                )),
            });
            // JobCall keeps args as a Vec: compare the items, the tuple/list type of the args
            // container itself is not part of the API.
            let mut expected = expect.clone();
            let args = normalize(&expected["args"]);
            let items = args
                .get("tuple")
                .or_else(|| args.get("list"))
                .unwrap()
                .clone();
            expected["args"] = json!({ "tuple": items });
            expected["kwargs"] = normalize(&expected["kwargs"]);
            if actual != expected {
                failures.push(format!(
                    "{what}: decoded\n  {actual}\nexpected\n  {expected}"
                ));
            }
        }
        (Err(e), None, Some(expected)) => {
            eprintln!("{what}: rejected as expected: {e}");
            check_error(&what, &e.to_string(), expected, failures);
        }
        (result, _, _) => failures.push(format!("{what}: unexpected outcome {result:?}")),
    }
    // The other serializer must refuse the bytes, never panic or misread them.
    let other = match serializer {
        Serializer::Pickle => Serializer::Json,
        Serializer::Json => Serializer::Pickle,
    };
    if let Ok(call) = decode_job_data(&data, other) {
        failures.push(format!(
            "{what}: decoded with the wrong serializer: {call:?}"
        ));
    }
    let Some(meta) = field(&fixture, "meta") else {
        return;
    };
    match (
        decode_meta(&meta, serializer),
        fixture.get("expect_meta"),
        fixture.get("expect_meta_error"),
    ) {
        (Ok(value), Some(expected), None) => {
            if tag(&value) != normalize(expected) {
                failures.push(format!(
                    "{what}: meta decoded as {} expected {expected}",
                    tag(&value)
                ));
            }
        }
        (Err(e), None, Some(expected)) => {
            eprintln!("{what}: meta rejected as expected: {e}");
            check_error(&format!("{what} meta"), &e.to_string(), expected, failures);
        }
        (result, _, _) => failures.push(format!("{what}: unexpected meta outcome {result:?}")),
    }
}

#[test]
fn golden_job_hashes_decode_as_rq_reads_them() {
    let mut paths = Vec::new();
    collect_json(&fixtures_dir().join("golden"), &mut paths);
    assert!(
        paths.len() >= MIN_FIXTURES,
        "only {} fixtures found",
        paths.len()
    );
    let mut failures = Vec::new();
    for path in &paths {
        check_fixture(path, &mut failures);
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Set `RQW_UPDATE_RETURN_VALUES=1` to rewrite the committed bytes (then run
/// `python-fixtures/check_return_values.py` with a venv Python to verify them).
#[test]
fn return_values_match_bytes_verified_with_python() {
    let path = fixtures_dir().join("return_values.json");
    let mut file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let update = std::env::var_os("RQW_UPDATE_RETURN_VALUES").is_some();
    let mut failures = Vec::new();
    for case in file["cases"].as_array_mut().unwrap() {
        let name = case["name"].as_str().unwrap().to_string();
        let value = untag(&case["value"]);
        let pickle = B64.encode(encode_return_value(&value, Serializer::Pickle).unwrap());
        let json = match encode_return_value(&value, Serializer::Json) {
            Ok(bytes) => Value::String(B64.encode(bytes)),
            Err(e) => {
                assert!(e.is_unserializable(), "{name}: {e}");
                Value::Null
            }
        };
        if update {
            case["pickle"] = Value::String(pickle);
            case["json"] = json;
        } else {
            if case["pickle"] != Value::String(pickle.clone()) {
                failures.push(format!(
                    "{name}: pickle {pickle} differs from the verified bytes"
                ));
            }
            if case["json"] != json {
                failures.push(format!(
                    "{name}: json {json} differs from the verified bytes"
                ));
            }
        }
    }
    if update {
        std::fs::write(&path, serde_json::to_string_pretty(&file).unwrap() + "\n").unwrap();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
