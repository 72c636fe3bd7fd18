"""Python twins of rqw's `--enable-testing-handlers` handlers (src/handlers/testing.rs)."""

import time

from rqw.errors import HandlerPanic


def noop():
    return None


def echo(*args, **kwargs):
    return {"args": list(args), "kwargs": kwargs}


def fail(message="rqw.testing.fail was asked to fail"):
    raise RuntimeError(message)


def sleep(seconds=0):
    time.sleep(seconds)
    return seconds


def panic():
    raise HandlerPanic("handler panicked: rqw.testing.panic was asked to panic")


def callback_log(job, connection, *args, **kwargs):
    """Callback twin of rqw's native `rqw.testing.callback_log`: records that it ran."""
    print(f"rqw.testing.callback_log: callback for job {job.id}")


def callback_fail(job, connection, *args, **kwargs):
    """Callback twin of rqw's native `rqw.testing.callback_fail`."""
    raise RuntimeError("callback failed")
