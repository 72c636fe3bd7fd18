"""A function only Python has: used to test that rqw forwards jobs it cannot run."""


def double(x):
    return 2 * x
