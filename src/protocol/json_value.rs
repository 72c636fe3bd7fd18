//! Conversion between JSON and [`PyValue`], with Python's `json` module semantics.
//!
//! RQ's `JSONSerializer` is `json.dumps(obj).encode()` / `json.loads(bytes.decode())`.
//! [`loads`] / [`dumps`] work on bytes and follow Python exactly: integers of any size stay
//! integers (Python writes `2**70` as `1180591620717411303424`), and the `NaN`, `Infinity` and
//! `-Infinity` tokens that `json.dumps` writes by default are read and written. [`loads`] is a
//! reader of our own, because serde_json's refuses those tokens and reads big integers as
//! floats. [`dumps`] is serde_json's serializer with a formatter of ours (`writer`), and
//! produces the bytes `json.dumps` would (separators `", "` and `": "`, `ensure_ascii`, `repr`
//! floats), except for dict order and sets (below).
//!
//! Decisions, where Python's `json.dumps` would raise `TypeError` (and RQ would then store its
//! `"Unserializable return value"` placeholder):
//! - bytes (`Bytes`) are an error, as in Python: the caller writes RQ's placeholder;
//! - sets and frozensets are written as arrays (Python reads a list back), because a Rust
//!   handler that returns a set means "these values";
//! - dict keys that are int, float, bool or None are converted to strings as `json.dumps`
//!   does (`1` -> `"1"`, `True` -> `"true"`, `None` -> `"null"`); tuple, bytes and frozenset
//!   keys are an error.
//!
//! Nesting is capped at [`MAX_DEPTH`] in every direction, so recursion stays shallow.
//! [`loads_within`] charges every value to a memory budget as it is built (the value, its
//! share of its container, its string content; [`loads`] uses
//! [`super::unpickle::DEFAULT_BUDGET`]), so a document of tiny values cannot expand
//! into much more memory than the budget.

mod writer;

use std::collections::BTreeMap;

use crate::value::{int_from_decimal, HashableValue, PyValue};

/// Deepest nesting of arrays/objects accepted, the same cap as for pickles.
pub const MAX_DEPTH: usize = super::unpickle::MAX_DEPTH;

/// Most digits in an integer literal: Python 3.11's `sys.get_int_max_str_digits()` default;
/// `json.loads` raises `ValueError` beyond it.
pub const MAX_INT_DIGITS: usize = 4300;

/// Why a JSON document or value could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// The bytes are not JSON as Python's `json.loads` reads it.
    #[error("invalid JSON: {reason} at byte {offset}")]
    Syntax {
        /// What is wrong.
        reason: &'static str,
        /// Byte offset in the document.
        offset: usize,
    },
    /// Arrays/objects nest deeper than [`MAX_DEPTH`].
    #[error("JSON nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// A value that JSON (as Python's `json.dumps` writes it) cannot represent.
    #[error("{0} is not JSON serializable")]
    Unserializable(&'static str),
    /// The decoded value would take more memory than the budget.
    #[error("JSON decodes to more than the {limit}-byte memory budget (at byte {offset})")]
    TooLarge {
        /// The budget, in bytes.
        limit: u64,
        /// Where it ran out.
        offset: usize,
    },
}

impl JsonError {
    /// Whether this is a value JSON cannot hold (for results: write RQ's placeholder).
    pub fn is_unserializable(&self) -> bool {
        matches!(self, JsonError::Unserializable(_))
    }
}

/// Parses a JSON document the way Python's `json.loads(raw.decode('utf-8'))` does, within
/// the default memory budget.
pub fn loads(raw: &[u8]) -> Result<PyValue, JsonError> {
    loads_within(raw, super::unpickle::DEFAULT_BUDGET)
}

/// [`loads`] with a memory budget of `budget` bytes for the decoded value.
pub fn loads_within(raw: &[u8], budget: u64) -> Result<PyValue, JsonError> {
    let text = std::str::from_utf8(raw).map_err(|e| syntax("invalid UTF-8", e.valid_up_to()))?;
    let mut parser = Parser {
        text: text.as_bytes(),
        pos: 0,
        spent: 0,
        budget,
    };
    parser.skip_ws();
    let value = parser.value(0)?;
    parser.skip_ws();
    if parser.pos != parser.text.len() {
        return Err(syntax("extra data after the document", parser.pos));
    }
    Ok(value)
}

/// Writes `value` as Python's `json.dumps(value).encode()` would (see the module docs for
/// sets and dict keys).
pub fn dumps(value: &PyValue) -> Result<Vec<u8>, JsonError> {
    writer::dumps(value)
}

fn deeper(depth: usize) -> Result<usize, JsonError> {
    if depth >= MAX_DEPTH {
        Err(JsonError::TooDeep)
    } else {
        Ok(depth + 1)
    }
}

fn syntax(reason: &'static str, offset: usize) -> JsonError {
    JsonError::Syntax { reason, offset }
}

struct Parser<'a> {
    text: &'a [u8],
    pos: usize,
    /// Bytes charged so far, and the most allowed.
    spent: u64,
    budget: u64,
}

/// What one decoded value costs: itself plus its share of its container's storage (a dict
/// entry, with its key, costs about twice a list item in a B-tree).
const VALUE_COST: u64 = 2 * std::mem::size_of::<PyValue>() as u64;

impl Parser<'_> {
    /// Charges `bytes` to the budget, failing once it is spent.
    fn charge(&mut self, bytes: u64) -> Result<(), JsonError> {
        self.spent = self.spent.saturating_add(bytes);
        if self.spent > self.budget {
            return Err(JsonError::TooLarge {
                limit: self.budget,
                offset: self.pos,
            });
        }
        Ok(())
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, literal: &str) -> bool {
        let end = self.pos + literal.len();
        if self.text.get(self.pos..end) == Some(literal.as_bytes()) {
            self.pos = end;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<PyValue, JsonError> {
        let start = self.pos;
        self.charge(VALUE_COST)?;
        match self.peek() {
            Some(b'{') => self.object(deeper(depth)?),
            Some(b'[') => self.array(deeper(depth)?),
            Some(b'"') => Ok(PyValue::String(self.string()?)),
            Some(b'n') if self.eat("null") => Ok(PyValue::None),
            Some(b't') if self.eat("true") => Ok(PyValue::Bool(true)),
            Some(b'f') if self.eat("false") => Ok(PyValue::Bool(false)),
            Some(b'N') if self.eat("NaN") => Ok(PyValue::F64(f64::NAN)),
            Some(b'I') if self.eat("Infinity") => Ok(PyValue::F64(f64::INFINITY)),
            Some(b'-') if self.eat("-Infinity") => Ok(PyValue::F64(f64::NEG_INFINITY)),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(syntax("expecting value", start)),
        }
    }

    fn array(&mut self, depth: usize) -> Result<PyValue, JsonError> {
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.eat("]") {
            return Ok(PyValue::List(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth)?);
            self.skip_ws();
            if self.eat("]") {
                return Ok(PyValue::List(items));
            }
            if !self.eat(",") {
                return Err(syntax("expecting ',' delimiter", self.pos));
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<PyValue, JsonError> {
        self.pos += 1;
        let mut map = BTreeMap::new();
        self.skip_ws();
        if self.eat("}") {
            return Ok(PyValue::Dict(map));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(syntax("expecting property name in double quotes", self.pos));
            }
            self.charge(VALUE_COST)?;
            let key = self.string()?;
            self.skip_ws();
            if !self.eat(":") {
                return Err(syntax("expecting ':' delimiter", self.pos));
            }
            self.skip_ws();
            let value = self.value(depth)?;
            // Python keeps the last value of a repeated key.
            map.insert(HashableValue::String(key), value);
            self.skip_ws();
            if self.eat("}") {
                return Ok(PyValue::Dict(map));
            }
            if !self.eat(",") {
                return Err(syntax("expecting ',' delimiter", self.pos));
            }
        }
    }

    /// `-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?`, as Python's scanner matches it.
    fn number(&mut self) -> Result<PyValue, JsonError> {
        let start = self.pos;
        self.eat("-");
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(syntax("expecting value", start)),
        }
        let mut is_float = false;
        if self.peek() == Some(b'.') && self.text.get(self.pos + 1).is_some_and(u8::is_ascii_digit)
        {
            self.pos += 1;
            self.digits();
            is_float = true;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            let mark = self.pos;
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.peek().is_some_and(|b| b.is_ascii_digit()) {
                self.digits();
                is_float = true;
            } else {
                self.pos = mark;
            }
        }
        let literal = std::str::from_utf8(self.text.get(start..self.pos).unwrap_or_default())
            .map_err(|_| syntax("invalid number", start))?;
        if is_float {
            return literal
                .parse::<f64>()
                .map(PyValue::F64)
                .map_err(|_| syntax("invalid number", start));
        }
        if let Ok(i) = literal.parse::<i64>() {
            return Ok(PyValue::I64(i));
        }
        if literal.trim_start_matches('-').len() > MAX_INT_DIGITS {
            return Err(syntax("integer exceeds 4300 digits", start));
        }
        int_from_decimal(literal.as_bytes()).ok_or(syntax("invalid number", start))
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
    }

    fn string(&mut self) -> Result<String, JsonError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let run_start = self.pos;
            while self
                .peek()
                .is_some_and(|b| b != b'"' && b != b'\\' && b >= 0x20)
            {
                self.pos += 1;
            }
            // The input is valid UTF-8 and the run stops at ASCII bytes only.
            out.push_str(
                std::str::from_utf8(self.text.get(run_start..self.pos).unwrap_or_default())
                    .unwrap_or_default(),
            );
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    self.charge(out.len() as u64)?;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    self.escape(&mut out)?;
                }
                Some(_) => return Err(syntax("invalid control character in string", self.pos)),
                None => return Err(syntax("unterminated string", start)),
            }
        }
    }

    fn escape(&mut self, out: &mut String) -> Result<(), JsonError> {
        let at = self.pos;
        let c = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.pos += 1;
                let unit = self.hex4()?;
                let code = if (0xd800..0xdc00).contains(&unit)
                    && self.text.get(self.pos..self.pos + 2) == Some(b"\\u")
                {
                    let saved = self.pos;
                    self.pos += 2;
                    let low = self.hex4()?;
                    if (0xdc00..0xe000).contains(&low) {
                        0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00)
                    } else {
                        self.pos = saved;
                        unit
                    }
                } else {
                    unit
                };
                let c = char::from_u32(code)
                    .ok_or(syntax("lone surrogate in string (not representable)", at))?;
                out.push(c);
                return Ok(());
            }
            _ => return Err(syntax("invalid \\escape", at)),
        };
        self.pos += 1;
        out.push(c);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .ok_or(syntax("invalid \\uXXXX escape", self.pos))?;
        let text =
            std::str::from_utf8(digits).map_err(|_| syntax("invalid \\uXXXX escape", self.pos))?;
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(syntax("invalid \\uXXXX escape", self.pos));
        }
        let value = u32::from_str_radix(text, 16)
            .map_err(|_| syntax("invalid \\uXXXX escape", self.pos))?;
        self.pos += 4;
        Ok(value)
    }
}

/// A float as `json.dumps` writes it: `float.__repr__`, or `NaN`/`Infinity`/`-Infinity`.
pub fn float_token(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        python_float_repr(f)
    }
}

/// Python's `repr(float)` for a finite float: the shortest round-tripping digits, in fixed
/// notation when the decimal exponent is in `-4..16`, else as `d.ddde+XX`.
pub fn python_float_repr(f: f64) -> String {
    // Rust's `{:e}` gives the same shortest digits: "-1.2345e-7".
    let sci = format!("{:e}", f.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exponent: i64 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if f.is_sign_negative() { "-" } else { "" };
    let point = exponent + 1;
    let len = digits.len() as i64;
    if point > -4 && point <= 16 {
        if point <= 0 {
            format!("{sign}0.{}{digits}", "0".repeat((-point) as usize))
        } else if point >= len {
            format!("{sign}{digits}{}.0", "0".repeat((point - len) as usize))
        } else {
            let (int, frac) = digits.split_at(point as usize);
            format!("{sign}{int}.{frac}")
        }
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{exp_sign}{:02}", exponent.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> PyValue {
        PyValue::String(text.into())
    }

    fn key(text: &str) -> HashableValue {
        HashableValue::String(text.into())
    }

    #[test]
    fn float_repr_matches_python() {
        // (bits, repr(float)) from Python 3.11.
        let cases: &[(u64, &str)] = &[
            (0x0000000000000000, "0.0"),
            (0x8000000000000000, "-0.0"),
            (0x3ff0000000000000, "1.0"),
            (0xbff8000000000000, "-1.5"),
            (0x3fb999999999999a, "0.1"),
            (0x3fd3333333333334, "0.30000000000000004"),
            (0x4341c37937e08000, "1e+16"),
            (0x430c6bf526340000, "1000000000000000.0"),
            (0x4341c37937e07fff, "9999999999999998.0"),
            (0x3f1a36e2eb1c432d, "0.0001"),
            (0x3ee4f8b588e368f1, "1e-05"),
            (0x3f202e4b6ce5dc68, "0.00012345"),
            (0x437b69b4ba630f35, "1.2345678901234568e+17"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0x0000000000000001, "5e-324"),
            (0x0010000000000000, "2.2250738585072014e-308"),
            (0x3fd5555555555555, "0.3333333333333333"),
            (0x4340000000000000, "9007199254740992.0"),
            (0x4480f0cf064dd592, "1e+22"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x40c81cd6c8b43958, "12345.678"),
            (0xf2a74de452e6b438, "-1.989032661366619e+244"),
            (0x6513270e269e0d37, "7.761117632285041e+178"),
            (0x0c5c7fd0a6a3a450, "3.980498358697587e-249"),
            (0xd23f0824128b2f33, "-1.5432835417340557e+88"),
            (0x1818e811892f902b, "1.3647584518757569e-192"),
            (0x9531985d5d9dc9f8, "-1.3701135617873088e-206"),
            (0xe8e25d940ed90475, "-1.7160537630466207e+197"),
            (0x36f675cc81e74ef5, "6.294675241195386e-44"),
            (0x1600a35a099950d8, "1.0613447212142254e-202"),
            (0x6b0d549b6f03675a, "4.708325160387546e+207"),
            (0x3d9c172411e20b8f, "6.387016158513563e-12"),
            (0x8d116ece1738f7d9, "-9.973130378568733e-246"),
        ];
        for &(bits, expected) in cases {
            assert_eq!(python_float_repr(f64::from_bits(bits)), expected);
        }
        assert_eq!(float_token(f64::NAN), "NaN");
        assert_eq!(float_token(f64::NEG_INFINITY), "-Infinity");
    }

    #[test]
    fn loads_like_python_json() {
        let value =
            loads(br#" {"a": [1, -2, 1.5, 1e2, -0.0, null, true, false, "x"], "a": 7} "#).unwrap();
        assert_eq!(value, PyValue::Dict([(key("a"), PyValue::I64(7))].into()));
        let value =
            loads(b"[18446744073709551616, -9223372036854775808, NaN, Infinity, -Infinity, 1E+2]")
                .unwrap();
        let PyValue::List(items) = value else {
            panic!()
        };
        assert!(matches!(&items[0], PyValue::Int(i) if i.to_string() == "18446744073709551616"));
        assert_eq!(items[1], PyValue::I64(i64::MIN));
        assert!(matches!(items[2], PyValue::F64(f) if f.is_nan()));
        assert_eq!(
            items[3..],
            [
                PyValue::F64(f64::INFINITY),
                PyValue::F64(f64::NEG_INFINITY),
                PyValue::F64(100.0)
            ]
        );
        assert_eq!(loads(br#""\u00e9\ud83d\ude00\n\/""#).unwrap(), s("é😀\n/"));
        assert_eq!(loads("\"é😀\"".as_bytes()).unwrap(), s("é😀"));
        assert_eq!(loads(b"[]").unwrap(), PyValue::List(vec![]));
    }

    #[test]
    fn refuses_what_python_json_refuses() {
        for bad in [
            &b"01"[..],
            b"1.",
            b"-",
            b"+1",
            b".5",
            b"[1,]",
            b"{\"a\":1,}",
            b"{'a': 1}",
            b"[1] x",
            b"\"a\nb\"",
            b"\"\\x\"",
            b"\"\\u12\"",
            b"nul",
            b"-NaN",
            b"\"open",
            b"",
            b"\xff",
            b"[1 2]",
            b"{\"a\" 1}",
        ] {
            assert!(
                matches!(loads(bad), Err(JsonError::Syntax { .. })),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // A lone surrogate is valid for Python but not representable in a Rust String.
        assert!(loads(br#""\ud800""#).is_err());
        let digits = "9".repeat(MAX_INT_DIGITS + 1);
        assert!(loads(digits.as_bytes()).is_err());
    }

    #[test]
    fn caps_nesting() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(loads(deep(MAX_DEPTH).as_bytes()).is_ok());
        assert_eq!(
            loads(deep(MAX_DEPTH + 1).as_bytes()),
            Err(JsonError::TooDeep)
        );
        let mut value = PyValue::None;
        for _ in 0..=MAX_DEPTH {
            value = PyValue::List(vec![value]);
        }
        assert_eq!(dumps(&value), Err(JsonError::TooDeep));
    }

    #[test]
    fn dumps_like_python_json() {
        // Expected bytes from Python's json.dumps.
        let value = PyValue::Tuple(vec![
            PyValue::I64(1),
            PyValue::F64(2.5),
            s("é\"\\\n\u{7f}😀"),
            PyValue::None,
            PyValue::Bool(true),
            PyValue::List(vec![]),
            PyValue::Dict(BTreeMap::new()),
        ]);
        assert_eq!(
            dumps(&value).unwrap(),
            br#"[1, 2.5, "\u00e9\"\\\n\u007f\ud83d\ude00", null, true, [], {}]"#
        );
        let keys = [
            (HashableValue::None, "null"),
            (HashableValue::Bool(true), "true"),
            (HashableValue::I64(-3), "-3"),
            (HashableValue::F64(1.5), "1.5"),
            (HashableValue::F64(f64::INFINITY), "Infinity"),
        ];
        for (k, text) in keys {
            let dict = PyValue::Dict([(k, PyValue::I64(1))].into());
            assert_eq!(
                dumps(&dict).unwrap(),
                format!("{{\"{text}\": 1}}").into_bytes()
            );
        }
        let set = PyValue::Set([1, 2].map(HashableValue::I64).into());
        assert_eq!(dumps(&set).unwrap(), b"[1, 2]");
    }

    #[test]
    fn refuses_what_python_json_refuses_to_write() {
        let bytes = PyValue::List(vec![PyValue::Bytes(vec![0])]);
        assert!(dumps(&bytes).unwrap_err().is_unserializable());
        let tuple_key = PyValue::Dict([(HashableValue::Tuple(vec![]), PyValue::None)].into());
        assert!(dumps(&tuple_key).unwrap_err().is_unserializable());
    }

    #[test]
    fn never_panics_on_mutated_input() {
        let base = br#"{"a": [1, -2.5e3, "\u00e9\ud83d\ude00", null, true, NaN, -Infinity, 123456789012345678901234]}"#;
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..50_000 {
            let mut bytes = base.to_vec();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() as usize) % bytes.len();
                bytes[at] = b"[]{}\",:0123456789-+.eEuNI\\ \xc3\xff"[(next() % 29) as usize];
            }
            if let Ok(value) = loads(&bytes) {
                let _ = dumps(&value);
            }
        }
    }
}
