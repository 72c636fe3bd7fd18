"""Real Python callables and classes for make_fixtures.py.

Jobs enqueued with these get their func_name from a real function (`fixture_funcs.add`),
and the classes produce the pickle content rqw must refuse (class instances, enums, bound
methods, callable instances). rqw never imports this module.
"""

import enum


def add(a, b):
    return a + b


def echo(*args, **kwargs):
    return args, kwargs


class Tools:
    @staticmethod
    def twice(x):
        return 2 * x


class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y


class Color(enum.Enum):
    RED = 1
    GREEN = 2


class Counter:
    def __init__(self, start):
        self.start = start

    def bump(self, n):
        return self.start + n


class Multiplier:
    def __init__(self, factor):
        self.factor = factor

    def __call__(self, x):
        return self.factor * x
