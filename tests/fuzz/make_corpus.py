#!/usr/bin/env python3
"""Writes the committed seed corpus of the fuzz targets (tests/fuzz/corpus/<target>/seed_*).

Seeds are made by real Python `pickle`/`json`/`zlib` (no rq needed) plus the job hashes of
the golden fixtures (python-fixtures/golden, made by real rq). Run it again only to change the
seeds; CI never regenerates them (tests/fuzz_smoke.rs reads the committed files).

    python3 tests/fuzz/make_corpus.py
"""

import base64
import hashlib
import json
import os
import pickle
import struct
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOLDEN = HERE.parent.parent / "python-fixtures" / "golden"
CORPUS = HERE / "corpus"

# Same order as JOB_FIELDS in targets.rs (a name byte 0xE0 + i picks field i).
JOB_FIELDS = [
    "data", "meta", "origin", "status", "timeout", "result_ttl", "failure_ttl", "retries_left",
    "retry_intervals", "enqueue_at_front_on_retry", "repeats_left", "repeat_intervals",
    "success_callback_name", "success_callback_timeout", "failure_callback_name",
    "failure_callback_timeout", "stopped_callback_name", "stopped_callback_timeout",
    "created_at", "enqueued_at",
]


class Evil:
    """Pickles as a call of os.system: must be refused, never run."""

    def __reduce__(self):
        return (os.system, ("touch /tmp/rqw-fuzz-pwned",))


class Plain:
    def __init__(self):
        self.v = 10


def values():
    shared = {"a": 1}
    nested = []
    cur = nested
    for _ in range(50):
        nxt = []
        cur.append(nxt)
        cur = nxt
    return [
        None, True, False, 0, 1, -1, 255, 65535, 2**31, -2**31 - 1, 2**63, -2**64, 10**40,
        0.0, -0.0, 1.5, float("inf"), float("nan"), "", "text", "ünïcödé ☎", "x" * 300,
        b"", b"\x00\xff", bytearray(b"ba"), [], (), {}, set(), frozenset(),
        [1, "two", 3.0], (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), {"k": "v", "n": [1, 2]},
        {1: "int key", (1, 2): "tuple key", frozenset([1]): "fs key"}, {1, 2, "x"},
        frozenset(["a"]), [shared, shared], nested, list(range(1200)),
        {"call_sid": "CA" + "a" * 32, "business_id": 42, "recording_sid": None},
    ]


def job_tuples():
    out = [("rqw.testing.echo", None, [v], {}) for v in values()]
    out += [
        ("rqw.testing.noop", None, (), {}),
        ("rqw.testing.echo", None, [1, "two"], {"k": "v"}),
        ("server.jobs.recording_job.process_recording_download_job", None, (),
         {"call_sid": "CA" + "0" * 32, "recording_url": "/2010-04-01/Accounts/AC/Recordings/RE",
          "business_id": 42}),
    ]
    return out


def hostile_pickles():
    yield pickle.dumps(("rqw.testing.echo", None, [Evil()], {}), protocol=5)
    yield pickle.dumps(("rqw.testing.echo", None, [Evil()], {}), protocol=0)  # GLOBAL
    yield pickle.dumps(("rqw.testing.echo", Plain(), [], {}), protocol=5)  # NEWOBJ + BUILD
    yield pickle.dumps(("rqw.testing.echo", None, [Plain()], {}), protocol=1)  # INST/OBJ era
    yield b"(S'x'\nI1\ni__main__\nPlain\n."  # INST
    yield b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."  # GLOBAL+REDUCE
    yield b"\x80\x05\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x8c\x06system\x93."  # STACK_GLOBAL
    yield b"\x80\x02P0\n."  # PERSID
    yield b"\x80\x02\x82\x01."  # EXT1
    yield b"\x80\x05\x97."  # NEXT_BUFFER
    # Malformed and hostile shapes.
    yield b""
    yield b"\x80"
    yield b"\x80\x06N."  # protocol 6
    yield b"\x80\x05]\x94(" + b"]\x94" * 500 + b"."  # deep, unclosed
    yield b"(" * 400 + b"."  # many MARKs
    yield b"\x80\x05X\xff\xff\xff\x7fabc."  # BINUNICODE claims 2 GiB
    yield b"\x80\x05\x8d" + struct.pack("<Q", 2**62) + b"."  # BINUNICODE8 claims 4 EiB
    yield b"\x80\x05h\x05."  # BINGET of a missing memo entry
    yield b"\x80\x05]\x94h\x00a."  # a list appended to itself
    yield b"\x80\x05N0."  # POP leaves an empty stack
    yield b"\x80\x05\x8c\x02\xff\xfe."  # SHORT_BINUNICODE, not UTF-8
    bomb = b"\x80\x05]\x94(" + b"h\x00" * 64 + b"e"
    for _ in range(30):
        bomb += b"]\x94(" + b"h\x01" * 4 + b"e"
    yield bomb + b"."  # shared references that expand exponentially
    # Issue 13: lying FRAME lengths (Python refuses both), and values that cost far more
    # memory than their bytes (a budget, not a value count, refuses them).
    body = pickle.dumps(("rqw.testing.echo", None, (1,), {}), protocol=5)[11:]
    yield b"\x80\x05\x95" + struct.pack("<Q", 2**63) + body  # FRAME 2**63
    yield b"\x80\x05\x95" + struct.pack("<Q", len(body) + 1) + body  # FRAME one past the end
    yield b"\x80\x05\x95" + struct.pack("<Q", len(body)) + body  # an honest FRAME
    yield b"\x80\x05(\x8c\x10rqw.testing.echoN](" + b"N" * 5000 + b"e\x85}t."  # many Nones
    yield b"\x80\x05](" + b"]" * 3000 + b"e."  # many empty lists
    yield b"\x80\x05]\x94(" + b"h\x00" * 2000 + b"e."  # one list referenced 2000 times


def write(target, name, data):
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(data).hexdigest()[:10]
    (folder / f"seed_{name}_{digest}").write_bytes(data)


def job_record_input(fields):
    out = bytearray()
    for name, value in fields.items():
        if isinstance(value, str):
            value = value.encode()
        value = value[:65535]
        if name in JOB_FIELDS:
            out.append(0xE0 + JOB_FIELDS.index(name))
        else:
            raw = name.encode()[:0xDF]
            out.append(len(raw))
            out += raw
        out += struct.pack(">H", len(value)) + value
    return bytes(out)


def golden_hashes():
    for path in sorted(GOLDEN.glob("*/*/*.json")):
        doc = json.loads(path.read_text())
        job_hash = doc.get("job_hash")
        if not isinstance(job_hash, dict):
            continue
        fields = {k: base64.b64decode(v) for k, v in job_hash.items()}
        yield f"{path.parent.parent.name}_{path.parent.name}_{path.stem}", doc.get("serializer"), fields


def main():
    for i, value in enumerate(values()):
        for proto in (0, 2, 5):
            try:
                write("pickle_decode", f"value{i}_p{proto}", pickle.dumps(value, protocol=proto))
            except Exception:
                pass
    for i, data in enumerate(hostile_pickles()):
        write("pickle_decode", f"hostile{i}", data)
        write("decode_job_data_pickle", f"hostile{i}", zlib.compress(data))
    for i, call in enumerate(job_tuples()):
        raw = pickle.dumps(call, protocol=5)
        write("decode_job_data_pickle", f"job{i}", zlib.compress(raw))
        if i % 5 == 0:
            write("decode_job_data_pickle", f"job{i}_raw", raw)
            write("decode_job_data_pickle", f"job{i}_trunc", zlib.compress(raw)[:-7])
        try:
            text = json.dumps([call[0], None, list(call[2]), call[3]]).encode()
        except (TypeError, ValueError):
            continue
        write("decode_job_data_json", f"job{i}", zlib.compress(text))
    for i, text in enumerate([
        b"", b"[", b"[]", b"{}", b'["f", null, [], {}]', b'["f", null, [NaN, Infinity, -Infinity], {}]',
        b'["f", null, [123456789012345678901234567890], {"k": 1e400}]', b"[" * 300 + b"]" * 300,
        b'["f", 1, [], {}]', b'["\\ud800", null, [], {}]', b'["f", null, [], {"a": "\\u00e9"}]',
    ]):
        write("decode_job_data_json", f"text{i}", text)
        write("decode_job_data_json", f"text{i}_z", zlib.compress(text))
    write("decode_job_data_pickle", "zlib_bomb", zlib.compress(b"\x00" * (65 << 20), 9))
    # Issue 13: 11 million Nones in about 11 KB; 3 million JSON nulls in about 15 KB.
    write("decode_job_data_pickle", "none_bomb",
          zlib.compress(b"\x80\x05(\x8c\x10rqw.testing.echoN](" + b"N" * 11_000_000 + b"e\x85}t.", 9))
    write("decode_job_data_json", "null_bomb",
          zlib.compress(b'["rqw.testing.echo", null, [[' + b"null," * 3_000_000 + b'null]], {}]', 9))
    # Issue 13: hostile text as a job hash and a handler could make it (path NUL type NUL message).
    for i, text in enumerate([
        b"jobs.f\n\x00ValueError\x00bad",
        b"f\r\nINFO forged: job recorded\x00RuntimeError\x00line one\r\nline two\n",
        b"x" * 5000 + b"\x00rqw.errors.UnknownFunctionError\x00" + b"m" * 5000,
        b"\xff\xfe\x1b[2J\x00T\x00\xe2\x80\xa8\xc2\x85\x7f",
        b"\x00\x00",
        b"odd-\xff\x00InvalidJobError\x00the job id is not valid UTF-8",
    ]):
        write("echo_text", f"text{i}", text)
    paths = [b"rqw.testing.echo", b"os.system\n", b"a\rb", "☎.f\u2028".encode(), b"\t" * 50, b"p" * 300]
    messages = [b"", b"one\ntwo", b"\x00\x01\x02", b"x" * 600, "é\u2029".encode()]
    for i, path in enumerate(paths):
        for j, message in enumerate(messages[: 3 if i % 2 else 5]):
            write("echo_text", f"pair{i}_{j}", path + b"\x00ValueError\x00" + message)
    for name, serializer, fields in golden_hashes():
        target = "decode_job_data_json" if serializer == "json" else "decode_job_data_pickle"
        if "data" in fields:
            write(target, f"golden_{name}", fields["data"])
        write("job_record", f"golden_{name}", job_record_input(fields))
    for i, fields in enumerate([
        {},
        {"data": b"x"},
        {"data": b"x", "timeout": "180.0", "retries_left": "x", "status": "bogus"},
        {"data": b"x", "timeout": "-1", "result_ttl": "-1", "failure_ttl": "abc"},
        {"data": b"x", "origin": b"\xff\xfe", "retry_intervals": "[1, 2, 3]", "retries_left": "2"},
        {"data": b"x", "retry_intervals": "[1, \"a\"]", "repeat_intervals": "{}", "repeats_left": "-3"},
        {"data": b"x", "success_callback_name": "m.f", "success_callback_timeout": "0"},
        {"data": b"x", "timeout": "99999999999999999999", "enqueue_at_front_on_retry": "1"},
    ]):
        write("job_record", f"hash{i}", job_record_input(fields))


if __name__ == "__main__":
    main()
