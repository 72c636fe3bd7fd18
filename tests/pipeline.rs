//! The job pipeline, checked by structure: the runtime decodes a job's `data` and `meta` in
//! one place, `src/worker/prepare.rs`, called once per job by `worker::execute`. A second call
//! site anywhere in the runtime (as there was when `--python` decoded a native job once to
//! choose its handler and again to run it) fails this test.

use std::path::Path;

/// The decoders of a job's payload (`protocol::payload`), as the runtime calls them.
const DECODERS: &[&str] = &[
    "decode_job_data(",
    "decode_job_data_within(",
    "decode_meta_within(",
];

fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("read src dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("read source");
            out.push((path.display().to_string(), text));
        }
    }
}

#[test]
fn the_runtime_decodes_a_job_in_prepare_only_and_once() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src/worker"), &mut files);
    sources(&root.join("src/duties"), &mut files);
    let mut calls = Vec::new();
    for (path, text) in &files {
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or_default();
            for decoder in DECODERS {
                if code.contains(decoder) {
                    calls.push((path.clone(), *decoder));
                }
            }
        }
    }
    let prepare: Vec<_> = calls
        .iter()
        .filter(|(p, _)| p.ends_with("worker/prepare.rs"))
        .collect();
    let elsewhere: Vec<_> = calls
        .iter()
        .filter(|(p, _)| !p.ends_with("worker/prepare.rs"))
        .collect();
    assert!(
        elsewhere.is_empty(),
        "job payload decoded outside worker/prepare.rs: {elsewhere:?}"
    );
    for decoder in ["decode_job_data_within(", "decode_meta_within("] {
        let n = prepare.iter().filter(|(_, d)| *d == decoder).count();
        assert_eq!(n, 1, "{decoder} called {n} times in worker/prepare.rs");
    }
    let execute = std::fs::read_to_string(root.join("src/worker/execute.rs")).expect("execute.rs");
    assert_eq!(
        execute.matches("prepare(ctx").count(),
        1,
        "worker/execute.rs prepares a job once"
    );
}
