//! The decoder's limits: nesting depth, the memory budget and what is charged to it, and the
//! expansion of shared references (a value is charged as built, copies included).

use super::machine::{Item, Node};
use super::UnpickleError;
use crate::value::PyValue;

/// Deepest nesting of containers (and most simultaneously open `MARK`s) accepted.
///
/// `PyValue`'s derived `Clone`, `PartialEq`, `Debug` and `Drop` recurse, as does most code
/// that walks arguments; in a debug build a derived `Clone` of a 1000-deep value needs about
/// 1 MiB of stack (measured), too much on a 2 MiB tokio worker thread next to a handler.
/// 200 keeps every such walk well under 512 KiB; real job arguments nest a few levels
/// (serde_json's own default limit is 128).
pub const MAX_DEPTH: usize = 200;

/// The memory budget of [`super::decode`] and [`super::scan`] (bytes): the walk's own
/// allocations plus the built value. The worker passes its `--max-decoded-bytes` to
/// [`super::decode_within`] instead.
pub const DEFAULT_BUDGET: u64 = 32 << 20;

/// What the decoder charges to its budget, in bytes. The figures are the sizes of the Rust
/// types involved (so they follow the build), doubled where they sit in a growing vector (a
/// `Vec` holds up to twice its length while it grows), plus the str/bytes content: every
/// allocation of the walk is covered by one of these, and so is every node of the built
/// value.
pub mod cost {
    use super::super::machine::{Item, Node};
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

/// The size of a container once shared references are expanded into copies.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Expanded {
    pub(super) values: u64,
    pub(super) bytes: u64,
    depth: usize,
}

/// Expands every container (iteratively: the arena itself may be deep), refusing cycles and
/// nesting beyond [`MAX_DEPTH`].
pub(super) fn expand(nodes: &[Node], leaves: &[PyValue]) -> Result<Vec<Expanded>, UnpickleError> {
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
                        Some(&ACTIVE) => return Err(UnpickleError::Recursive),
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
                    Item::Leaf(l) => (1, leaves.get(l).map_or(0, super::machine::leaf_bytes), 0),
                    Item::Object => (1, 0, 0),
                };
                total.values = total.values.saturating_add(values);
                total.bytes = total.bytes.saturating_add(bytes);
                total.depth = total.depth.max(depth + 1);
            }
            if total.depth > MAX_DEPTH {
                return Err(UnpickleError::TooDeep);
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
