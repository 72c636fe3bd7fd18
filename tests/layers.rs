//! The house rule, checked: rooms point down only.
//!
//! Every `crate::<room>` a file of `src/` names (in `use` lines, grouped `use crate::{a, b}`,
//! and inline paths) is an arrow from the file's room to that room. [`FORBIDDEN`] lists the
//! arrows the house forbids (the wire protocol is pure; the store knows nothing of the runtime;
//! handlers see only their context; metrics are fed; the edges point one way). A forbidden
//! arrow fails this test unless it is one of [`KNOWN`], the arrows that were there when the
//! check was written and that the house redesign removes; a known arrow that is gone fails
//! the test too, so the list only shrinks.
//!
//! The protocol room is more than a rule here: `src/protocol/` is a crate of its own
//! (`rqw-protocol`), which cannot name rqw at all; [`the_protocol_crate_stays_pure`] keeps its
//! manifest free of rqw and of Redis and async runtime crates.
//!
//! A second check holds the store to its word that every Redis read and write goes through it:
//! a file outside `src/store/` that sends commands itself ([`REDIS_IO`]) fails unless it is one
//! of [`KNOWN_IO`], with the same ratchet, or of [`OWN_IO`], the files that do their own Redis
//! I/O by design, each with its reason.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// (from room, to rooms it must not name, why).
const FORBIDDEN: &[(&str, &[&str], &str)] = &[
    (
        "protocol",
        &[
            "cli", "config", "duties", "error", "handlers", "keys", "logging", "metrics", "ops",
            "store", "run", "worker",
        ],
        "the wire format is pure: it imports nothing else of the crate",
    ),
    (
        "store",
        &[
            "cli", "duties", "handlers", "metrics", "ops", "run", "worker",
        ],
        "the store is RQ's keys and scripts, below the runtime",
    ),
    (
        "handlers",
        &["cli", "duties", "metrics", "ops", "run", "worker"],
        "handlers see only their context",
    ),
    (
        "horses",
        &[
            "cli", "duties", "handlers", "metrics", "ops", "store", "run", "worker",
        ],
        "the Python horses run jobs; the runtime records every outcome and feeds the metrics",
    ),
    (
        "metrics",
        &["cli", "duties", "handlers", "ops", "run", "worker"],
        "metrics are fed; they do not reach into the runtime",
    ),
    (
        "error",
        &[
            "cli", "duties", "handlers", "metrics", "ops", "run", "worker",
        ],
        "the library's errors sit below every room that returns them",
    ),
    (
        "keys",
        &[
            "cli", "config", "duties", "error", "handlers", "metrics", "ops", "store", "run",
            "worker",
        ],
        "key names are pure",
    ),
    (
        "duties",
        &["cli", "ops", "run", "worker"],
        "duties start beside the worker, with a context of their own",
    ),
    (
        "worker",
        &["cli", "duties", "ops", "run"],
        "the worker does not start the duties, nor know the operator commands",
    ),
    (
        "ops",
        &["cli", "duties", "run", "worker"],
        "operator commands read through the store; the command line calls them, not the reverse",
    ),
    (
        "config",
        &[
            "cli", "duties", "handlers", "metrics", "ops", "run", "worker",
        ],
        "validated configuration sits below the command line that fills it",
    ),
    (
        "logging",
        &[
            "cli", "duties", "handlers", "metrics", "ops", "run", "worker",
        ],
        "logging set-up takes plain values",
    ),
    (
        "run",
        &["cli", "ops"],
        "the top-level run wires the worker and the duties; the command line calls it",
    ),
];

/// Forbidden arrows present when this check was written, as (file, room it names). The house
/// redesign (issue 11) removes them; remove an entry here when its arrow is gone.
const KNOWN: &[(&str, &str)] = &[];

/// What sending Redis commands looks like in the source.
const REDIS_IO: &[&str] = &[
    "redis::cmd(",
    "redis::pipe(",
    "redis::Script",
    "Script::new(",
    "query_async",
    "AsyncCommands",
    "AsyncTypedCommands",
    ".subscribe(",
    ".lua\")",
];

/// Files outside the store that did Redis I/O themselves when this check was written. The house
/// redesign (issue 11) moved it into the store; were an entry added, remove it when its file
/// no longer does.
const KNOWN_IO: &[&str] = &[];

/// Files outside the store that do Redis I/O by design, with the reason. Not a ratchet: the
/// reason stands as long as the file does so (a file listed here that no longer does Redis
/// I/O fails the test too, so the list stays true).
const OWN_IO: &[(&str, &str)] = &[(
    "src/handlers/recording/semaphore.rs",
    "the recording download semaphore (rec_slots, rec_inflight, rec_queue, ...) is the \
     recording contract's keys, shared with that Python API (RECORDING_CONTRACT.md), not \
     RQ's: the store is RQ's keys and scripts and knows no handler's business, so the \
     handler keeps its own keys (handlers/recording/keys.rs) and scripts, over the connection \
     its registry is given",
)];

/// The room of a file of `src/`: its first directory, or the file's stem for a top-level file.
fn room_of(relative: &Path) -> String {
    let mut parts = relative.components();
    parts.next(); // "src"
    let first = parts
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    first.strip_suffix(".rs").unwrap_or(&first).to_string()
}

/// The source without comments (line comments and doc comments; `://` inside strings stays).
fn without_comments(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    for line in source.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            out.push('\n');
            continue;
        }
        let code = match line.find(" //") {
            Some(at) => &line[..at],
            None => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every room named after `crate::`, including each top-level member of `crate::{...}`.
fn named_rooms(code: &str) -> BTreeSet<String> {
    let mut rooms = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let preceded_by_ident = rest[..at].chars().next_back().is_some_and(is_ident);
        rest = &rest[at + "crate::".len()..];
        if preceded_by_ident {
            continue; // e.g. `mycrate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut segment_start = true;
            let mut ident = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => segment_start = true,
                    c if depth == 1 && segment_start && is_ident(c) => ident.push(c),
                    _ if depth == 1 && segment_start && !ident.is_empty() => {
                        rooms.insert(std::mem::take(&mut ident));
                        segment_start = false;
                    }
                    _ => {}
                }
            }
            if !ident.is_empty() {
                rooms.insert(ident);
            }
        } else {
            let ident: String = rest.chars().take_while(|c| is_ident(*c)).collect();
            if !ident.is_empty() {
                rooms.insert(ident);
            }
        }
    }
    rooms
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("src/ is readable")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every Rust file of `src/`, as (path relative to the root, source).
fn sources(root: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files
        .into_iter()
        .map(|path| {
            let relative = path.strip_prefix(root).expect("under the root");
            let source = std::fs::read_to_string(&path).expect("a readable source file");
            (relative.to_string_lossy().into_owned(), source)
        })
        .collect()
}

/// Every forbidden arrow in `src/`, as (file, room, why).
fn forbidden_arrows(root: &Path) -> Vec<(String, String, &'static str)> {
    let mut found = Vec::new();
    for (file, source) in sources(root) {
        let from = room_of(Path::new(&file));
        let Some((_, forbidden, why)) = FORBIDDEN.iter().find(|(room, _, _)| *room == from) else {
            continue;
        };
        for to in named_rooms(&without_comments(&source)) {
            if forbidden.contains(&to.as_str()) {
                found.push((file.clone(), to, *why));
            }
        }
    }
    found
}

/// Every file outside `src/store/` that sends Redis commands itself.
fn redis_io_outside_the_store(root: &Path) -> Vec<String> {
    sources(root)
        .into_iter()
        .filter(|(file, _)| !file.starts_with("src/store/"))
        .filter(|(_, source)| {
            let code = without_comments(source);
            REDIS_IO.iter().any(|marker| code.contains(marker))
        })
        .map(|(file, _)| file)
        .collect()
}

#[test]
fn rooms_point_down_only() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let arrows = forbidden_arrows(root);
    let new: Vec<String> = arrows
        .iter()
        .filter(|(file, to, _)| !KNOWN.contains(&(file.as_str(), to.as_str())))
        .map(|(file, to, why)| format!("{file} names crate::{to} ({why})"))
        .collect();
    assert!(new.is_empty(), "forbidden arrows:\n{}", new.join("\n"));
    let gone: Vec<String> = KNOWN
        .iter()
        .filter(|(file, to)| !arrows.iter().any(|(f, t, _)| f == file && t == to))
        .map(|(file, to)| format!("({file:?}, {to:?})"))
        .collect();
    assert!(
        gone.is_empty(),
        "these known arrows are gone: remove them from KNOWN in tests/layers.rs:\n{}",
        gone.join("\n")
    );
}

#[test]
fn redis_io_goes_through_the_store() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let found = redis_io_outside_the_store(root);
    let own = |file: &str| OWN_IO.iter().any(|(f, _)| *f == file);
    let new: Vec<&String> = found
        .iter()
        .filter(|file| !KNOWN_IO.contains(&file.as_str()) && !own(file))
        .collect();
    assert!(
        new.is_empty(),
        "Redis I/O outside src/store/ (put it behind a store function): {new:?}"
    );
    let gone: Vec<&str> = KNOWN_IO
        .iter()
        .copied()
        .chain(OWN_IO.iter().map(|(f, _)| *f))
        .filter(|file| !found.iter().any(|f| f == file))
        .collect();
    assert!(
        gone.is_empty(),
        "these files no longer do Redis I/O: remove them from KNOWN_IO (or OWN_IO) in tests/layers.rs: {gone:?}"
    );
}

/// Crates the protocol crate must not depend on: rqw itself, Redis, the async runtime.
const NOT_FOR_THE_PROTOCOL: &[&str] = &["rqw", "redis", "tokio", "tokio-util", "futures"];

/// The dependencies of a manifest (any `[*dependencies*]` table) that are in
/// [`NOT_FOR_THE_PROTOCOL`].
fn impure_dependencies(manifest: &str) -> Vec<String> {
    let mut section = String::new();
    let mut found = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.to_string();
            continue;
        }
        if !section.contains("dependencies") {
            continue;
        }
        let name: String = line
            .chars()
            .take_while(|c| is_ident(*c) || *c == '-')
            .collect();
        if NOT_FOR_THE_PROTOCOL.contains(&name.as_str()) {
            found.push(name);
        }
    }
    found
}

#[test]
fn the_protocol_crate_stays_pure() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(root.join("src/protocol/Cargo.toml"))
        .expect("src/protocol/ is the rqw-protocol crate");
    let found = impure_dependencies(&manifest);
    assert!(
        found.is_empty(),
        "src/protocol/Cargo.toml depends on {found:?}: the wire format is pure"
    );
    // The check sees a dependency in any dependencies table.
    let impure =
        "[package]\nname = \"x\"\n[dependencies]\nserde = \"1\"\ntokio = { version = \"1\" }\n\
                  [dev-dependencies]\nrqw = { path = \"../..\" }\n";
    assert_eq!(impure_dependencies(impure), ["tokio", "rqw"]);
}

#[test]
fn the_scanner_sees_grouped_inline_and_nested_paths() {
    let code = without_comments(
        "use crate::{store::x, worker::{a, b}, keys};\n\
         // use crate::cli::Nope;\n\
         let y = crate::metrics::global(); // crate::ops in a comment\n\
         let url = \"redis://crate::not_here\";\n\
         use mycrate::duties;\n",
    );
    let rooms: Vec<String> = named_rooms(&code).into_iter().collect();
    // The string's `crate::` is seen (strings are not parsed): the scan errs on the side of
    // reporting, never of missing an arrow.
    assert_eq!(
        rooms,
        ["keys", "metrics", "not_here", "store", "worker"].map(String::from)
    );
}
