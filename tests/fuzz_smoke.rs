//! A stable-toolchain fuzz smoke run: the bodies of the cargo-fuzz targets (`tests/fuzz/targets.rs`,
//! the same file the nightly `cargo fuzz` binaries include) run on every committed seed of
//! `tests/fuzz/corpus/<target>/`, then on random mutations of them for a short time.
//!
//! This is not coverage-guided fuzzing (that is `cargo +nightly fuzz run <target>`, see
//! docs/RELIABILITY.md); it is a deterministic, bounded run that keeps the seeds and the
//! targets' properties checked in every `cargo test`.
//!
//! - `RQW_FUZZ_SMOKE_SECS` (default 2): mutation time per target;
//! - `RQW_FUZZ_SEED` (default fixed): the mutation sequence, printed on failure.
//!
//! An input that fails is written to `target/fuzz-smoke-failures/` and named in the panic.

#[path = "fuzz/targets.rs"]
#[allow(dead_code)]
mod targets;

use std::io::{Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Seeds larger than this run once but are not mutated (a mutated 65 MiB zlib bomb costs
/// seconds per run in a debug build).
const MAX_MUTATED_SEED: usize = 16 * 1024;
/// Largest inflated seed mutated before recompression.
const MAX_INFLATED: u64 = 64 * 1024;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target);
    let mut seeds: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let bytes = std::fs::read(&path).expect("a readable seed");
            (path, bytes)
        })
        .collect();
    seeds.sort();
    assert!(
        seeds.len() >= 20,
        "expected the committed seeds in {}",
        dir.display()
    );
    seeds
}

fn budget() -> Duration {
    let secs = std::env::var("RQW_FUZZ_SMOKE_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(2.0);
    Duration::from_secs_f64(secs)
}

fn seed() -> u64 {
    std::env::var("RQW_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026)
}

const INTERESTING: &[u8] = &[
    0x00, 0x01, 0x02, 0x05, 0x2e, 0x28, 0x4e, 0x5d, 0x65, 0x7f, 0x80, 0x8c, 0x93, 0x94, 0x95, 0xe0,
    0xfe, 0xff,
];

fn mutate(rng: &mut fastrand::Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.usize(1..=4) {
        let len = out.len();
        match rng.u8(0..8) {
            0 if len > 0 => {
                let i = rng.usize(0..len);
                out[i] ^= 1 << rng.u8(0..8);
            }
            1 if len > 0 => {
                let i = rng.usize(0..len);
                out[i] = INTERESTING[rng.usize(0..INTERESTING.len())];
            }
            2 => {
                let i = rng.usize(0..=len);
                let n = rng.usize(1..=8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.u8(..)).collect();
                out.splice(i..i, bytes);
            }
            3 if len > 0 => {
                let i = rng.usize(0..len);
                let j = rng.usize(i..=len.min(i + 16));
                out.drain(i..j);
            }
            4 if len > 0 => {
                out.truncate(rng.usize(0..len));
            }
            5 if len > 0 => {
                let i = rng.usize(0..len);
                let j = rng.usize(i..=len.min(i + 32));
                let copy = out[i..j].to_vec();
                let at = rng.usize(0..=out.len());
                out.splice(at..at, copy);
            }
            6 if !other.is_empty() => {
                let i = rng.usize(0..=len);
                let j = rng.usize(0..other.len());
                let k = rng.usize(j..=other.len().min(j + 64));
                out.splice(i..i, other[j..k].iter().copied());
            }
            _ if len >= 4 => {
                // A length field: overwrite 4 bytes with a big little-endian number.
                let i = rng.usize(0..len - 3);
                let n: u32 = [0x7fff_ffff, 0xffff_ffff, 0x0001_0000, 0x10][rng.usize(0..4)];
                out[i..i + 4].copy_from_slice(&n.to_le_bytes());
            }
            _ => out.push(rng.u8(..)),
        }
    }
    out
}

fn inflate(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(raw)
        .take(MAX_INFLATED + 1)
        .read_to_end(&mut out)
        .ok()?;
    (out.len() as u64 <= MAX_INFLATED).then_some(out)
}

fn deflate(raw: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(raw).expect("writing to a Vec");
    encoder.finish().expect("finishing a Vec")
}

fn run_one(name: &str, target: fn(&[u8]), input: &[u8], origin: &str) {
    if catch_unwind(AssertUnwindSafe(|| target(input))).is_err() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-smoke-failures");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{name}-{:016x}", fxhash(input)));
        let _ = std::fs::write(&path, input);
        panic!(
            "fuzz target {name} failed on an input derived from {origin} (seed {}); saved as {}",
            seed(),
            path.display()
        );
    }
}

fn fxhash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h: u64, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Runs `target` on every seed, then on mutations until the time budget is spent. `zlib`:
/// the seeds are zlib streams; half of the mutations then go to the inflated bytes.
fn smoke(name: &str, target: fn(&[u8]), zlib: bool) {
    let seeds = corpus(name);
    for (path, bytes) in &seeds {
        run_one(name, target, bytes, &path.display().to_string());
    }
    let small: Vec<&(PathBuf, Vec<u8>)> = seeds
        .iter()
        .filter(|(_, b)| b.len() <= MAX_MUTATED_SEED)
        .collect();
    let mut rng = fastrand::Rng::with_seed(seed() ^ fxhash(name.as_bytes()));
    let deadline = Instant::now() + budget();
    let mut runs = 0u64;
    while Instant::now() < deadline {
        let (path, bytes) = small[rng.usize(0..small.len())];
        let other = &small[rng.usize(0..small.len())].1;
        let input = match zlib.then(|| inflate(bytes)).flatten() {
            Some(inflated) if rng.bool() => deflate(&mutate(&mut rng, &inflated, other)),
            _ => mutate(&mut rng, bytes, other),
        };
        run_one(name, target, &input, &path.display().to_string());
        runs += 1;
    }
    eprintln!(
        "fuzz smoke {name}: {} seeds, {runs} mutated inputs",
        seeds.len()
    );
}

#[test]
fn pickle_decode() {
    smoke("pickle_decode", targets::pickle_decode, false);
}

#[test]
fn decode_job_data_pickle() {
    smoke(
        "decode_job_data_pickle",
        targets::decode_job_data_pickle,
        true,
    );
}

#[test]
fn decode_job_data_json() {
    smoke("decode_job_data_json", targets::decode_job_data_json, true);
}

#[test]
fn job_record() {
    smoke("job_record", targets::job_record, false);
}

#[test]
fn echo_text() {
    smoke("echo_text", targets::echo_text, false);
}
