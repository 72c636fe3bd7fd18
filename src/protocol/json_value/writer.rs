//! The JSON writer: serde_json's serializer with a formatter that writes what Python's
//! `json.dumps` writes.
//!
//! serde_json does the walk's bookkeeping and the string escaping; [`PythonFormatter`] makes
//! the bytes Python's: separators `", "` and `": "`, `ensure_ascii` (`\uXXXX`, surrogate pairs
//! beyond the BMP, `\u007f`), and `repr` floats. serde_json has no token for what Python
//! writes and JSON lacks (`NaN`, `Infinity`, `-Infinity`, integers beyond 64 bits): those go
//! through `serialize_bytes`, which the formatter writes verbatim. No other bytes reach it,
//! because Python's `json.dumps` refuses bytes and so does [`super::dumps`].

use std::cell::Cell;
use std::io::{self, Write};

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::ser::Formatter;

use super::{deeper, float_token, python_float_repr, JsonError};
use crate::value::{HashableValue, PyValue};

/// Writes `value` as `json.dumps(value).encode()` (see [`super::dumps`]).
pub(super) fn dumps(value: &PyValue) -> Result<Vec<u8>, JsonError> {
    let failure = Cell::new(None);
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    let root = Json {
        node: Node::Value(value),
        depth: 0,
        failure: &failure,
    };
    match root.serialize(&mut serializer) {
        Ok(()) => Ok(out),
        // Writing to a Vec cannot fail: an error is one of ours, kept in `failure`.
        Err(_) => Err(failure
            .take()
            .unwrap_or(JsonError::Unserializable("a value"))),
    }
}

/// `json.dumps`'s output format, for serde_json's serializer.
struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_f64<W: ?Sized + Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        // serde_json calls this for finite floats only.
        w.write_all(python_float_repr(value).as_bytes())
    }

    /// `ensure_ascii`: everything outside printable ASCII as `\uXXXX` (serde_json has already
    /// escaped `"`, `\` and the control characters, as Python does).
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut run = 0;
        for (at, c) in fragment.char_indices() {
            if matches!(c, ' '..='~') {
                continue;
            }
            w.write_all(fragment.as_bytes().get(run..at).unwrap_or_default())?;
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(w, "\\u{unit:04x}")?;
            }
            run = at + c.len_utf8();
        }
        w.write_all(fragment.as_bytes().get(run..).unwrap_or_default())
    }

    /// A token JSON lacks (see the module docs), written as it is.
    fn write_byte_array<W: ?Sized + Write>(&mut self, w: &mut W, token: &[u8]) -> io::Result<()> {
        w.write_all(token)
    }
}

/// A value to write: a [`PyValue`], or a set item (a [`HashableValue`]).
#[derive(Clone, Copy)]
enum Node<'v> {
    Value(&'v PyValue),
    Hashable(&'v HashableValue),
}

/// A node with its depth; the first error is kept in `failure`, typed.
struct Json<'v> {
    node: Node<'v>,
    depth: usize,
    failure: &'v Cell<Option<JsonError>>,
}

impl Json<'_> {
    fn fail<E: serde::ser::Error>(&self, error: JsonError) -> E {
        let message = error.to_string();
        self.failure.set(Some(error));
        E::custom(message)
    }

    fn child<'c>(&'c self, node: Node<'c>, depth: usize) -> Json<'c> {
        Json {
            node,
            depth,
            failure: self.failure,
        }
    }

    fn seq<'c, S: Serializer>(
        &'c self,
        serializer: S,
        items: impl ExactSizeIterator<Item = Node<'c>>,
    ) -> Result<S::Ok, S::Error> {
        let depth = deeper(self.depth).map_err(|e| self.fail(e))?;
        let mut seq = serializer.serialize_seq(Some(items.len()))?;
        for item in items {
            seq.serialize_element(&self.child(item, depth))?;
        }
        seq.end()
    }
}

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.node {
            Node::Value(value) => match value {
                PyValue::None => serializer.serialize_unit(),
                PyValue::Bool(b) => serializer.serialize_bool(*b),
                PyValue::I64(i) => serializer.serialize_i64(*i),
                PyValue::Int(i) => serializer.serialize_bytes(i.to_string().as_bytes()),
                PyValue::F64(f) => float(serializer, *f),
                PyValue::String(s) => serializer.serialize_str(s),
                PyValue::Bytes(_) => Err(self.fail(JsonError::Unserializable("bytes"))),
                PyValue::List(items) | PyValue::Tuple(items) => {
                    self.seq(serializer, items.iter().map(Node::Value))
                }
                PyValue::Set(items) | PyValue::FrozenSet(items) => {
                    self.seq(serializer, items.iter().map(Node::Hashable))
                }
                PyValue::Dict(map) => {
                    let depth = deeper(self.depth).map_err(|e| self.fail(e))?;
                    let mut out = serializer.serialize_map(Some(map.len()))?;
                    for (key, item) in map {
                        let key = key_string(key).map_err(|e| self.fail(e))?;
                        out.serialize_entry(&key, &self.child(Node::Value(item), depth))?;
                    }
                    out.end()
                }
            },
            Node::Hashable(value) => match value {
                HashableValue::None => serializer.serialize_unit(),
                HashableValue::Bool(b) => serializer.serialize_bool(*b),
                HashableValue::I64(i) => serializer.serialize_i64(*i),
                HashableValue::Int(i) => serializer.serialize_bytes(i.to_string().as_bytes()),
                HashableValue::F64(f) => float(serializer, *f),
                HashableValue::String(s) => serializer.serialize_str(s),
                HashableValue::Bytes(_) => Err(self.fail(JsonError::Unserializable("bytes"))),
                HashableValue::Tuple(items) => {
                    self.seq(serializer, items.iter().map(Node::Hashable))
                }
                HashableValue::FrozenSet(items) => {
                    self.seq(serializer, items.iter().map(Node::Hashable))
                }
            },
        }
    }
}

/// A float: serde_json writes a finite one (through [`PythonFormatter::write_f64`]); `NaN`
/// and the infinities are tokens of their own.
fn float<S: Serializer>(serializer: S, f: f64) -> Result<S::Ok, S::Error> {
    if f.is_finite() {
        serializer.serialize_f64(f)
    } else {
        serializer.serialize_bytes(float_token(f).as_bytes())
    }
}

/// A dict key as `json.dumps` converts it.
fn key_string(key: &HashableValue) -> Result<String, JsonError> {
    Ok(match key {
        HashableValue::String(s) => s.clone(),
        HashableValue::None => "null".into(),
        HashableValue::Bool(true) => "true".into(),
        HashableValue::Bool(false) => "false".into(),
        HashableValue::I64(i) => i.to_string(),
        HashableValue::Int(i) => i.to_string(),
        HashableValue::F64(f) => float_token(*f),
        HashableValue::Bytes(_) => return Err(JsonError::Unserializable("a bytes dict key")),
        HashableValue::Tuple(_) => return Err(JsonError::Unserializable("a tuple dict key")),
        HashableValue::FrozenSet(_) => {
            return Err(JsonError::Unserializable("a frozenset dict key"))
        }
    })
}
