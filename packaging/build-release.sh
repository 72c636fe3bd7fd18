#!/usr/bin/env bash
# The build stage of the Dockerfile, as one script: the release binary, built with the locked
# dependencies, installed as <out>/rqw (default: dist/rqw). CI runs it outside Docker through
# compat-tests/dockerfile-steps.sh, which executes the Dockerfile's own RUN lines.
# Honours CARGO_TARGET_DIR (CI points it at the repo's target/ to reuse earlier builds).
set -euo pipefail
out="${1:-dist}"
cargo build --release --locked --bin rqw
target_dir="${CARGO_TARGET_DIR:-target}"
mkdir -p "$out"
install -m 0755 "$target_dir/release/rqw" "$out/rqw"
"$out/rqw" --version
