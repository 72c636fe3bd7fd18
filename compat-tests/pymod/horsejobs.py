"""Job functions that only exist in Python: rqw runs them in its Python horses (--python).

Used by compat-tests/test_python_horses.py; every function is plain app code, as a user's
`server.jobs.*` module would be.
"""

import asyncio
import datetime
import decimal
import os
import sys
import time

from rq import get_current_job


class Money:
    """A custom class returned to Python intact (pickle only)."""

    def __init__(self, amount, currency):
        self.amount = amount
        self.currency = currency

    def __eq__(self, other):
        return isinstance(other, Money) and (self.amount, self.currency) == (other.amount, other.currency)

    def __repr__(self):
        return f"Money({self.amount!r}, {self.currency!r})"


def add(a, b, *, scale=1):
    return (a + b) * scale


def rich_values():
    return {
        "when": datetime.datetime(2026, 12, 1, 12, 30, 5, 123456, tzinfo=datetime.timezone.utc),
        "price": decimal.Decimal("19.99"),
        "money": Money(decimal.Decimal("5.00"), "EUR"),
    }


def uses_current_job(step):
    job = get_current_job()
    job.meta["step"] = step
    job.meta["pid"] = os.getpid()
    job.save_meta()
    return job.id


async def async_add(a, b):
    await asyncio.sleep(0.01)
    return a + b


def raises(message):
    raise ValueError(message)  # the traceback names this line


def sleep(seconds):
    time.sleep(seconds)
    return seconds


def pid():
    return os.getpid()


def chatty(text):
    print(f"stdout says {text}")
    sys.stdout.flush()
    os.write(1, f"fd1 says {text}\n".encode())
    print(f"stderr says {text}", file=sys.stderr)
    return text


def segfault():
    import ctypes

    ctypes.string_at(0)


def exit_now(code):
    os._exit(code)


_LEAK = []


def leak(megabytes):
    _LEAK.append(b"x" * (megabytes * 1024 * 1024))  # every page written: resident
    return os.getpid()


def fail_until(key, attempts):
    """Fails until it ran `attempts` times (counted in Redis by the job's own connection)."""
    job = get_current_job()
    count = job.connection.incr(key)
    if count < attempts:
        raise RuntimeError(f"attempt {count}")
    return count


def on_failure_raises(job, connection, exc_type, exc_value, tb):
    raise KeyError("the failure callback broke")


def on_success_records(job, connection, result):
    connection.set(f"cb:success:{job.id}", repr(result))


def on_failure_records(job, connection, exc_type, exc_value, tb):
    connection.set(f"cb:failure:{job.id}", f"{exc_type.__name__}: {exc_value}")


def on_stopped_records(job, connection):
    connection.set(f"cb:stopped:{job.id}", "1")


_APP = {"ready": False}


def setup_app():
    """A --python-setup hook: builds the 'app' once, returns a per-job context factory."""
    import contextlib

    print("Flask app initialized", file=sys.stderr)
    _APP["ready"] = True

    @contextlib.contextmanager
    def app_context():
        _APP["in_context"] = True
        try:
            yield
        finally:
            _APP["in_context"] = False

    return app_context


def in_app_context():
    return {"ready": _APP["ready"], "in_context": _APP.get("in_context", False)}


def setup_fails():
    raise RuntimeError("setup exploded")


def echo(value):
    return value


def sleep_with_pid(seconds):
    job = get_current_job()
    job.meta["pid"] = os.getpid()
    job.save_meta()
    time.sleep(seconds)


def horse_environ():
    return sorted(k for k in os.environ if k.startswith("RQW_HORSE"))
