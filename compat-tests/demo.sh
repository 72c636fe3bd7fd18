#!/usr/bin/env bash
# Demo: a real job flowing from Python rq through rqw and back.
# Starts its own redis-server (and a local fake Twilio), enqueues jobs with rq 2.12.0 exactly
# as the Python API does, runs the rqw binary in burst mode, and prints what Python sees.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
echo "== demo: preparing (first run: installs redis-server if missing and a Python venv with rq," \
  "then builds rqw; a few minutes on a fresh machine, seconds afterwards)"
RQ_VERSIONS="${DEMO_RQ_VERSION:-2.12.0}" compat-tests/setup.sh
echo "== demo: building rqw (cargo build)"
cargo build --locked --quiet
exec "$repo/.venvs/rq-${DEMO_RQ_VERSION:-2.12.0}/bin/python" "$repo/compat-tests/demo.py" "$repo/target/debug/rqw"
