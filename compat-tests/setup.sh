#!/usr/bin/env bash
# Installs what rqw's demo and tests need, idempotently: redis-server (Debian package) when it
# is missing, and one Python venv per pinned rq version under .venvs/rq-<version>.
# Usage: compat-tests/setup.sh            (all pinned versions)
#        RQ_VERSIONS="2.12.0" compat-tests/setup.sh
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
# Oldest to newest; the newest is NEWEST_PINNED_RQ in compat-tests/conftest.py (keep in step).
versions="${RQ_VERSIONS:-1.16.2 2.0.0 2.12.0 3.0.0}"

if ! command -v redis-server >/dev/null 2>&1; then
  echo "setup: installing redis-server (apt)"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is required (install Rust with rustup)" >&2
  exit 1
fi

for v in $versions; do
  venv="$repo/.venvs/rq-$v"
  if ! "$venv/bin/python" -c "import rq, pytest, sys; sys.exit(rq.VERSION != '$v')" >/dev/null 2>&1; then
    echo "setup: creating $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$repo/compat-tests/requirements.txt" "rq==$v"
  fi
done
