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
