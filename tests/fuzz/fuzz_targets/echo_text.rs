#![no_main]
//! cargo-fuzz target: see ../targets.rs (shared with the stable tests/fuzz_smoke.rs).

#[path = "../targets.rs"]
#[allow(dead_code)]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::echo_text(data));
