#!/usr/bin/env bash
# Runs the compat suite once per rq version, each in its own venv (<repo>/.venvs/rq-<version>).
#
#   WORKER=rqw|python   worker under test (default rqw: $RQW_BIN, default <repo>/target/debug/rqw)
#   RQ_VERSIONS="..."   versions to run (default "1.16.2 2.0.0 2.12.0 3.0.0")
#   extra arguments go to pytest, e.g.  compat-tests/run.sh -x -k retry
#
# It neither builds rqw nor creates the venvs. Exits non-zero if any version fails.
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
export WORKER="${WORKER:-rqw}"
versions="${RQ_VERSIONS:-1.16.2 2.0.0 2.12.0 3.0.0}"

status=0
summary=()
for v in $versions; do
    py="$repo/.venvs/rq-$v/bin/python"
    if [ ! -x "$py" ]; then
        summary+=("rq $v  WORKER=$WORKER  FAIL: no venv at $py")
        status=1
        continue
    fi
    echo "=== rq $v, WORKER=$WORKER"
    log="$(mktemp)"
    (cd "$repo" && PYTHONDONTWRITEBYTECODE=1 "$py" -m pytest "$here" -q "$@") 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    last="$(grep -E '(passed|failed|error|no tests ran|Exit:)' "$log" | tail -n 1 | sed -E 's/^=+ //; s/ =+$//')"
    rm -f "$log"
    if [ "$rc" -eq 0 ]; then
        summary+=("rq $v  WORKER=$WORKER  PASS  $last")
    else
        summary+=("rq $v  WORKER=$WORKER  FAIL (pytest exit $rc)  $last")
        status=1
    fi
done

echo
echo "=== compat summary"
printf '%s\n' "${summary[@]}"
exit "$status"
