//! The walk: a simulated unpickler over an arena of leaves (scalars) and nodes (containers),
//! so shared references stay shared until the value is built; then the build, iteratively.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::limits::{cost, expand, MAX_DEPTH, MAX_PROTOCOL};
use super::opcodes::{le, opcode, Arg};
use super::UnpickleError;
use crate::value::{int_from_decimal, int_value, BigInt, PyValue};

/// Longest `module.name` quoted in an error message.
const MAX_NAME_CHARS: usize = 120;

/// A value on the simulated stack, in the memo or in a container.
#[derive(Debug, Clone, Copy)]
pub(super) enum Item {
    /// A scalar: index into `Machine::leaves`.
    Leaf(usize),
    /// A container: index into `Machine::nodes`. Shared, like a Python reference.
    Container(usize),
    /// The result of a forbidden opcode (only simulated to locate it, never built).
    Object,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    List,
    Tuple,
    Dict,
    Set,
    FrozenSet,
}

/// A container; a dict's items are flattened `key, value, key, value`.
#[derive(Debug)]
pub(super) struct Node {
    kind: Kind,
    pub(super) items: Vec<Item>,
    /// Holds (directly or below) the result of a forbidden opcode.
    tainted: bool,
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

pub(super) struct Machine<'a> {
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
    pub(super) fn run(input: &'a [u8], budget: u64) -> Result<(Self, Item), UnpickleError> {
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
            return Err(UnpickleError::Forbidden {
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
            return Err(UnpickleError::TooLarge {
                stage: "once expanded",
                limit: machine.budget,
            });
        }
        Ok((machine, root))
    }

    /// Walks the opcodes up to `STOP` and returns the item it would return.
    fn walk(&mut self) -> Result<Item, UnpickleError> {
        loop {
            let offset = self.pos;
            let Some(&op) = self.input.get(offset) else {
                return Err(UnpickleError::Truncated {
                    opcode: "STOP",
                    offset,
                });
            };
            self.pos += 1;
            let (name, layout) =
                opcode(op).ok_or(UnpickleError::UnknownOpcode { byte: op, offset })?;
            let ctx = Ctx { name, offset };
            let (arg, arg2) = self.read_arg(layout, ctx)?;
            match op {
                b'\x80' if le(arg) > u64::from(MAX_PROTOCOL) => {
                    return Err(UnpickleError::UnsupportedProtocol(
                        arg.first().copied().unwrap_or(0),
                    ))
                }
                // A FRAME announces the bytes that follow; Python's unpickler reads them ahead
                // and refuses a length the input does not have (2**63 included).
                b'\x95' if le(arg) > (self.input.len() - self.pos) as u64 => {
                    return Err(UnpickleError::Truncated {
                        opcode: name,
                        offset,
                    })
                }
                b'\x80' | b'\x95' => {} // PROTO, FRAME
                b'.' => return self.pop(ctx),
                b'(' if self.marks.len() >= MAX_DEPTH => return Err(UnpickleError::TooDeep),
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
                // Longer LONG1/LONG4: little-endian two's complement of any size.
                b'\x8a' | b'\x8b' => {
                    self.push_leaf(int_value(BigInt::from_signed_bytes_le(arg)))?;
                }
                // LONG (protocols 0-1): decimal digits and an `L` suffix, read as serde-pickle
                // reads them (a `\r` before the newline and the suffix are dropped).
                b'L' => {
                    let line = arg.strip_suffix(b"\r").unwrap_or(arg);
                    let digits = line.strip_suffix(b"L").unwrap_or(line);
                    let value = int_from_decimal(digits)
                        .ok_or_else(|| malformed("invalid literal", ctx))?;
                    self.push_leaf(value)?;
                }
                // The other text forms of protocols 0-1 (INT, which also spells booleans,
                // FLOAT, STRING, UNICODE...): decoded by serde-pickle from a one-opcode pickle.
                b'I' | b'F' | b'S' | b'V' | b'U' | b'T' => {
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
    fn read_arg(&mut self, layout: Arg, ctx: Ctx) -> Result<(&'a [u8], &'a [u8]), UnpickleError> {
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

    fn pop(&mut self, ctx: Ctx) -> Result<Item, UnpickleError> {
        if self.frame_len() == 0 {
            return Err(malformed("stack underflow", ctx));
        }
        self.stack
            .pop()
            .ok_or_else(|| malformed("stack underflow", ctx))
    }

    fn top(&self, ctx: Ctx) -> Result<Item, UnpickleError> {
        match self.stack.last() {
            Some(item) if self.frame_len() > 0 => Ok(*item),
            _ => Err(malformed("stack underflow", ctx)),
        }
    }

    fn pop_mark(&mut self, ctx: Ctx) -> Result<Vec<Item>, UnpickleError> {
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
    fn memo_op(&mut self, put: bool, id: u64, ctx: Ctx) -> Result<(), UnpickleError> {
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
    fn charge(&mut self, bytes: u64) -> Result<(), UnpickleError> {
        self.spent = self.spent.saturating_add(bytes);
        if self.spent > self.budget {
            return Err(UnpickleError::TooLarge {
                stage: "while reading",
                limit: self.budget,
            });
        }
        Ok(())
    }

    fn push_leaf(&mut self, value: PyValue) -> Result<(), UnpickleError> {
        self.charge(cost::LEAF + leaf_bytes(&value))?;
        self.stack.push(Item::Leaf(self.leaves.len()));
        self.leaves.push(value);
        Ok(())
    }

    fn push_node(&mut self, kind: Kind, items: Vec<Item>) -> Result<(), UnpickleError> {
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
    fn fill_top(&mut self, kind: Kind, items: Vec<Item>, ctx: Ctx) -> Result<(), UnpickleError> {
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
    fn take(&mut self, n: u64, ctx: Ctx) -> Result<&'a [u8], UnpickleError> {
        let input: &'a [u8] = self.input;
        let rest = input.get(self.pos..).unwrap_or_default();
        if n > rest.len() as u64 {
            return Err(UnpickleError::Truncated {
                opcode: ctx.name,
                offset: ctx.offset,
            });
        }
        let n = n as usize;
        self.pos += n;
        Ok(rest.get(..n).unwrap_or_default())
    }

    /// A newline-terminated argument, without the newline.
    fn line(&mut self, ctx: Ctx) -> Result<&'a [u8], UnpickleError> {
        let input: &'a [u8] = self.input;
        let rest = input.get(self.pos..).unwrap_or_default();
        let len = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(UnpickleError::Truncated {
                opcode: ctx.name,
                offset: ctx.offset,
            })?;
        self.pos += len + 1;
        Ok(rest.get(..len).unwrap_or_default())
    }

    /// Builds the value of `root`, iteratively (the value may be [`MAX_DEPTH`] deep).
    /// [`Machine::run`] has checked depth, size and cycles.
    pub(super) fn build(&self, root: Item) -> Result<PyValue, UnpickleError> {
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
                    let node = self.nodes.get(n).ok_or(UnpickleError::Recursive)?;
                    frames.push(Frame {
                        node,
                        next: 0,
                        built: Vec::with_capacity(node.items.len()),
                    });
                }
                Some(Item::Object) => {
                    return Err(UnpickleError::Malformed {
                        reason: "object in plain data",
                        offset: 0,
                    })
                }
                None => {}
            }
            let Some(frame) = frames.last_mut() else {
                return finished.ok_or(UnpickleError::Malformed {
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
fn assemble(kind: Kind, items: Vec<PyValue>) -> Result<PyValue, UnpickleError> {
    let hashable = |what| {
        move |v: PyValue| {
            v.into_hashable()
                .map_err(|_| UnpickleError::Unhashable(what))
        }
    };
    let set = |items: Vec<PyValue>, what| {
        let mut set = BTreeSet::new();
        for item in items {
            set.insert(hashable(what)(item)?);
        }
        Ok::<_, UnpickleError>(set)
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

fn malformed(reason: &'static str, ctx: Ctx) -> UnpickleError {
    UnpickleError::Malformed {
        reason,
        offset: ctx.offset,
    }
}

pub(super) fn leaf_bytes(value: &PyValue) -> u64 {
    match value {
        PyValue::String(s) => s.len() as u64,
        PyValue::Bytes(b) => b.len() as u64,
        _ => 0,
    }
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
