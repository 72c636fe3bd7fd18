//! Pickle opcode walker: refuses content beyond plain data, and builds the plain data.
//!
//! RQ pickles a job's `data` with `pickle.HIGHEST_PROTOCOL` (protocol 5). Built-in values
//! (None, bool, int, float, str, bytes, bytearray, list, tuple, dict, set, frozenset) need only
//! a small set of opcodes; everything else (datetime, Decimal, UUID, enums, class instances,
//! bound methods) pulls in a global reference plus a constructor call. [`scan`] walks the
//! stream like `pickletools.genops` and refuses every opcode of that second kind with an
//! error naming the first one (and the `module.name` of a `GLOBAL`/`STACK_GLOBAL`).
//!
//! [`decode`] also builds the value. serde-pickle 1.2 is not used for containers because it
//! loses memo entries when a memoized container that itself holds memoized items is
//! referenced twice (`d = {'a': 1}; pickle.dumps([d, d])` fails with "recursive structure
//! found"); scalars are decoded here or, for the rare text opcodes of protocols 0-1, by
//! serde-pickle from a one-opcode pickle. Shared references (the same list twice) become
//! equal copies, as Python's `==` sees them.
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

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::value::PyValue;

/// Deepest nesting of containers (and most simultaneously open `MARK`s) accepted.
///
/// `PyValue`'s derived `Clone`, `PartialEq`, `Debug` and `Drop` recurse, as does most code
/// that walks arguments; in a debug build a derived `Clone` of a 1000-deep value needs about
/// 1 MiB of stack (measured), too much on a 2 MiB tokio worker thread next to a handler.
/// 200 keeps every such walk well under 512 KiB; real job arguments nest a few levels
/// (serde_json's own default limit is 128).
pub const MAX_DEPTH: usize = 200;

/// The memory budget of [`decode`] and [`scan`] (bytes): the walk's own allocations plus the
/// built value. The worker passes its `--max-decoded-bytes` to [`decode_within`] instead.
pub const DEFAULT_BUDGET: u64 = 32 << 20;

/// What the decoder charges to its budget, in bytes. The figures are the sizes of the Rust
/// types involved (so they follow the build), doubled where they sit in a growing vector (a
/// `Vec` holds up to twice its length while it grows), plus the str/bytes content: every
/// allocation of the walk is covered by one of these, and so is every node of the built
/// value.
pub mod cost {
    use super::{Item, Node};
    use crate::value::PyValue;

    /// A scalar in the walk's arena (plus its str/bytes content).
    pub const LEAF: u64 = 2 * (std::mem::size_of::<PyValue>() + std::mem::size_of::<Item>()) as u64;
    /// A container in the walk's arena.
    pub const NODE: u64 = 2 * (std::mem::size_of::<Node>() + std::mem::size_of::<Item>()) as u64;
    /// A reference to a value: a stack slot, a container item, a memo entry.
    pub const SLOT: u64 = 2 * std::mem::size_of::<Item>() as u64;
    /// One value of the built result: the value itself plus its share of its container's
    /// storage (a dict or set entry costs about twice a list item in a B-tree).
    pub const VALUE: u64 = 2 * std::mem::size_of::<PyValue>() as u64;
}

/// The highest pickle protocol understood (Python 3.8+ writes 5).
pub const MAX_PROTOCOL: u8 = 5;

/// Longest `module.name` quoted in an error message.
const MAX_NAME_CHARS: usize = 120;

/// Why a pickle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
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

impl ScanError {
    /// For [`ScanError::Forbidden`]: the opcode and the global it names, e.g.
    /// `STACK_GLOBAL datetime.datetime`.
    pub fn forbidden_label(&self) -> Option<String> {
        match self {
            ScanError::Forbidden { opcode, global, .. } => Some(label(opcode, global.as_deref())),
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
pub fn scan(pickle: &[u8]) -> Result<(), ScanError> {
    Machine::run(pickle, DEFAULT_BUDGET).map(|_| ())
}

/// Checks `pickle` like [`scan`] and returns the value it holds, with the [`DEFAULT_BUDGET`].
pub fn decode(pickle: &[u8]) -> Result<PyValue, ScanError> {
    decode_within(pickle, DEFAULT_BUDGET)
}

/// [`decode`] with a memory budget of `budget` bytes for the walk and the value together.
pub fn decode_within(pickle: &[u8], budget: u64) -> Result<PyValue, ScanError> {
    let (machine, root) = Machine::run(pickle, budget)?;
    machine.build(root)
}

/// A value on the simulated stack, in the memo or in a container.
#[derive(Debug, Clone, Copy)]
enum Item {
    /// A scalar: index into `Machine::leaves`.
    Leaf(usize),
    /// A container: index into `Machine::nodes`. Shared, like a Python reference.
    Container(usize),
    /// The result of a forbidden opcode (only simulated to locate it, never built).
    Object,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    List,
    Tuple,
    Dict,
    Set,
    FrozenSet,
}

/// A container; a dict's items are flattened `key, value, key, value`.
#[derive(Debug)]
struct Node {
    kind: Kind,
    items: Vec<Item>,
    /// Holds (directly or below) the result of a forbidden opcode.
    tainted: bool,
}

/// The size of a container once shared references are expanded into copies.
#[derive(Debug, Clone, Copy, Default)]
struct Expanded {
    values: u64,
    bytes: u64,
    depth: usize,
}

/// The first forbidden opcode met.
#[derive(Debug)]
struct Forbidden {
    opcode: &'static str,
    global: Option<String>,
    offset: usize,
    outer_item: Option<usize>,
}

/// Which opcode is being read, for error messages.
#[derive(Debug, Clone, Copy)]
struct Ctx {
    name: &'static str,
    offset: usize,
}

struct Machine<'a> {
    input: &'a [u8],
    pos: usize,
    stack: Vec<Item>,
    /// Stack heights at each open MARK.
    marks: Vec<usize>,
    memo: HashMap<u64, Item>,
    leaves: Vec<PyValue>,
    nodes: Vec<Node>,
    forbidden: Option<Forbidden>,
    /// Bytes charged so far (see [`cost`]), and the most allowed.
    spent: u64,
    budget: u64,
}

impl<'a> Machine<'a> {
    /// Walks to `STOP` and checks the limits; returns the machine and the root item.
    fn run(input: &'a [u8], budget: u64) -> Result<(Self, Item), ScanError> {
        let mut machine = Machine {
            input,
            pos: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            leaves: Vec::new(),
            nodes: Vec::new(),
            forbidden: None,
            spent: 0,
            budget,
        };
        let walked = machine.walk();
        // Past a forbidden opcode the walk only locates it; later errors are moot.
        if let Some(f) = machine.forbidden.take() {
            return Err(ScanError::Forbidden {
                opcode: f.opcode,
                global: f.global,
                offset: f.offset,
                outer_item: f.outer_item,
            });
        }
        let root = walked?;
        let expanded = expand(&machine.nodes, &machine.leaves)?;
        let (values, bytes) = match root {
            Item::Container(n) => expanded.get(n).map_or((0, 0), |e| (e.values, e.bytes)),
            Item::Leaf(l) => (1, machine.leaves.get(l).map_or(0, leaf_bytes)),
            Item::Object => (1, 0),
        };
        // The arena stays alive while the value is built: both count.
        let built = values.saturating_mul(cost::VALUE).saturating_add(bytes);
        if machine.spent.saturating_add(built) > machine.budget {
            return Err(ScanError::TooLarge {
                stage: "once expanded",
                limit: machine.budget,
            });
        }
        Ok((machine, root))
    }

    /// Walks the opcodes up to `STOP` and returns the item it would return.
    fn walk(&mut self) -> Result<Item, ScanError> {
        loop {
            let offset = self.pos;
            let Some(&op) = self.input.get(offset) else {
                return Err(ScanError::Truncated {
                    opcode: "STOP",
                    offset,
                });
            };
            self.pos += 1;
            let (name, layout) = opcode(op).ok_or(ScanError::UnknownOpcode { byte: op, offset })?;
            let ctx = Ctx { name, offset };
            let (arg, arg2) = self.read_arg(layout, ctx)?;
            match op {
                b'\x80' if le(arg) > u64::from(MAX_PROTOCOL) => {
                    return Err(ScanError::UnsupportedProtocol(
                        arg.first().copied().unwrap_or(0),
                    ))
                }
                // A FRAME announces the bytes that follow; Python's unpickler reads them ahead
                // and refuses a length the input does not have (2**63 included).
                b'\x95' if le(arg) > (self.input.len() - self.pos) as u64 => {
                    return Err(ScanError::Truncated {
                        opcode: name,
                        offset,
                    })
                }
                b'\x80' | b'\x95' => {} // PROTO, FRAME
                b'.' => return self.pop(ctx),
                b'(' if self.marks.len() >= MAX_DEPTH => return Err(ScanError::TooDeep),
                b'(' => self.marks.push(self.stack.len()),
                b'0' if self.frame_len() == 0 => drop(self.pop_mark(ctx)?),
                b'0' => {
                    self.pop(ctx)?;
                }
                b'1' => drop(self.pop_mark(ctx)?),
                b'2' => {
                    self.charge(cost::SLOT)?;
                    self.stack.push(self.top(ctx)?);
                }
                // Memo.
                b'p' | b'g' => {
                    let id = std::str::from_utf8(arg)
                        .ok()
                        .and_then(|s| s.trim().parse().ok());
                    let id = id.ok_or_else(|| malformed("bad memo index", ctx))?;
                    self.memo_op(op == b'p', id, ctx)?;
                }
                b'q' | b'r' => self.memo_op(true, le(arg), ctx)?,
                b'h' | b'j' => self.memo_op(false, le(arg), ctx)?,
                b'\x94' => self.memo_op(true, self.memo.len() as u64, ctx)?,
                // Scalars.
                b'N' => self.push_leaf(PyValue::None)?,
                b'\x88' | b'\x89' => self.push_leaf(PyValue::Bool(op == b'\x88'))?,
                b'K' | b'M' => self.push_leaf(PyValue::I64(le(arg) as i64))?,
                b'J' => self.push_leaf(PyValue::I64((le(arg) as u32 as i32).into()))?,
                b'G' => {
                    let bits = arg.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b));
                    self.push_leaf(PyValue::F64(f64::from_bits(bits)))?;
                }
                b'\x8a' | b'\x8b' if arg.len() <= 8 => {
                    // Little-endian two's complement, sign-extended.
                    let fill = if arg.last().is_some_and(|&b| b & 0x80 != 0) {
                        u64::MAX
                    } else {
                        0
                    };
                    let value = fill.checked_shl(8 * arg.len() as u32).unwrap_or(0) | le(arg);
                    self.push_leaf(PyValue::I64(value as i64))?;
                }
                b'C' | b'B' | b'\x8e' | b'\x96' => self.push_leaf(PyValue::Bytes(arg.to_vec()))?,
                b'\x8c' | b'X' | b'\x8d' => {
                    let text =
                        std::str::from_utf8(arg).map_err(|_| malformed("str is not UTF-8", ctx))?;
                    self.push_leaf(PyValue::String(text.to_string()))?;
                }
                // Long ints and protocol 0-1 text forms: decoded by serde-pickle.
                b'\x8a' | b'\x8b' | b'I' | b'L' | b'F' | b'S' | b'V' | b'U' | b'T' => {
                    let mut one = self
                        .input
                        .get(offset..self.pos)
                        .unwrap_or_default()
                        .to_vec();
                    one.push(b'.');
                    let options = serde_pickle::DeOptions::new().decode_strings();
                    let value = serde_pickle::value_from_slice(&one, options)
                        .map_err(|_| malformed("invalid literal", ctx))?;
                    self.push_leaf(value)?;
                }
                // Containers.
                b')' => self.push_node(Kind::Tuple, Vec::new())?,
                b']' => self.push_node(Kind::List, Vec::new())?,
                b'}' => self.push_node(Kind::Dict, Vec::new())?,
                b'\x8f' => self.push_node(Kind::Set, Vec::new())?,
                b'\x85' | b'\x86' | b'\x87' => {
                    let n = usize::from(op - 0x84);
                    if self.frame_len() < n {
                        return Err(malformed("stack underflow", ctx));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push_node(Kind::Tuple, items)?;
                }
                b't' | b'l' | b'\x91' | b'd' => {
                    let items = self.pop_mark(ctx)?;
                    let kind = match op {
                        b't' => Kind::Tuple,
                        b'l' => Kind::List,
                        b'\x91' => Kind::FrozenSet,
                        _ => Kind::Dict,
                    };
                    if kind == Kind::Dict && items.len() % 2 != 0 {
                        return Err(malformed("odd number of dict items", ctx));
                    }
                    self.push_node(kind, items)?;
                }
                b'a' => {
                    let item = self.pop(ctx)?;
                    self.fill_top(Kind::List, vec![item], ctx)?;
                }
                b's' => {
                    let value = self.pop(ctx)?;
                    let key = self.pop(ctx)?;
                    self.fill_top(Kind::Dict, vec![key, value], ctx)?;
                }
                b'e' | b'u' | b'\x90' => {
                    let items = self.pop_mark(ctx)?;
                    let kind = match op {
                        b'e' => Kind::List,
                        b'u' => Kind::Dict,
                        _ => Kind::Set,
                    };
                    if kind == Kind::Dict && items.len() % 2 != 0 {
                        return Err(malformed("odd number of dict items", ctx));
                    }
                    self.fill_top(kind, items, ctx)?;
                }
                // Forbidden: noted, then simulated so the walk can tell where the object sits.
                b'\x93' => {
                    let name = self.pop(ctx)?;
                    let module = self.pop(ctx)?;
                    let global = match (self.leaf_str(module), self.leaf_str(name)) {
                        (Some(m), Some(n)) => Some(dotted(m.as_bytes(), n.as_bytes())),
                        _ => None,
                    };
                    self.note_forbidden(ctx, global);
                    self.stack.push(Item::Object);
                }
                _ => {
                    let global = matches!(op, b'c' | b'i').then(|| dotted(arg, arg2));
                    self.note_forbidden(ctx, global);
                    if matches!(op, b'i' | b'o') {
                        self.pop_mark(ctx)?;
                    }
                    let pops = match op {
                        b'R' | b'\x81' | b'b' => 2, // REDUCE, NEWOBJ, BUILD
                        b'\x92' => 3,               // NEWOBJ_EX
                        b'Q' | b'\x98' => 1,        // BINPERSID, READONLY_BUFFER
                        _ => 0,
                    };
                    for _ in 0..pops {
                        self.pop(ctx)?;
                    }
                    self.stack.push(Item::Object);
                }
            }
        }
    }

    /// Reads the argument of an opcode laid out as `layout`; the second slice is the second
    /// line of `GLOBAL`/`INST`.
    fn read_arg(&mut self, layout: Arg, ctx: Ctx) -> Result<(&'a [u8], &'a [u8]), ScanError> {
        Ok(match layout {
            Arg::None => (&[], &[]),
            Arg::Fixed(n) => (self.take(n as u64, ctx)?, &[]),
            Arg::Line => (self.line(ctx)?, &[]),
            Arg::Lines => (self.line(ctx)?, self.line(ctx)?),
            Arg::Counted(n) => {
                let len = le(self.take(n as u64, ctx)?);
                (self.take(len, ctx)?, &[])
            }
            Arg::SignedCounted => {
                let len = le(self.take(4, ctx)?) as u32 as i32;
                let len = u64::try_from(len).map_err(|_| malformed("negative length", ctx))?;
                (self.take(len, ctx)?, &[])
            }
        })
    }

    fn note_forbidden(&mut self, ctx: Ctx, global: Option<String>) {
        if self.forbidden.is_none() {
            self.forbidden = Some(Forbidden {
                opcode: ctx.name,
                global,
                offset: ctx.offset,
                outer_item: None,
            });
        }
    }

    fn tainted(&self, item: Item) -> bool {
        match item {
            Item::Object => true,
            Item::Container(n) => self.nodes.get(n).is_some_and(|n| n.tainted),
            Item::Leaf(_) => false,
        }
    }

    fn leaf_str(&self, item: Item) -> Option<&str> {
        match item {
            Item::Leaf(l) => match self.leaves.get(l) {
                Some(PyValue::String(s)) => Some(s),
                _ => None,
            },
            _ => None,
        }
    }

    /// Items above the innermost open MARK.
    fn frame_len(&self) -> usize {
        self.stack.len() - self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self, ctx: Ctx) -> Result<Item, ScanError> {
        if self.frame_len() == 0 {
            return Err(malformed("stack underflow", ctx));
        }
        self.stack
            .pop()
            .ok_or_else(|| malformed("stack underflow", ctx))
    }

    fn top(&self, ctx: Ctx) -> Result<Item, ScanError> {
        match self.stack.last() {
            Some(item) if self.frame_len() > 0 => Ok(*item),
            _ => Err(malformed("stack underflow", ctx)),
        }
    }

    fn pop_mark(&mut self, ctx: Ctx) -> Result<Vec<Item>, ScanError> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| malformed("no MARK to pop to", ctx))?;
        let items = self.stack.split_off(mark);
        if self.marks.is_empty() {
            // The outermost frame: RQ's (func_name, instance, args, kwargs).
            let first_tainted = items.iter().position(|&item| self.tainted(item));
            if let Some(f) = self.forbidden.as_mut().filter(|f| f.outer_item.is_none()) {
                f.outer_item = first_tainted;
            }
        }
        Ok(items)
    }

    /// `PUT`s the stack top under `id`, or `GET`s the item stored there.
    fn memo_op(&mut self, put: bool, id: u64, ctx: Ctx) -> Result<(), ScanError> {
        self.charge(cost::SLOT)?;
        if put {
            let top = self.top(ctx)?;
            self.memo.insert(id, top);
        } else {
            let item = self
                .memo
                .get(&id)
                .ok_or_else(|| malformed("memo index not set", ctx))?;
            self.stack.push(*item);
        }
        Ok(())
    }

    /// Charges `bytes` to the budget, failing once it is spent.
    fn charge(&mut self, bytes: u64) -> Result<(), ScanError> {
        self.spent = self.spent.saturating_add(bytes);
        if self.spent > self.budget {
            return Err(ScanError::TooLarge {
                stage: "while reading",
                limit: self.budget,
            });
        }
        Ok(())
    }

    fn push_leaf(&mut self, value: PyValue) -> Result<(), ScanError> {
        self.charge(cost::LEAF + leaf_bytes(&value))?;
        self.stack.push(Item::Leaf(self.leaves.len()));
        self.leaves.push(value);
        Ok(())
    }

    fn push_node(&mut self, kind: Kind, items: Vec<Item>) -> Result<(), ScanError> {
        self.charge(cost::NODE + cost::SLOT * items.len() as u64)?;
        let tainted = items.iter().any(|&item| self.tainted(item));
        self.stack.push(Item::Container(self.nodes.len()));
        self.nodes.push(Node {
            kind,
            items,
            tainted,
        });
        Ok(())
    }

    /// `APPEND(S)`, `SETITEM(S)`, `ADDITEMS` on the container at the top of the stack.
    fn fill_top(&mut self, kind: Kind, items: Vec<Item>, ctx: Ctx) -> Result<(), ScanError> {
        self.charge(cost::SLOT * items.len() as u64)?;
        let tainted = items.iter().any(|&item| self.tainted(item));
        let top = self.top(ctx)?;
        let node = match top {
            Item::Container(n) => self.nodes.get_mut(n).filter(|node| node.kind == kind),
            _ => None,
        };
        let Some(node) = node else {
            if self.forbidden.is_some() {
                // e.g. APPENDS on a list subclass instance: keep locating the object.
                return Ok(());
            }
            return Err(malformed("items added to the wrong kind of object", ctx));
        };
        node.items.extend(items);
        node.tainted |= tainted;
        Ok(())
    }

    /// Consumes `n` bytes, checked against the remaining input.
    fn take(&mut self, n: u64, ctx: Ctx) -> Result<&'a [u8], ScanError> {
        let input: &'a [u8] = self.input;
        let rest = input.get(self.pos..).unwrap_or_default();
        if n > rest.len() as u64 {
            return Err(ScanError::Truncated {
                opcode: ctx.name,
                offset: ctx.offset,
            });
        }
        let n = n as usize;
        self.pos += n;
        Ok(rest.get(..n).unwrap_or_default())
    }

    /// A newline-terminated argument, without the newline.
    fn line(&mut self, ctx: Ctx) -> Result<&'a [u8], ScanError> {
        let input: &'a [u8] = self.input;
        let rest = input.get(self.pos..).unwrap_or_default();
        let len = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(ScanError::Truncated {
                opcode: ctx.name,
                offset: ctx.offset,
            })?;
        self.pos += len + 1;
        Ok(rest.get(..len).unwrap_or_default())
    }

    /// Builds the value of `root`, iteratively (the value may be [`MAX_DEPTH`] deep).
    /// [`Machine::run`] has checked depth, size and cycles.
    fn build(&self, root: Item) -> Result<PyValue, ScanError> {
        struct Frame<'n> {
            node: &'n Node,
            next: usize,
            built: Vec<PyValue>,
        }
        let mut frames: Vec<Frame> = Vec::new();
        let mut pending = Some(root);
        let mut finished: Option<PyValue> = None;
        loop {
            match pending.take() {
                Some(Item::Leaf(l)) => finished = self.leaves.get(l).cloned(),
                Some(Item::Container(n)) => {
                    let node = self.nodes.get(n).ok_or(ScanError::Recursive)?;
                    frames.push(Frame {
                        node,
                        next: 0,
                        built: Vec::with_capacity(node.items.len()),
                    });
                }
                Some(Item::Object) => {
                    return Err(ScanError::Malformed {
                        reason: "object in plain data",
                        offset: 0,
                    })
                }
                None => {}
            }
            let Some(frame) = frames.last_mut() else {
                return finished.ok_or(ScanError::Malformed {
                    reason: "empty value",
                    offset: 0,
                });
            };
            if let Some(value) = finished.take() {
                frame.built.push(value);
            }
            if let Some(&item) = frame.node.items.get(frame.next) {
                frame.next += 1;
                pending = Some(item);
                continue;
            }
            if let Some(frame) = frames.pop() {
                finished = Some(assemble(frame.node.kind, frame.built)?);
            }
        }
    }
}

/// A container of `kind` from its built items (a dict's flattened `key, value, ...`).
///
/// Sets are built by inserting item after item, never by collecting: `HashableValue`'s order
/// is not total (NaN compares less than everything, both ways; big ints and floats compare
/// through a truncation), and collecting into a `BTreeSet` sorts the items first, which
/// panics when the sort notices ("does not correctly implement a total order"). A Python set
/// such as `{float('nan'), 1.0, 'x', ...}` did that, depending on its iteration order (found
/// by fuzzing). Insertion never panics; at worst two such items are kept or merged
/// differently than Python would.
fn assemble(kind: Kind, items: Vec<PyValue>) -> Result<PyValue, ScanError> {
    let hashable =
        |what| move |v: PyValue| v.into_hashable().map_err(|_| ScanError::Unhashable(what));
    let set = |items: Vec<PyValue>, what| {
        let mut set = BTreeSet::new();
        for item in items {
            set.insert(hashable(what)(item)?);
        }
        Ok::<_, ScanError>(set)
    };
    Ok(match kind {
        Kind::List => PyValue::List(items),
        Kind::Tuple => PyValue::Tuple(items),
        Kind::Set => PyValue::Set(set(items, "set item")?),
        Kind::FrozenSet => PyValue::FrozenSet(set(items, "frozenset item")?),
        Kind::Dict => {
            let mut map = BTreeMap::new();
            let mut items = items.into_iter();
            while let (Some(key), Some(value)) = (items.next(), items.next()) {
                // Later items win, as in Python.
                map.insert(hashable("dict key")(key)?, value);
            }
            PyValue::Dict(map)
        }
    })
}

fn malformed(reason: &'static str, ctx: Ctx) -> ScanError {
    ScanError::Malformed {
        reason,
        offset: ctx.offset,
    }
}

fn leaf_bytes(value: &PyValue) -> u64 {
    match value {
        PyValue::String(s) => s.len() as u64,
        PyValue::Bytes(b) => b.len() as u64,
        _ => 0,
    }
}

/// Expands every container (iteratively: the arena itself may be deep), refusing cycles and
/// nesting beyond [`MAX_DEPTH`].
fn expand(nodes: &[Node], leaves: &[PyValue]) -> Result<Vec<Expanded>, ScanError> {
    const NEW: u8 = 0;
    const ACTIVE: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![NEW; nodes.len()];
    let mut out = vec![Expanded::default(); nodes.len()];
    let mut path: Vec<(usize, usize)> = Vec::new();
    for start in 0..nodes.len() {
        if state.get(start) != Some(&NEW) {
            continue;
        }
        if let Some(s) = state.get_mut(start) {
            *s = ACTIVE;
        }
        path.push((start, 0));
        while let Some(&mut (node, ref mut next)) = path.last_mut() {
            let items = nodes
                .get(node)
                .map(|n| n.items.as_slice())
                .unwrap_or_default();
            if let Some(&item) = items.get(*next) {
                *next += 1;
                if let Item::Container(child) = item {
                    match state.get(child) {
                        Some(&NEW) => {
                            if let Some(s) = state.get_mut(child) {
                                *s = ACTIVE;
                            }
                            path.push((child, 0));
                        }
                        Some(&ACTIVE) => return Err(ScanError::Recursive),
                        _ => {}
                    }
                }
                continue;
            }
            let mut total = Expanded {
                values: 1,
                bytes: 0,
                depth: 1,
            };
            for &item in items {
                let (values, bytes, depth) = match item {
                    Item::Container(c) => out
                        .get(c)
                        .map_or((0, 0, 0), |e| (e.values, e.bytes, e.depth)),
                    Item::Leaf(l) => (1, leaves.get(l).map_or(0, leaf_bytes), 0),
                    Item::Object => (1, 0, 0),
                };
                total.values = total.values.saturating_add(values);
                total.bytes = total.bytes.saturating_add(bytes);
                total.depth = total.depth.max(depth + 1);
            }
            if total.depth > MAX_DEPTH {
                return Err(ScanError::TooDeep);
            }
            if let (Some(o), Some(s)) = (out.get_mut(node), state.get_mut(node)) {
                *o = total;
                *s = DONE;
            }
            path.pop();
        }
    }
    Ok(out)
}

/// `module.name`, lossily decoded, with control characters replaced and the length capped.
fn dotted(module: &[u8], name: &[u8]) -> String {
    let joined = format!(
        "{}.{}",
        String::from_utf8_lossy(module),
        String::from_utf8_lossy(name)
    );
    let mut out: String = joined
        .chars()
        .take(MAX_NAME_CHARS)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if joined.chars().count() > MAX_NAME_CHARS {
        out.push('…');
    }
    out
}

/// How an opcode's argument is laid out (pickletools' argument descriptors).
#[derive(Debug, Clone, Copy)]
enum Arg {
    None,
    /// `n` bytes.
    Fixed(usize),
    /// Up to a newline, which is consumed.
    Line,
    /// Two lines (`GLOBAL`, `INST`).
    Lines,
    /// An `n`-byte little-endian unsigned length, then that many bytes.
    Counted(usize),
    /// A 4-byte little-endian signed length, then that many bytes.
    SignedCounted,
}

/// The `pickletools` name of an opcode byte, or `None` for a byte that is no opcode.
pub fn opcode_name(op: u8) -> Option<&'static str> {
    opcode(op).map(|(name, _)| name)
}

/// The name and argument layout of an opcode (protocols 0-5).
fn opcode(op: u8) -> Option<(&'static str, Arg)> {
    Some(match op {
        b'(' => ("MARK", Arg::None),
        b'.' => ("STOP", Arg::None),
        b'0' => ("POP", Arg::None),
        b'1' => ("POP_MARK", Arg::None),
        b'2' => ("DUP", Arg::None),
        b'F' => ("FLOAT", Arg::Line),
        b'I' => ("INT", Arg::Line),
        b'J' => ("BININT", Arg::Fixed(4)),
        b'K' => ("BININT1", Arg::Fixed(1)),
        b'L' => ("LONG", Arg::Line),
        b'M' => ("BININT2", Arg::Fixed(2)),
        b'N' => ("NONE", Arg::None),
        b'P' => ("PERSID", Arg::Line),
        b'Q' => ("BINPERSID", Arg::None),
        b'R' => ("REDUCE", Arg::None),
        b'S' => ("STRING", Arg::Line),
        b'T' => ("BINSTRING", Arg::SignedCounted),
        b'U' => ("SHORT_BINSTRING", Arg::Counted(1)),
        b'V' => ("UNICODE", Arg::Line),
        b'X' => ("BINUNICODE", Arg::Counted(4)),
        b'a' => ("APPEND", Arg::None),
        b'b' => ("BUILD", Arg::None),
        b'c' => ("GLOBAL", Arg::Lines),
        b'd' => ("DICT", Arg::None),
        b'}' => ("EMPTY_DICT", Arg::None),
        b'e' => ("APPENDS", Arg::None),
        b'g' => ("GET", Arg::Line),
        b'h' => ("BINGET", Arg::Fixed(1)),
        b'i' => ("INST", Arg::Lines),
        b'j' => ("LONG_BINGET", Arg::Fixed(4)),
        b'l' => ("LIST", Arg::None),
        b']' => ("EMPTY_LIST", Arg::None),
        b'o' => ("OBJ", Arg::None),
        b'p' => ("PUT", Arg::Line),
        b'q' => ("BINPUT", Arg::Fixed(1)),
        b'r' => ("LONG_BINPUT", Arg::Fixed(4)),
        b's' => ("SETITEM", Arg::None),
        b't' => ("TUPLE", Arg::None),
        b')' => ("EMPTY_TUPLE", Arg::None),
        b'u' => ("SETITEMS", Arg::None),
        b'G' => ("BINFLOAT", Arg::Fixed(8)),
        b'\x80' => ("PROTO", Arg::Fixed(1)),
        b'\x81' => ("NEWOBJ", Arg::None),
        b'\x82' => ("EXT1", Arg::Fixed(1)),
        b'\x83' => ("EXT2", Arg::Fixed(2)),
        b'\x84' => ("EXT4", Arg::Fixed(4)),
        b'\x85' => ("TUPLE1", Arg::None),
        b'\x86' => ("TUPLE2", Arg::None),
        b'\x87' => ("TUPLE3", Arg::None),
        b'\x88' => ("NEWTRUE", Arg::None),
        b'\x89' => ("NEWFALSE", Arg::None),
        b'\x8a' => ("LONG1", Arg::Counted(1)),
        b'\x8b' => ("LONG4", Arg::SignedCounted),
        b'B' => ("BINBYTES", Arg::Counted(4)),
        b'C' => ("SHORT_BINBYTES", Arg::Counted(1)),
        b'\x8c' => ("SHORT_BINUNICODE", Arg::Counted(1)),
        b'\x8d' => ("BINUNICODE8", Arg::Counted(8)),
        b'\x8e' => ("BINBYTES8", Arg::Counted(8)),
        b'\x8f' => ("EMPTY_SET", Arg::None),
        b'\x90' => ("ADDITEMS", Arg::None),
        b'\x91' => ("FROZENSET", Arg::None),
        b'\x92' => ("NEWOBJ_EX", Arg::None),
        b'\x93' => ("STACK_GLOBAL", Arg::None),
        b'\x94' => ("MEMOIZE", Arg::None),
        b'\x95' => ("FRAME", Arg::Fixed(8)),
        b'\x96' => ("BYTEARRAY8", Arg::Counted(8)),
        b'\x97' => ("NEXT_BUFFER", Arg::None),
        b'\x98' => ("READONLY_BUFFER", Arg::None),
        _ => return None,
    })
}

/// A little-endian unsigned integer of up to 8 bytes.
fn le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0, |acc, &b| acc << 8 | u64::from(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with Python 3.11 `pickle.dumps(..., protocol=N)`; see each name.
    /// `('jobs.add', None, (2, 3), {})`, protocol 5.
    const JOB5: &[u8] = b"\x80\x05\x95\x18\x00\x00\x00\x00\x00\x00\x00(\x8c\x08jobs.add\x94NK\x02K\x03\x86\x94}\x94t\x94.";
    /// `d = {'a': 1}; [d, d]`, protocol 5 (serde-pickle 1.2 fails on it).
    const SHARED_DICT: &[u8] =
        b"\x80\x05\x95\x10\x00\x00\x00\x00\x00\x00\x00]\x94(}\x94\x8c\x01a\x94K\x01sh\x01e.";
    /// `('f', None, (datetime(2024,1,1), datetime(2024,1,2)), {})`: the second STACK_GLOBAL
    /// takes its operands from the memo.
    const DATETIME_TWICE: &[u8] = b"\x80\x05\x95I\x00\x00\x00\x00\x00\x00\x00(\x8c\x01f\x94N\x8c\x08datetime\x94\x8c\x08datetime\x94\x93\x94C\x0a\x07\xe8\x01\x01\x00\x00\x00\x00\x00\x00\x94\x85\x94R\x94h\x03C\x0a\x07\xe8\x01\x02\x00\x00\x00\x00\x00\x00\x94\x85\x94R\x94\x86\x94}\x94t\x94.";
    /// `('f', None, [1, -5, 2**70, 1.5, 'é\n', True, None, (1,)], {'k': 'v'})`, protocol 0.
    const PROTO0: &[u8] = b"(Vf\x0ap0\x0aN(lp1\x0aI1\x0aaI-5\x0aaL1180591620717411303424L\x0aaF1.5\x0aaV\xe9\x5cu000a\x0ap2\x0aaI01\x0aaNa(I1\x0atp3\x0aa(dp4\x0aVk\x0ap5\x0aVv\x0ap6\x0astp7\x0a.";
    /// `('f', None, [1, 2**70, -2**70, 1.5, 'é', (1, 2, 3, 4)], {'k': [True]})`, protocol 2.
    const PROTO2: &[u8] = b"\x80\x02(X\x01\x00\x00\x00fq\x00N]q\x01(K\x01\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00@\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\xc0G?\xf8\x00\x00\x00\x00\x00\x00X\x02\x00\x00\x00\xc3\xa9q\x02(K\x01K\x02K\x03K\x04tq\x03e}q\x04X\x01\x00\x00\x00kq\x05]q\x06\x88astq\x07.";
    /// `[bytearray(b'ab'), b'cd']`, protocol 5.
    const BYTEARRAY: &[u8] = b"\x80\x05\x95\x16\x00\x00\x00\x00\x00\x00\x00]\x94(\x96\x02\x00\x00\x00\x00\x00\x00\x00ab\x94C\x02cd\x94e.";
    /// `({1, 2}, frozenset({'a'}))`, protocol 5.
    const SETS: &[u8] = b"\x80\x05\x95\x12\x00\x00\x00\x00\x00\x00\x00\x8f\x94(K\x01K\x02\x90(\x8c\x01a\x94\x91\x94\x86\x94.";

    const FUZZ_ROUNDS: usize = 20_000;

    const VALID: &[&[u8]] = &[JOB5, SHARED_DICT, PROTO0, PROTO2, BYTEARRAY, SETS];

    fn s(text: &str) -> PyValue {
        PyValue::String(text.into())
    }

    fn int(digits: &str) -> PyValue {
        serde_pickle::value_from_slice(format!("L{digits}L\n.").as_bytes(), Default::default())
            .unwrap()
    }

    fn forbidden(pickle: &[u8]) -> (String, Option<usize>) {
        match scan(pickle) {
            Err(e @ ScanError::Forbidden { outer_item, .. }) => {
                (e.forbidden_label().unwrap(), outer_item)
            }
            other => panic!("expected a forbidden opcode, got {other:?}"),
        }
    }

    #[test]
    fn decodes_plain_data_like_python() {
        assert_eq!(
            decode(JOB5).unwrap(),
            PyValue::Tuple(vec![
                s("jobs.add"),
                PyValue::None,
                PyValue::Tuple(vec![PyValue::I64(2), PyValue::I64(3)]),
                PyValue::Dict(BTreeMap::new()),
            ])
        );
        let dict = PyValue::Dict(
            [(
                serde_pickle::HashableValue::String("a".into()),
                PyValue::I64(1),
            )]
            .into(),
        );
        assert_eq!(
            decode(SHARED_DICT).unwrap(),
            PyValue::List(vec![dict.clone(), dict])
        );
        assert_eq!(
            decode(BYTEARRAY).unwrap(),
            PyValue::List(vec![
                PyValue::Bytes(b"ab".to_vec()),
                PyValue::Bytes(b"cd".to_vec())
            ])
        );
        let PyValue::Tuple(sets) = decode(SETS).unwrap() else {
            panic!()
        };
        assert_eq!(
            sets[0],
            PyValue::Set([1, 2].map(serde_pickle::HashableValue::I64).into())
        );
        assert_eq!(
            sets[1],
            PyValue::FrozenSet([serde_pickle::HashableValue::String("a".into())].into())
        );
    }

    #[test]
    fn decodes_protocols_0_and_2() {
        let kwargs =
            |v| PyValue::Dict([(serde_pickle::HashableValue::String("k".into()), v)].into());
        assert_eq!(
            decode(PROTO0).unwrap(),
            PyValue::Tuple(vec![
                s("f"),
                PyValue::None,
                PyValue::List(vec![
                    PyValue::I64(1),
                    PyValue::I64(-5),
                    int("1180591620717411303424"),
                    PyValue::F64(1.5),
                    s("é\n"),
                    PyValue::Bool(true),
                    PyValue::None,
                    PyValue::Tuple(vec![PyValue::I64(1)]),
                ]),
                kwargs(s("v")),
            ])
        );
        let four = (1..=4).map(PyValue::I64).collect();
        assert_eq!(
            decode(PROTO2).unwrap(),
            PyValue::Tuple(vec![
                s("f"),
                PyValue::None,
                PyValue::List(vec![
                    PyValue::I64(1),
                    int("1180591620717411303424"),
                    int("-1180591620717411303424"),
                    PyValue::F64(1.5),
                    s("é"),
                    PyValue::Tuple(four),
                ]),
                kwargs(PyValue::List(vec![PyValue::Bool(true)])),
            ])
        );
    }

    #[test]
    fn agrees_with_serde_pickle_where_it_works() {
        for pickle in [JOB5, PROTO0, PROTO2, BYTEARRAY, SETS] {
            let ours = decode(pickle).unwrap();
            let theirs = serde_pickle::value_from_slice(
                pickle,
                serde_pickle::DeOptions::new().decode_strings(),
            )
            .unwrap();
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        for pickle in VALID.iter().chain([&DATETIME_TWICE]) {
            for end in 0..pickle.len() {
                assert!(
                    scan(&pickle[..end]).is_err(),
                    "prefix of {end} bytes accepted"
                );
            }
        }
        assert_eq!(
            scan(b""),
            Err(ScanError::Truncated {
                opcode: "STOP",
                offset: 0
            })
        );
    }

    #[test]
    fn length_fields_are_checked_before_use() {
        let mut huge = b"\x80\x05\x8d".to_vec(); // BINUNICODE8 with a 2**64-1 length
        huge.extend(u64::MAX.to_le_bytes());
        huge.extend(b"abc.");
        assert_eq!(
            scan(&huge),
            Err(ScanError::Truncated {
                opcode: "BINUNICODE8",
                offset: 2
            })
        );
        for op in [b'\x8e', b'\x96'] {
            let mut bytes8 = vec![op];
            bytes8.extend((1u64 << 40).to_le_bytes());
            assert!(matches!(scan(&bytes8), Err(ScanError::Truncated { .. })));
        }
        assert!(matches!(
            scan(b"X\xff\xff\xff\xffab."),
            Err(ScanError::Truncated { .. })
        ));
        assert!(matches!(
            scan(b"T\xff\xff\xff\xffab."),
            Err(ScanError::Malformed { .. })
        ));
        assert!(matches!(
            scan(b"\x8b\x00\x00\x00\x80."),
            Err(ScanError::Malformed { .. })
        ));
        assert!(matches!(
            scan(b"Vno newline"),
            Err(ScanError::Truncated { .. })
        ));
    }

    #[test]
    fn names_globals_even_from_the_memo() {
        assert_eq!(
            forbidden(DATETIME_TWICE),
            ("STACK_GLOBAL datetime.datetime".into(), Some(2))
        );
        // The same module/name pushed through BINGET only.
        let memo_only = b"\x80\x05\x8c\x01m\x94\x8c\x01n\x94h\x00h\x01\x93.";
        assert_eq!(forbidden(memo_only).0, "STACK_GLOBAL m.n");
        assert_eq!(forbidden(b"cdatetime\ndate\n.").0, "GLOBAL datetime.date");
        assert_eq!(forbidden(b"(imod\nCls\n.").0, "INST mod.Cls");
        // STACK_GLOBAL over non-strings still names the opcode.
        assert_eq!(forbidden(b"\x80\x05K\x01K\x02\x93.").0, "STACK_GLOBAL");
        let long_name = [b"c".as_slice(), &[b'x'; 500], b"\n\x01y\n."].concat();
        let (label, _) = forbidden(&long_name);
        assert!(label.len() < 200 && label.ends_with('…'), "{label}");
    }

    #[test]
    fn refuses_every_object_building_opcode() {
        let cases: &[(&[u8], &str)] = &[
            (b"cm\nf\n)R.", "GLOBAL m.f"),
            (b"N)R.", "REDUCE"),
            (b"N)\x81.", "NEWOBJ"),
            (b"N)}\x92.", "NEWOBJ_EX"),
            (b"N}b.", "BUILD"),
            (b"(N)o.", "OBJ"),
            (b"\x82\x01.", "EXT1"),
            (b"\x83\x01\x00.", "EXT2"),
            (b"\x84\x01\x00\x00\x00.", "EXT4"),
            (b"Pid\n.", "PERSID"),
            (b"NQ.", "BINPERSID"),
            (b"\x97.", "NEXT_BUFFER"),
            (b"N\x98.", "READONLY_BUFFER"),
        ];
        for (pickle, label) in cases {
            assert_eq!(&forbidden(pickle).0, label);
        }
        assert_eq!(
            scan(b"\xff."),
            Err(ScanError::UnknownOpcode {
                byte: 0xff,
                offset: 0
            })
        );
        assert_eq!(
            scan(b"\x80\x05\x99."),
            Err(ScanError::UnknownOpcode {
                byte: 0x99,
                offset: 2
            })
        );
        assert_eq!(scan(b"\x80\x06N."), Err(ScanError::UnsupportedProtocol(6)));
    }

    #[test]
    fn locates_the_offending_element_of_the_job_tuple() {
        // (name, <object>, (), {}) — a bound method's instance.
        assert_eq!(forbidden(b"(X\x01\x00\x00\x00fcm\nC\n)\x81)}t.").1, Some(1));
        // (name, None, (), {'k': <object>})
        assert_eq!(
            forbidden(b"(X\x01\x00\x00\x00fN)}X\x01\x00\x00\x00kcm\nC\n)Rst.").1,
            Some(3)
        );
        // Not a MARK-built tuple: no position.
        assert_eq!(forbidden(b"]cm\nC\n)Ra.").1, None);
    }

    #[test]
    fn memo_references_share_until_built() {
        // x = []; memo x; [x, x]; then append 1 through the memo: both copies see it.
        let pickle = b"]\x94(h\x00h\x00l\x94h\x00K\x01a0.";
        // The list pushed last is x itself (after POP of the outer list), so build the outer.
        assert!(scan(pickle).is_ok());
        let outer = b"]\x94(h\x00h\x00l\x94h\x00K\x01a0h\x01.";
        let one = PyValue::List(vec![PyValue::I64(1)]);
        assert_eq!(
            decode(outer).unwrap(),
            PyValue::List(vec![one.clone(), one])
        );
        assert!(matches!(scan(b"h\x05."), Err(ScanError::Malformed { .. })));
    }

    #[test]
    fn refuses_a_lying_frame_length() {
        // FRAME 2**63, and FRAME one byte longer than what follows; Python's unpickler
        // refuses both ("pickle data was truncated" / frame size).
        let mut huge = b"\x80\x05\x95".to_vec();
        huge.extend((1u64 << 63).to_le_bytes());
        huge.extend(b"N.");
        assert!(
            scan(&huge)
                == Err(ScanError::Truncated {
                    opcode: "FRAME",
                    offset: 2
                }),
            "{:?}",
            scan(&huge)
        );
        let mut past = b"\x80\x05\x95".to_vec();
        past.extend(3u64.to_le_bytes());
        past.extend(b"N.");
        assert!(matches!(
            scan(&past),
            Err(ScanError::Truncated {
                opcode: "FRAME",
                ..
            })
        ));
        // An honest frame (the whole rest of the pickle) decodes.
        past[3] = 2;
        assert_eq!(decode(&past), Ok(PyValue::None));
        assert!(decode(JOB5).is_ok());
    }

    #[test]
    fn budget_covers_the_walk_and_the_value() {
        // 100k Nones in a list: about LEAF + SLOT each while walking, VALUE each once built.
        let mut pickle = b"](".to_vec();
        pickle.extend(std::iter::repeat_n(b'N', 100_000));
        pickle.extend(b"e.");
        let walk = 100_000 * (cost::LEAF + cost::SLOT);
        let built = 100_000 * cost::VALUE;
        assert!(decode_within(&pickle, walk + built + 4096).is_ok());
        assert!(matches!(
            decode_within(&pickle, walk / 2),
            Err(ScanError::TooLarge {
                stage: "while reading",
                ..
            })
        ));
        assert!(matches!(
            decode_within(&pickle, walk + built / 2),
            Err(ScanError::TooLarge {
                stage: "once expanded",
                ..
            })
        ));
    }

    #[test]
    fn refuses_self_reference() {
        // l = []; l.append(l)
        assert_eq!(scan(b"]\x94h\x00a."), Err(ScanError::Recursive));
    }

    #[test]
    fn refuses_exponential_expansion() {
        // l0 = ['x' * 8]; l(n+1) = [ln, ln]: 2**40 copies from a few hundred bytes.
        let mut pickle = b"](C\x08abcdefghe\x94".to_vec();
        for _ in 0..40 {
            pickle.extend(b"](h");
            pickle.push((pickle.iter().filter(|&&b| b == 0x94).count() - 1) as u8);
            pickle.push(b'h');
            pickle.push((pickle.iter().filter(|&&b| b == 0x94).count() - 1) as u8);
            pickle.extend(b"e\x94");
        }
        pickle.push(b'.');
        assert!(pickle.len() < 400);
        assert!(
            matches!(scan(&pickle), Err(ScanError::TooLarge { .. })),
            "{:?}",
            scan(&pickle)
        );
    }

    fn nested_lists(depth: usize) -> Vec<u8> {
        let mut pickle = b"]".repeat(depth);
        pickle.extend(b"a".repeat(depth - 1));
        pickle.push(b'.');
        pickle
    }

    #[test]
    fn caps_nesting() {
        assert_eq!(scan(&nested_lists(MAX_DEPTH + 1)), Err(ScanError::TooDeep));
        let mut marks = b"(".repeat(MAX_DEPTH + 1);
        marks.extend(b"N.");
        assert_eq!(scan(&marks), Err(ScanError::TooDeep));
        // The deepest accepted value builds, compares and drops on a small stack.
        let pickle = nested_lists(MAX_DEPTH);
        let handle = std::thread::Builder::new()
            .stack_size(4096 << 10)
            .spawn(move || {
                let value = decode(&pickle).unwrap();
                assert_eq!(value, value.clone());
            })
            .unwrap();
        handle.join().unwrap();
    }

    #[test]
    fn refuses_malformed_streams() {
        assert!(matches!(scan(b"a."), Err(ScanError::Malformed { .. })));
        assert!(matches!(scan(b"NNa."), Err(ScanError::Malformed { .. })));
        assert!(matches!(scan(b"}(Nu."), Err(ScanError::Malformed { .. })));
        assert!(matches!(scan(b"(Nd."), Err(ScanError::Malformed { .. })));
        assert!(matches!(scan(b"e."), Err(ScanError::Malformed { .. })));
        assert!(matches!(scan(b"(."), Err(ScanError::Malformed { .. })));
        assert!(matches!(
            scan(b"X\x02\x00\x00\x00\xff\xfe."),
            Err(ScanError::Malformed { .. })
        ));
        assert_eq!(
            decode(b"\x8f(]\x90."),
            Err(ScanError::Unhashable("set item"))
        );
        assert_eq!(decode(b"}]Ns."), Err(ScanError::Unhashable("dict key")));
    }

    #[test]
    fn never_panics_on_mutated_input() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..FUZZ_ROUNDS {
            let base = VALID[round % VALID.len()];
            let mut bytes = base.to_vec();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() as usize) % bytes.len();
                match next() % 3 {
                    0 => bytes[at] = next() as u8,
                    1 => bytes.insert(at, next() as u8),
                    _ => {
                        bytes.remove(at);
                    }
                }
                if bytes.is_empty() {
                    break;
                }
            }
            let _ = decode(&bytes);
        }
        for _ in 0..FUZZ_ROUNDS {
            let len = (next() % 64) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = decode(&bytes);
        }
    }
}
