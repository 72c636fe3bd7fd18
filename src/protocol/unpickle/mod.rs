//! The pickle decoder: RQ's job `data` and `meta` pickles to plain Python values, refusing
//! everything else.
//!
//! RQ pickles a job's `data` with `pickle.HIGHEST_PROTOCOL` (protocol 5). Built-in values
//! (None, bool, int, float, str, bytes, bytearray, list, tuple, dict, set, frozenset) need only
//! a small set of opcodes; everything else (datetime, Decimal, UUID, enums, class instances,
//! bound methods) pulls in a global reference plus a constructor call. [`decode`] walks the
//! stream like `pickletools.genops`, refuses every opcode of that second kind with an error
//! naming the first one (and the `module.name` of a `GLOBAL`/`STACK_GLOBAL`), and builds the
//! value; [`scan`] only checks.
//!
//! Why a decoder of our own: serde-pickle 1.2 fails on a shared dict holding memoized
//! strings, which real RQ jobs contain (`d = {'a': 1}; pickle.dumps([d, d])` fails with
//! "recursive structure found": it loses memo entries when a memoized container that itself
//! holds memoized items is referenced twice; the test
//! `serde_pickle_still_fails_on_a_shared_dict` keeps the measurement), and it has no depth or
//! expansion limits. Integers beyond 64 bits are num-bigint's (`PyValue::Int`); serde-pickle
//! still decodes the rare text opcodes of protocols 0-1 (`INT`, `FLOAT`, `STRING`,
//! `UNICODE`...) from a one-opcode pickle, and writes the pickled results
//! (`payload::encode_return_value`). Shared references (the same list twice) become equal
//! copies, as Python's `==` sees them.
//!
//! Three parts: `opcodes` (the opcode table: name and argument layout of every byte),
//! `machine` (the walk: a simulated unpickler stack over an arena, then the build), and
//! `limits` (depth, memory budget, expansion of shared references).
//!
//! Protection against hostile input:
//! - no panics; no length field is used before it is checked against the remaining input;
//!   memory stays proportional to the verified input;
//! - nesting deeper than [`MAX_DEPTH`] containers (or [`MAX_DEPTH`] open `MARK`s) is refused,
//!   so building, comparing and dropping the value cannot overflow the stack;
//! - memory is budgeted, not values counted: every value, container, stack slot and memo
//!   entry the walk allocates is charged to the budget as it is made ([`decode_within`];
//!   [`DEFAULT_BUDGET`] by default), and so is the built value, computed once shared
//!   references are expanded into copies, before it is built (a list holding a list twice,
//!   holding a list twice... would otherwise expand exponentially): the walk and the value
//!   together never hold more than the budget (see [`cost`] for what is charged);
//! - a `FRAME` whose length runs past the end of the input is refused, as Python's
//!   unpickler refuses it (`pickle data was truncated`);
//! - self-referencing structures are refused.

mod limits;
mod machine;
mod opcodes;
#[cfg(test)]
mod tests;

pub use limits::{cost, DEFAULT_BUDGET, MAX_DEPTH, MAX_PROTOCOL};

use crate::value::PyValue;
use machine::Machine;

/// Why a pickle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnpickleError {
    /// An opcode that builds something other than plain data.
    #[error("unsupported pickle content ({})", label(opcode, global.as_deref()))]
    Forbidden {
        /// The opcode name, as `pickletools` spells it (e.g. `STACK_GLOBAL`).
        opcode: &'static str,
        /// `module.name` for `GLOBAL`, `STACK_GLOBAL` and `INST`, when known.
        global: Option<String>,
        /// Byte offset of the opcode.
        offset: usize,
        /// When the pickle is a `MARK ... TUPLE` (as RQ's `(func_name, instance, args,
        /// kwargs)` is): the index of the first element holding the offending object.
        outer_item: Option<usize>,
    },
    /// A byte that is not a pickle opcode.
    #[error("not a pickle: unknown opcode 0x{byte:02x} at offset {offset}")]
    UnknownOpcode {
        /// The byte found.
        byte: u8,
        /// Its offset.
        offset: usize,
    },
    /// The input ended inside an opcode or before `STOP`.
    #[error("truncated pickle ({opcode} at offset {offset})")]
    Truncated {
        /// The opcode being read, or `STOP` when it is missing.
        opcode: &'static str,
        /// Offset of that opcode (or of the end of input).
        offset: usize,
    },
    /// The opcodes do not form a valid pickle (stack underflow, bad memo index, ...).
    #[error("malformed pickle: {reason} at offset {offset}")]
    Malformed {
        /// What is wrong.
        reason: &'static str,
        /// Offset of the offending opcode.
        offset: usize,
    },
    /// A `PROTO` above [`MAX_PROTOCOL`].
    #[error("unsupported pickle protocol {0}")]
    UnsupportedProtocol(u8),
    /// Nesting beyond [`MAX_DEPTH`].
    #[error("pickle nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// Decoding would take more memory than the budget (see [`cost`]).
    #[error("pickle decodes to more than the {limit}-byte memory budget ({stage})")]
    TooLarge {
        /// Where the budget ran out: `while reading` (the walk) or `once expanded` (the value
        /// to build, shared references copied).
        stage: &'static str,
        /// The budget, in bytes.
        limit: u64,
    },
    /// A container that contains itself.
    #[error("recursive (self-referencing) structure in pickle")]
    Recursive,
    /// A list or dict used as a dict key or set item.
    #[error("unhashable {0} in pickle")]
    Unhashable(&'static str),
}

impl UnpickleError {
    /// For [`UnpickleError::Forbidden`]: the opcode and the global it names, e.g.
    /// `STACK_GLOBAL datetime.datetime`.
    pub fn forbidden_label(&self) -> Option<String> {
        match self {
            UnpickleError::Forbidden { opcode, global, .. } => {
                Some(label(opcode, global.as_deref()))
            }
            _ => None,
        }
    }
}

fn label(opcode: &str, global: Option<&str>) -> String {
    match global {
        Some(global) => format!("{opcode} {global}"),
        None => opcode.to_string(),
    }
}

/// Checks that `pickle` holds only plain data within the limits (see the module docs), with
/// the [`DEFAULT_BUDGET`].
pub fn scan(pickle: &[u8]) -> Result<(), UnpickleError> {
    Machine::run(pickle, DEFAULT_BUDGET).map(|_| ())
}

/// Checks `pickle` like [`scan`] and returns the value it holds, with the [`DEFAULT_BUDGET`].
pub fn decode(pickle: &[u8]) -> Result<PyValue, UnpickleError> {
    decode_within(pickle, DEFAULT_BUDGET)
}

/// [`decode`] with a memory budget of `budget` bytes for the walk and the value together.
pub fn decode_within(pickle: &[u8], budget: u64) -> Result<PyValue, UnpickleError> {
    let (machine, root) = Machine::run(pickle, budget)?;
    machine.build(root)
}
