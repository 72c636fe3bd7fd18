//! The Python value type of RQ's payloads, owned by the protocol: what a job's arguments and
//! `meta` decode to and what a result is encoded from, in either serializer.
//!
//! It is serde-pickle's value tree, re-exported here so that the wire format, not the
//! handler API, says what a Python value is (`crate::handlers` re-exports it in turn for
//! handler authors). serde-pickle also writes the pickled results
//! (`payload::encode_return_value`), so owning its type avoids a conversion on every result.

/// A Python value as RQ's serializers carry it (None, bool, int, float, str, bytes, list,
/// tuple, set, frozenset, dict). Integers that fit 64 bits are `I64`, larger ones `Int`.
pub use serde_pickle::Value as PyValue;

/// A hashable Python value: a dict key or a set item.
pub use serde_pickle::HashableValue;

/// An integer of any size (num-bigint's), as `PyValue::Int` holds it.
pub use num_bigint::BigInt;

/// An integer of any size as a [`PyValue`]: `I64` when it fits, else `Int` (the canonical form,
/// which serde-pickle's own decoder gives too).
pub fn int_value(value: BigInt) -> PyValue {
    match i64::try_from(&value) {
        Ok(small) => PyValue::I64(small),
        Err(_) => PyValue::Int(value),
    }
}

/// A decimal integer literal (an optional `-` or `+`, then digits) as a [`PyValue`], or
/// `None` when it is not one.
pub fn int_from_decimal(digits: &[u8]) -> Option<PyValue> {
    BigInt::parse_bytes(digits, 10).map(int_value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_canonical() {
        assert_eq!(
            int_from_decimal(b"-9223372036854775808"),
            Some(PyValue::I64(i64::MIN))
        );
        let big = int_from_decimal(b"9223372036854775808").unwrap();
        assert!(matches!(&big, PyValue::Int(i) if i.to_string() == "9223372036854775808"));
        assert_eq!(int_value(BigInt::from(7)), PyValue::I64(7));
        assert_eq!(int_from_decimal(b"12x"), None);
        assert_eq!(int_from_decimal(b""), None);
    }
}
