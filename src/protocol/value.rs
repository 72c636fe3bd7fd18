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
