"""Check that the return-value bytes rqw writes load in real Python as the same objects.

python-fixtures/return_values.json lists values (tagged, see tagged.py) with the bytes
`rqw::protocol::payload::encode_return_value` produced for them (base64): `pickle` and `json`
(`null` when rqw refuses to write the value as JSON, e.g. bytes). tests/golden_fixtures.rs
checks that rqw still produces exactly these bytes; this script checks that Python reads them:

- pickle: `pickle.loads(bytes)` is the value, types included (tuple vs list, set, bytes, int);
- json: the bytes are exactly `json.dumps(value).encode()`, with sets written as sorted lists
  (Python's json.dumps refuses sets; rqw writes them as arrays, see src/protocol/json_value.rs);
  where rqw refuses (`null`), `json.dumps` must refuse too.

Usage (from the crate root):
    .venvs/rq-3.0.0/bin/python python-fixtures/check_return_values.py          # verify
    .venvs/rq-3.0.0/bin/python python-fixtures/check_return_values.py --init   # rewrite values
    RQW_UPDATE_RETURN_VALUES=1 cargo test --test golden_fixtures return_values  # refill bytes
"""

import base64
import json
import os
import pickle
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from tagged import tag, untag  # noqa: E402

PATH = os.path.join(HERE, 'return_values.json')

VALUES = {
    'none': None,
    'true': True,
    'false': False,
    'int_zero': 0,
    'int_negative': -1,
    'int_2_31': 2**31,
    'int_i64_max': 2**63 - 1,
    'int_i64_min': -2**63,
    'int_2_64': 2**64,
    'int_2_70': 2**70,
    'int_negative_big': -2**100,
    'float': 1.5,
    'float_negative_zero': -0.0,
    'float_1e16': 1e16,
    'float_1e15': 1e15,
    'float_small': 1e-05,
    'float_0001': 0.0001,
    'float_tenth': 0.1,
    'float_long': 123456789.123456789,
    'float_max': 1.7976931348623157e308,
    'float_subnormal': 5e-324,
    'float_nan': float('nan'),
    'float_inf': float('inf'),
    'float_negative_inf': float('-inf'),
    'str_empty': '',
    'str_unicode': 'ünï 日本 😀',
    'str_escapes': 'quote" back\\ nl\n tab\t nul\x00 del\x7f bell\x07',
    'bytes': b'\x00\xff abc',
    'bytes_in_list': [1, b'x'],
    'list': [1, 'a', None, 2.5],
    'tuple': (1, 2),
    'tuple_empty': (),
    'list_of_tuples': [(1, 'a'), (2, 'b')],
    'dict': {'a': 1},
    'dict_int_keys': {1: 'a', 2: 'b'},
    'dict_tuple_key': {(1, 2): 'x'},
    'nested': {'a': [1, {'b': (2.5, [None, True])}]},
    'set': {1, 2, 3},
    'frozenset': frozenset({'a'}),
    'set_empty': set(),
    # JSON writer cases (serde_json with rqw's formatter): every escape, the BMP edge and
    # beyond, non-finite floats and big integers inside containers, float reprs, key forms.
    'str_controls': '\x01\x08\x09\x0a\x0b\x0c\x0d\x1f "\\/ ~',
    'str_astral': 'a\u0080\u07ff\u0800\uffff\U00010000\U0010ffff\U0001d11e z',
    'list_tokens': [float('nan'), float('inf'), float('-inf'), 2**70, -2**200, 2**63, -2**63 - 1],
    'list_float_reprs': [0.1 + 0.2, 1e16, 1e22, 1e-7, 123456789012345680.0, -0.0, 5e-324, 2.5e-5],
    'dict_key_forms': [{None: 1}, {True: 2}, {False: 3}, {1.5: 4}, {-7: 5}, {2**70: 6},
                       {float('inf'): 7}, {float('-inf'): 8}, {float('nan'): 9}, {'é': 10}],
    'nested_empties': [[], {}, [[]], {'a': {}}, (), [(), {}]],
    'set_of_tuples': {(1, 'a', (2.5, None))},
    'dict_nested_tokens': {'big': [2**64, {'nan': float('nan')}], 'x': 'é'},
    'dict_frozenset_key': {frozenset({1}): 'x'},
    'dict_bytes_in_value': {'k': [1, {'b': b'x'}]},
}


def jsonable(v):
    """What rqw writes for `v` in JSON, as a Python value json.dumps accepts."""
    if isinstance(v, (set, frozenset)):
        return sorted(jsonable(x) for x in v)
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    return v


def init():
    cases = [{'name': name, 'value': tag(value), 'pickle': None, 'json': None} for name, value in VALUES.items()]
    with open(PATH, 'w') as f:
        json.dump({'cases': cases}, f, indent=2, ensure_ascii=False)
        f.write('\n')
    print(f'wrote {len(cases)} values to {PATH}; now run RQW_UPDATE_RETURN_VALUES=1 cargo test')


def check():
    with open(PATH) as f:
        cases = json.load(f)['cases']
    failures = []
    for case in cases:
        name, value = case['name'], untag(case['value'])
        loaded = pickle.loads(base64.b64decode(case['pickle']))
        if tag(loaded) != case['value']:
            failures.append(f'{name}: pickle loads as {loaded!r}, expected {value!r}')
        try:
            python_json = json.dumps(jsonable(value)).encode()
        except TypeError:
            python_json = None
        ours = None if case['json'] is None else base64.b64decode(case['json'])
        if ours != python_json:
            failures.append(f'{name}: rqw json {ours!r} != python {python_json!r}')
        elif ours is not None:
            # Python reads it back (NaN/Infinity included).
            json.loads(ours)
    for failure in failures:
        print('FAIL', failure)
    print(f'{len(cases) - len(failures)}/{len(cases)} return values load as expected in Python {sys.version.split()[0]}')
    sys.exit(1 if failures else 0)


if __name__ == '__main__':
    init() if '--init' in sys.argv else check()
