"""Python job functions of benches/python_horses.py (no native handler in rqw)."""


def noop():
    return None
