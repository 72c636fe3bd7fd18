#!/usr/bin/env bash
# The whole test suite: formatting, lints, Rust unit and integration tests, then the
# compatibility tests, in which real rq (each pinned version) enqueues and inspects while the
# rqw binary works, against a redis-server the tests start themselves.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
versions="${RQ_VERSIONS:-1.16.2 2.0.0 2.12.0 3.0.0}"

RQ_VERSIONS="$versions" compat-tests/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
echo "== cargo test"
cargo test --locked
echo "== cargo build (binary for the compatibility tests)"
cargo build --locked
export RQW_BIN="$repo/target/debug/rqw"

failed=0
passed_total=0
# The Dockerfile's build stage, replayed without Docker, plus hadolint (a release build:
# minutes on a cold target/). RQW_SKIP_DOCKERFILE_STEPS=1 skips it in local runs.
if [ "${RQW_SKIP_DOCKERFILE_STEPS:-0}" != "1" ]; then
  if ! compat-tests/dockerfile-steps.sh; then
    echo "dockerfile-steps FAILED"
    failed=1
  fi
fi

for v in $versions; do
  echo "== compat-tests with rq $v"
  if ! "$repo/.venvs/rq-$v/bin/python" -m pytest "$repo/compat-tests" -q -p no:cacheprovider; then
    echo "compat-tests FAILED with rq $v"
    failed=1
  fi
done

exit $failed
