"""The tagged JSON description of Python values used by the golden fixtures.

    None -> null                 True/False -> true/false
    int -> {"int": "<decimal>"}  float -> {"float": "<repr(x)>"}  ("nan", "inf", "-inf")
    str -> {"str": "..."}        bytes -> {"bytes": "<base64>"}  bytearray -> {"bytearray": "<base64>"}
    list -> {"list": [...]}      tuple -> {"tuple": [...]}
    set -> {"set": [...]}        frozenset -> {"frozenset": [...]}  (elements sorted by canon())
    dict -> {"dict": [[key, value], ...]}  (pairs sorted by canon(key))

Types are exact: a bool is never an int, a tuple never a list. tests/golden_fixtures.rs reads
the same format.
"""

import base64
import json


def canon(tagged):
    """A stable sort key for a tagged value."""
    return json.dumps(tagged, sort_keys=True, separators=(',', ':'))


def tag(v):
    t = type(v)
    if v is None or t is bool:
        return v
    if t is int:
        return {'int': str(v)}
    if t is float:
        return {'float': repr(v)}
    if t is str:
        return {'str': v}
    if t is bytes:
        return {'bytes': base64.b64encode(v).decode()}
    if t is bytearray:
        return {'bytearray': base64.b64encode(bytes(v)).decode()}
    if t is list:
        return {'list': [tag(x) for x in v]}
    if t is tuple:
        return {'tuple': [tag(x) for x in v]}
    if t is set:
        return {'set': sorted((tag(x) for x in v), key=canon)}
    if t is frozenset:
        return {'frozenset': sorted((tag(x) for x in v), key=canon)}
    if t is dict:
        return {'dict': sorted(([tag(k), tag(x)] for k, x in v.items()), key=lambda p: canon(p[0]))}
    raise TypeError(f'no tagged form for {t.__name__}')


def untag(d):
    if d is None or isinstance(d, bool):
        return d
    ((kind, body),) = d.items()
    if kind == 'int':
        return int(body)
    if kind == 'float':
        return float(body)
    if kind == 'str':
        return body
    if kind == 'bytes':
        return base64.b64decode(body)
    if kind == 'bytearray':
        return bytearray(base64.b64decode(body))
    if kind == 'list':
        return [untag(x) for x in body]
    if kind == 'tuple':
        return tuple(untag(x) for x in body)
    if kind == 'set':
        return {untag(x) for x in body}
    if kind == 'frozenset':
        return frozenset(untag(x) for x in body)
    if kind == 'dict':
        return {untag(k): untag(v) for k, v in body}
    raise ValueError(f'unknown tag {kind}')
