#!/usr/bin/env bash
# Benchmarks rqw beside rq's own workers and writes docs/BENCHMARKS.md.
#   benches/run.sh            full run (about 30 minutes on 2 cores)
#   benches/run.sh --quick    smoke run (a few minutes)
# Other options go to benches/bench.py (see --help), e.g. --only ab --reps 5, or --only g
# for the scale-out benchmark alone (--rqw BIN after them measures another build).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
cargo build --release --locked
RQ_VERSIONS="${BENCH_RQ_VERSION:-2.12.0}" bash compat-tests/setup.sh
exec "$repo/.venvs/rq-${BENCH_RQ_VERSION:-2.12.0}/bin/python" benches/bench.py --rqw "$repo/target/release/rqw" "$@"
