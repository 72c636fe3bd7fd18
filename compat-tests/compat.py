"""Shared helpers of the compat suite: which worker and rq version run, deadlines, rq CLI.

Imported by the tests as `from compat import ...` (pytest puts this directory on sys.path,
because conftest.py lives here and there is no __init__.py).
"""

import datetime as dt
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import rq

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PYMOD = HERE / "pymod"

#: `rqw` (default): the binary under test; `python`: the real `rq worker` of this venv.
WORKER_KIND = os.environ.get("WORKER", "rqw").strip().lower()
if WORKER_KIND not in ("rqw", "python"):
    raise RuntimeError(f"WORKER must be 'rqw' or 'python', not {WORKER_KIND!r}")

RQW_BIN = Path(os.environ.get("RQW_BIN", str(REPO / "target" / "debug" / "rqw")))


def version_tuple(text):
    return tuple(int(part) for part in text.split(".")[:3])


RQ_VERSION = version_tuple(rq.__version__)

# Function paths of the diagnostic handlers (native in rqw, pymod/rqw/testing.py in Python).
NOOP = "rqw.testing.noop"
ECHO = "rqw.testing.echo"
FAIL = "rqw.testing.fail"
SLEEP = "rqw.testing.sleep"
PANIC = "rqw.testing.panic"

DEFAULT_FAILURE_TTL = 31536000  # rq/defaults.py
DEFAULT_RESULT_TTL = 500


def free_port():
    """A free TCP port on loopback, never the machine's own Redis port (6379)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port != 6379:
            return port


def wait_for(predicate, timeout=10.0, interval=0.05, message="condition"):
    """Polls `predicate` until it returns a truthy value (returned) or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message} (last value: {value!r})")
        time.sleep(interval)


def last_line(text):
    """The last non-empty line of an exception text: `<ExcType>: <message>` for a traceback."""
    assert text, f"expected an exception text, got {text!r}"
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, f"exception text has no non-empty line: {text!r}"
    return lines[-1].strip()


def utc(value):
    """rq 2.0.0 returns naive UTC datetimes, 2.12+ aware ones: make them comparable."""
    assert value is not None, "expected a datetime, got None"
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value


def now_utc():
    return dt.datetime.now(dt.timezone.utc)


def started_ids(registry):
    """Job ids in a StartedJobRegistry. 2.0.0 returns the raw `<id>:<execution>` members."""
    return [member.split(":")[0] for member in registry.get_job_ids()]


def rq_cli(url, *args, timeout=60):
    """Runs this venv's `rq` command (e.g. `info`, `requeue`) against `url`."""
    script = Path(sys.executable).with_name("rq")
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "rq.cli"]
    argv += [*args, "--url", url]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(PYMOD), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    print(f"$ {' '.join(argv)}\n[exit {proc.returncode}]\n{proc.stdout}\n{proc.stderr}")
    return proc


def strict_diff(expected, actual, path="value"):
    """Like ==, but also compares types (so 1 != True != 1.0 and tuple != list).

    Returns a description of the first difference, or None when they are identical.
    """
    if type(expected) is not type(actual):
        return f"{path}: expected {type(expected).__name__} {expected!r}, got {type(actual).__name__} {actual!r}"
    if isinstance(expected, (list, tuple)):
        if len(expected) != len(actual):
            return f"{path}: expected length {len(expected)}, got {len(actual)}: {actual!r}"
        for i, (e, a) in enumerate(zip(expected, actual)):
            diff = strict_diff(e, a, f"{path}[{i}]")
            if diff:
                return diff
        return None
    if isinstance(expected, dict):
        if set(expected) != set(actual) or any(type(k) is not type(k2) for k, k2 in zip(sorted(expected, key=repr), sorted(actual, key=repr))):
            return f"{path}: expected keys {sorted(expected, key=repr)!r}, got {sorted(actual, key=repr)!r}"
        for key in expected:
            diff = strict_diff(expected[key], actual[key], f"{path}[{key!r}]")
            if diff:
                return diff
        return None
    if isinstance(expected, float) and expected != expected:
        return None if actual != actual else f"{path}: expected nan, got {actual!r}"
    if expected != actual:
        return f"{path}: expected {expected!r}, got {actual!r}"
    return None
