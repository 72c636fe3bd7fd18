"""Make golden job hashes with real rq, for tests/golden_fixtures.rs.

Run with a pinned rq venv (see README.md):

    .venvs/rq-3.0.0/bin/python python-fixtures/make_fixtures.py

It starts its own redis-server on a free port, enqueues every case below with the default
(pickle) serializer and with rq.serializers.JSONSerializer, and writes one file per case to
python-fixtures/golden/<rq version>/<pickle|json>/<case>.json:

    {"rq_version", "serializer", "case", "call": <the Python call, as text>,
     "job_hash": {<field>: <base64 of the raw bytes>, ...}   # every field of HGETALL
     "expect": {"func_name": str, "args": <tagged>, "kwargs": <tagged>}   # or:
     "expect_error": [<substrings the rqw error must contain>],
     "expect_meta": <tagged>  or  "expect_meta_error": [...]   # when the job has meta

Tagged values are described in tagged.py. The expectation comes from decoding the stored
bytes with rq's own serializer, so it is what a Python worker would see. Cases a serializer
cannot enqueue at all (bytes or datetimes with JSON) are skipped for that serializer.
"""

import datetime
import decimal
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
import base64
import json

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import redis  # noqa: E402
import rq  # noqa: E402
from rq import Queue  # noqa: E402
from rq.serializers import DefaultSerializer, JSONSerializer  # noqa: E402

import fixture_funcs as ff  # noqa: E402
from tagged import tag  # noqa: E402

ECHO = 'rqw.testing.echo'
DT = datetime.datetime(2024, 1, 2, 3, 4, 5, 678901)
SHARED = [1, 2]
SHARED_DICT = {'a': 1}


def enqueue_list_form(q):
    """`enqueue_call(args=[...])`: rq stores args as a list, not a tuple."""
    return q.enqueue_call(ECHO, args=[1, 'two'], kwargs={'k': 'v'})


def enqueue_with_meta(meta):
    def run(q):
        job = q.enqueue(ECHO, 1)
        job.meta.update(meta)
        job.save_meta()
        return job

    return run


# (case, enqueue function, text of the call, expected rejection substrings or None,
#  expected meta rejection substrings or None, serializers)
BOTH = ('pickle', 'json')
PICKLE = ('pickle',)
CASES = [
    ('ints', lambda q: q.enqueue(ECHO, 0, 1, -1, 255, 256, 65535, 65536, -2**31, 2**31 - 1, 2**31,
                                 2**63 - 1, -2**63, 2**63, 2**64, 2**70, -2**100),
     "echo(0, 1, -1, 255, 256, 65535, 65536, -2**31, 2**31-1, 2**31, 2**63-1, -2**63, 2**63, 2**64, 2**70, -2**100)",
     None, None, BOTH),
    ('floats', lambda q: q.enqueue(ECHO, 0.0, -0.0, 1.5, -2.25, 1e16, 1e-05, 0.1, 1e308, 5e-324,
                                   float('nan'), float('inf'), float('-inf')),
     "echo(0.0, -0.0, 1.5, -2.25, 1e16, 1e-05, 0.1, 1e308, 5e-324, nan, inf, -inf)", None, None, BOTH),
    ('strings', lambda q: q.enqueue(ECHO, '', 'ascii', 'ünïcødé', '日本語', '😀 emoji',
                                    'quote" back\\slash\nnl\ttab\x00nul\x7f', 'x' * 300),
     "echo('', 'ascii', 'ünïcødé', '日本語', '😀 emoji', 'quote\" back\\\\slash\\nnl\\ttab\\x00nul\\x7f', 'x'*300)",
     None, None, BOTH),
    ('bytes', lambda q: q.enqueue(ECHO, b'', b'\x00\xff', b'z' * 300, bytearray(b'ab'), bytearray()),
     "echo(b'', b'\\x00\\xff', b'z'*300, bytearray(b'ab'), bytearray())", None, None, PICKLE),
    ('none_bools', lambda q: q.enqueue(ECHO, None, True, False, flag=True, nothing=None),
     "echo(None, True, False, flag=True, nothing=None)", None, None, BOTH),
    ('containers', lambda q: q.enqueue(ECHO, [1, 'a'], (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), [], (), {},
                                       {'a': {'b': {'c': [1, (2, 3)]}}}),
     "echo([1, 'a'], (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), [], (), {}, {'a': {'b': {'c': [1, (2, 3)]}}})",
     None, None, BOTH),
    ('dict_keys', lambda q: q.enqueue(ECHO, {1: 'int', 2.5: 'float', True: 'bool', None: 'none', 'k': 's'}),
     "echo({1: 'int', 2.5: 'float', True: 'bool', None: 'none', 'k': 's'})", None, None, BOTH),
    ('tuple_keys', lambda q: q.enqueue(ECHO, {(1, 'a'): 'tuple key', b'k': 'bytes key', frozenset([1]): 'fs'}),
     "echo({(1, 'a'): 'tuple key', b'k': 'bytes key', frozenset([1]): 'fs'})", None, None, PICKLE),
    ('sets', lambda q: q.enqueue(ECHO, {1, 2, 3}, frozenset({'a', 'b'}), set(), frozenset(), {(1, 2)}),
     "echo({1, 2, 3}, frozenset({'a', 'b'}), set(), frozenset(), {(1, 2)})", None, None, PICKLE),
    ('nested', lambda q: q.enqueue(ECHO, [[[[[[[[[[{'deep': ({'x': [None]},)}]]]]]]]]]]),
     "echo([[[[[[[[[[{'deep': ({'x': [None]},)}]]]]]]]]]])", None, None, BOTH),
    ('shared_refs', lambda q: q.enqueue(ECHO, SHARED, SHARED, [SHARED_DICT, SHARED_DICT], 'k', 'k', key=SHARED),
     "x=[1, 2]; d={'a': 1}; echo(x, x, [d, d], 'k', 'k', key=x)", None, None, BOTH),
    ('kwargs_only', lambda q: q.enqueue(ECHO, a=1, b='two', c=[3], d={'e': (4,)}),
     "echo(a=1, b='two', c=[3], d={'e': (4,)})", None, None, BOTH),
    ('positional_only', lambda q: q.enqueue(ECHO, 1, 2), "echo(1, 2)", None, None, BOTH),
    ('no_args', lambda q: q.enqueue(ECHO), "echo()", None, None, BOTH),
    ('args_list', enqueue_list_form, "q.enqueue_call('rqw.testing.echo', args=[1, 'two'], kwargs={'k': 'v'})",
     None, None, BOTH),
    ('real_function', lambda q: q.enqueue(ff.add, 2, 3), "q.enqueue(fixture_funcs.add, 2, 3)", None, None, BOTH),
    ('static_method', lambda q: q.enqueue(ff.Tools.twice, 4), "q.enqueue(fixture_funcs.Tools.twice, 4)",
     None, None, BOTH),
    ('meta', enqueue_with_meta({'progress': 50, 'tags': ('a', 'b'), 'blob': b'\x01', 'nested': {'n': [None, True]}}),
     "job = echo(1); job.meta.update({'progress': 50, 'tags': ('a', 'b'), 'blob': b'\\x01', "
     "'nested': {'n': [None, True]}}); job.save_meta()", None, None, PICKLE),
    ('meta_json', enqueue_with_meta({'progress': 50, 'tags': ['a', 'b'], 'nested': {'n': [None, True, 1.5]}}),
     "job = echo(1); job.meta.update({'progress': 50, 'tags': ['a', 'b'], 'nested': {'n': [None, True, 1.5]}}); "
     "job.save_meta()", None, None, BOTH),
    ('meta_rejected', enqueue_with_meta({'when': DT}),
     "job = echo(1); job.meta['when'] = datetime.datetime(2024, 1, 2, 3, 4, 5, 678901); job.save_meta()",
     None, ['STACK_GLOBAL datetime.datetime'], PICKLE),
    # Content rqw must refuse, naming what it found.
    ('reject_datetime', lambda q: q.enqueue(ECHO, DT), "echo(datetime.datetime(2024, 1, 2, 3, 4, 5, 678901))",
     ['in args', 'STACK_GLOBAL datetime.datetime'], None, PICKLE),
    ('reject_date_kwarg', lambda q: q.enqueue(ECHO, 1, when=datetime.date(2024, 1, 2)),
     "echo(1, when=datetime.date(2024, 1, 2))", ['in kwargs', 'STACK_GLOBAL datetime.date'], None, PICKLE),
    ('reject_datetime_after_strings', lambda q: q.enqueue(ECHO, 'datetime', 'datetime', [DT]),
     "echo('datetime', 'datetime', [datetime.datetime(...)])  # module/name strings may come from the memo",
     ['in args', 'STACK_GLOBAL datetime.datetime'], None, PICKLE),
    ('reject_decimal', lambda q: q.enqueue(ECHO, decimal.Decimal('1.10')), "echo(decimal.Decimal('1.10'))",
     ['in args', 'STACK_GLOBAL decimal.Decimal'], None, PICKLE),
    ('reject_uuid', lambda q: q.enqueue(ECHO, uuid.UUID('12345678-1234-5678-1234-567812345678')),
     "echo(uuid.UUID('12345678-1234-5678-1234-567812345678'))", ['in args', 'STACK_GLOBAL uuid.UUID'], None,
     PICKLE),
    ('reject_complex', lambda q: q.enqueue(ECHO, complex(1, 2)), "echo(complex(1, 2))",
     ['in args', 'STACK_GLOBAL builtins.complex'], None, PICKLE),
    ('reject_instance', lambda q: q.enqueue(ECHO, ff.Point(1, 2)), "echo(fixture_funcs.Point(1, 2))",
     ['in args', 'STACK_GLOBAL fixture_funcs.Point'], None, PICKLE),
    ('reject_enum', lambda q: q.enqueue(ECHO, color=ff.Color.RED), "echo(color=fixture_funcs.Color.RED)",
     ['in kwargs', 'STACK_GLOBAL fixture_funcs.Color'], None, PICKLE),
    ('reject_bound_method', lambda q: q.enqueue(ff.Counter(10).bump, 1),
     "q.enqueue(fixture_funcs.Counter(10).bump, 1)",
     ['bound method', 'STACK_GLOBAL fixture_funcs.Counter'], None, PICKLE),
    ('reject_callable_instance', lambda q: q.enqueue(ff.Multiplier(3), 4),
     "q.enqueue(fixture_funcs.Multiplier(3), 4)",
     ['callable instance', 'STACK_GLOBAL fixture_funcs.Multiplier'], None, PICKLE),
]

SERIALIZERS = {'pickle': DefaultSerializer, 'json': JSONSerializer}


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start_redis(workdir):
    port = free_port()
    proc = subprocess.Popen(
        ['redis-server', '--port', str(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
         '--dir', workdir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conn = redis.Redis(port=port)
    for _ in range(100):
        try:
            conn.ping()
            return proc, conn
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError('redis-server did not start')


def expectation(serializer, fields, reject, meta_reject):
    out = {}
    if reject:
        out['expect_error'] = reject
    else:
        data = fields[b'data']
        try:
            data = zlib.decompress(data)
        except zlib.error:
            pass
        func_name, instance, args, kwargs = serializer.loads(data)
        assert instance is None, 'an accepted case must not carry an instance'
        out['expect'] = {'func_name': func_name, 'args': tag(args), 'kwargs': tag(kwargs)}
    if b'meta' in fields:
        if meta_reject:
            out['expect_meta_error'] = meta_reject
        else:
            out['expect_meta'] = tag(serializer.loads(fields[b'meta']))
    return out


def render(record):
    """One top-level key (and one job hash field) per line; values compact."""
    def dump(v):
        return json.dumps(v, ensure_ascii=False)

    lines = []
    for key, value in record.items():
        if key == 'job_hash':
            fields = ',\n'.join(f'  {dump(k)}: {dump(v)}' for k, v in value.items())
            lines.append(f' "job_hash": {{\n{fields}\n }}')
        else:
            lines.append(f' {dump(key)}: {dump(value)}')
    return '{\n' + ',\n'.join(lines) + '\n}\n'


def main():
    version = rq.__version__
    root = os.path.join(HERE, 'golden', version)
    shutil.rmtree(root, ignore_errors=True)
    with tempfile.TemporaryDirectory() as workdir:
        proc, conn = start_redis(workdir)
        try:
            written = 0
            for ser_name, serializer in SERIALIZERS.items():
                os.makedirs(os.path.join(root, ser_name))
                q = Queue('fixtures', connection=conn, serializer=serializer)
                for case, run, call, reject, meta_reject, serializers in CASES:
                    if ser_name not in serializers:
                        continue
                    job = run(q)
                    fields = conn.hgetall(f'rq:job:{job.id}')
                    record = {
                        'rq_version': version,
                        'serializer': ser_name,
                        'case': case,
                        'call': call,
                        'job_hash': {k.decode(): base64.b64encode(v).decode() for k, v in sorted(fields.items())},
                    }
                    record.update(expectation(serializer, fields, reject, meta_reject))
                    path = os.path.join(root, ser_name, f'{case}.json')
                    with open(path, 'w') as f:
                        f.write(render(record))
                    written += 1
            print(f'rq {version}: wrote {written} fixtures to {os.path.relpath(root)}')
        finally:
            proc.kill()
            proc.wait()


if __name__ == '__main__':
    main()
