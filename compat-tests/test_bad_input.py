"""Bad input: broken jobs written straight into Redis (HSET rq:job:<id> + RPUSH), as a buggy or
hostile producer could. Each one fails alone with a clear exception text (read through rq's
API), a good job queued right behind it finishes, nothing in a payload ever runs (a pickle
that calls os.system leaves no file behind), and rqw never panics.

One worker run (`-c 8`) takes the whole corpus, bad and good jobs interleaved; the
parametrized tests then check one case each. The corpus also holds what the second pass
(issue 13) is about: decode bombs that fit in a few KB and expand to millions of values,
oversized raw fields, lying pickle FRAMEs, huge and newline-ended function names and
messages, ids and origins with line breaks or invalid UTF-8, and keys of the wrong type where
the lifecycle scripts write (job key, executions, StartedJobRegistry, results stream,
dependents set, a dependent's hash, the origin queue). The worker's peak RSS (VmHWM) through
the whole corpus is measured and kept under the bound docs/SECURITY.md states, and every id
pushed is accounted for at the end.
"""

import json
import os
import pickle
import re
import struct
import uuid
import zlib
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, FinishedJobRegistry
from rq.results import Result

from compat import ECHO, NOOP, SLEEP, last_line, wait_for
from conftest import WorkerRunner

pytestmark = pytest.mark.rqw_only("rq's worker unpickles anything: these payloads would run code in it")

QUEUE = "bad"
MARKER = f"/tmp/rqw-pwned-{uuid.uuid4().hex}"
DESERIALIZATION = "rq.exceptions.DeserializationError: "
INVALID_JOB = "rqw.errors.InvalidJobError: unusable job hash: "


class Evil:
    """Unpickling this calls os.system (what `pickle.loads` in rq's worker would do)."""

    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


class EvilEval:
    def __reduce__(self):
        return (eval, (f"__import__('os').system('touch {MARKER}')",))


class Plain:
    def __init__(self):
        self.v = 1


def call(func="rqw.testing.echo", instance=None, args=(), kwargs=None, protocol=5):
    return zlib.compress(pickle.dumps((func, instance, args, kwargs or {}), protocol=protocol))


def nones(count, func="rqw.testing.echo"):
    """`(func, None, ([None] * count,), {})` as protocol 5 writes it, without frames: one `N` per
    value, so 11 million Nones compress to about 11 KB."""
    name = func.encode()
    return b"\x80\x05(\x8c" + bytes([len(name)]) + name + b"N](" + b"N" * count + b"e\x85}t."


def framed(frame_len, body=None):
    """A protocol 5 pickle of an echo call whose FRAME announces `frame_len` bytes."""
    body = body if body is not None else pickle.dumps(("rqw.testing.echo", None, (1,), {}), 5)[11:]
    return zlib.compress(b"\x80\x05\x95" + struct.pack("<Q", frame_len) + body)


def deep_list(levels):
    # PROTO 5, then `levels` x (EMPTY_LIST, MARK), closed by APPENDS, STOP.
    return b"\x80\x05" + b"](" * levels + b"e" * levels + b"."


NAN_SET_PICKLE = (Path(__file__).resolve().parent.parent / "tests" / "fuzz" / "corpus" / "pickle_decode"
                  / "seed_regression_nan_set_job").read_bytes()

DECODED = "(--max-decoded-bytes)"
# Limits the corpus runs with (the defaults, stated in docs/SECURITY.md).
MAX_PAYLOAD, MAX_INFLATED, MAX_DECODED = 4 << 20, 16 << 20, 32 << 20
# The peak RSS bound docs/SECURITY.md states for -c 8 with the default limits:
# 8 x (6 x payload + 2 x inflated + 1.25 x decoded) + 64 MiB of base = 832 MiB.
CONCURRENCY = 8
RSS_BOUND_KB = (CONCURRENCY * (6 * MAX_PAYLOAD + 2 * MAX_INFLATED + MAX_DECODED + MAX_DECODED // 4)
                + (64 << 20)) // 1024

# name -> (field overrides, or None to delete a field, expected status, text expected in the last line)
CASES = {
    # Eight decode bombs at once (pushed back to back, so one start takes them together): each
    # about 11 KB compressed, 11 million Nones decoded, refused by the budget as it is spent.
    **{f"mem_none_bomb_{i}": ({"data": zlib.compress(nones(11_000_000), 9)}, "failed",
                              f"{DESERIALIZATION}job bad-mem_none_bomb_{i}: pickle decodes to more than the "
                              f"33554432-byte memory budget (while reading) {DECODED}") for i in range(8)},
    "data_70MiB": ({"data": b"x" * (70 << 20)}, "failed",
                   DESERIALIZATION + "job bad-data_70MiB: the data field is 73400320 bytes, over the "
                                     "4194304-byte limit (--max-payload-bytes)"),
    "meta_70MiB": ({"meta": b"N" * (70 << 20)}, "finished", None),
    # Under --max-payload-bytes, over meta's share of the budget: not given to the handler.
    "meta_none_bomb": ({"meta": b"\x80\x05](" + b"N" * ((4 << 20) - 16) + b"e."}, "finished", None),
    "inflates_to_17MiB": ({"data": zlib.compress(b"N" * (17 << 20), 9)}, "failed",
                          "data inflates past the 16777216-byte limit (--max-inflated-bytes)"),
    "shared_refs_expand_past_budget": ({"data": zlib.compress(
        b"\x80\x05(\x8c\x10rqw.testing.echoN](" + b"N" * 1000 + b"e\x94" + b"(" + b"h\x00" * 60_000 + b"l\x85}t.")},
        "failed", "memory budget (once expanded) " + DECODED),
    "frame_2_63": ({"data": framed(1 << 63)}, "failed", DESERIALIZATION + "undecodable pickle: truncated pickle (FRAME"),
    "frame_past_the_end": ({"data": framed(len(pickle.dumps(("rqw.testing.echo", None, (1,), {}), 5)) - 10)},
                           "failed", DESERIALIZATION + "undecodable pickle: truncated pickle (FRAME"),
    "func_name_1MiB": ({"data": call(func="x" * (1 << 20))}, "failed",
                       "rqw.errors.UnknownFunctionError: no native handler for 'xxxx"),
    "func_name_ends_in_newline": ({"data": call(func="rqw.testing.echo\n")}, "failed",
                                  "rqw.errors.UnknownFunctionError: no native handler for 'rqw.testing.echo\\n'"),
    "func_name_forges_a_line": ({"data": call(func="f\r\nINFO forged: job recorded")}, "failed",
                                "no native handler for 'f\\r\\nINFO forged: job recorded'"),
    "fail_message_1MiB_multiline": ({"data": call(func="rqw.testing.fail",
                                                  kwargs={"message": "m" * (1 << 20) + "\nValueError: forged"})},
                                    "failed", "RuntimeError: mmmm"),
    "call_sid_100KiB": ({"data": call(kwargs={"call_sid": "CA" + "0" * (100 << 10)})}, "finished", None),
    # Fields rqw does not read count together against --max-payload-bytes and are left in
    # Redis past it (the job runs); one it reads is capped at 64 KiB (past it: unusable hash).
    "description_5MiB": ({"description": b"d" * (5 << 20)}, "finished", None),
    "description_and_exc_info_3MiB": ({"description": b"d" * (3 << 20), "exc_info": b"e" * (3 << 20)},
                                      "finished", None),
    "origin_5MiB": ({"origin": b"o" * (5 << 20)}, "failed",
                    INVALID_JOB + "field 'origin' is 5242880 bytes, over the 65536-byte limit of the fields rqw reads"),
    "hash_of_5000_fields": ({f"extra{i}": b"1" for i in range(5000)}, "failed",
                            "rqw.errors.InvalidJobError: the job hash has 50"),
    "bad_zlib": ({"data": b"x\x9c\x01\x02garbage\xff\xfe"}, "failed", DESERIALIZATION + "undecodable pickle"),
    "not_a_pickle": ({"data": b"hello, world"}, "failed", DESERIALIZATION + "undecodable pickle"),
    "empty_data": ({"data": b""}, "failed", DESERIALIZATION + "undecodable pickle"),
    "truncated_pickle": ({"data": zlib.compress(pickle.dumps(("rqw.testing.echo", None, (1, 2), {}), 5)[:-9])},
                         "failed", DESERIALIZATION + "undecodable pickle: truncated pickle"),
    "truncated_zlib": ({"data": call(args=("x" * 500,))[:-12]}, "failed", DESERIALIZATION),
    "zlib_bomb_65MiB": ({"data": zlib.compress(b"\x00" * (65 << 20), 9)}, "failed",
                        DESERIALIZATION + "job bad-zlib_bomb_65MiB: data inflates past the 16777216-byte limit "
                                          "(--max-inflated-bytes)"),
    "length_field_4EiB": ({"data": zlib.compress(b"\x80\x05\x8d" + struct.pack("<Q", 2**62) + b"abc.")},
                          "failed", DESERIALIZATION + "undecodable pickle: truncated pickle"),
    "nesting_100k_deep": ({"data": zlib.compress(deep_list(100_000))}, "failed",
                          DESERIALIZATION + "undecodable pickle: pickle nests deeper than 200 levels"),
    "reduce_os_system_in_args": ({"data": call(args=(Evil(),))}, "failed",
                                 DESERIALIZATION + "unsupported pickle content in args (STACK_GLOBAL posix.system)"),
    "global_os_system_protocol0": ({"data": call(args=(Evil(),), protocol=0)}, "failed",
                                   DESERIALIZATION + "unsupported pickle content in args (GLOBAL posix.system)"),
    "reduce_eval_in_kwargs": ({"data": call(kwargs={"x": EvilEval()})}, "failed",
                              DESERIALIZATION + "unsupported pickle content in kwargs (STACK_GLOBAL builtins.eval)"),
    "reduce_as_func_name": ({"data": zlib.compress(pickle.dumps((Evil(), None, (), {}), 5))}, "failed",
                            DESERIALIZATION + "unsupported pickle content in func_name (STACK_GLOBAL posix.system)"),
    "instance_is_a_callable_object": ({"data": call(instance=Evil())}, "failed",
                                      DESERIALIZATION + "job calls a bound method or callable instance "
                                                        "(STACK_GLOBAL posix.system)"),
    "class_instance_argument": ({"data": call(args=(Plain(),))}, "failed",
                                DESERIALIZATION + "unsupported pickle content in args (STACK_GLOBAL "),
    "whole_payload_is_reduce": ({"data": zlib.compress(pickle.dumps(Evil(), 5))}, "failed",
                                DESERIALIZATION + "unsupported pickle content (STACK_GLOBAL posix.system)"),
    "os_system_as_function_path": ({"data": call(func="os.system", args=(f"touch {MARKER}",))}, "failed",
                                   "rqw.errors.UnknownFunctionError: no native handler for 'os.system'"),
    "shape_dict": ({"data": zlib.compress(pickle.dumps({"f": 1}, 5))}, "failed",
                   DESERIALIZATION + "job data is not RQ's (func_name, instance, args, kwargs): found dict"),
    "shape_three_items": ({"data": zlib.compress(pickle.dumps(("rqw.testing.echo", None, ()), 5))}, "failed",
                          DESERIALIZATION + "job data is not RQ's (func_name, instance, args, kwargs): "
                                            "found a tuple of 3 items"),
    "shape_func_name_int": ({"data": call(func=42)}, "failed", "func_name is int, expected str"),
    "shape_func_name_bytes": ({"data": call(func=b"\xff\xfe")}, "failed", "func_name is bytes, expected str"),
    "shape_args_str": ({"data": zlib.compress(pickle.dumps(("rqw.testing.echo", None, "abc", {}), 5))}, "failed",
                       "args is str, expected tuple or list"),
    "shape_kwargs_int_key": ({"data": call(kwargs={1: 2})}, "failed", "a kwargs key is int, expected str"),
    "func_name_not_utf8": ({"data": zlib.compress(b"\x80\x05\x95\x0e\x00\x00\x00\x00\x00\x00\x00(\x8c\x02\xff\xfe"
                                                  b"N)}t\x94.")}, "failed", DESERIALIZATION + "undecodable pickle"),
    # Plain data that once panicked the decoder (found by fuzzing): a set holding NaN among
    # floats, ints and strings; whether the sort noticed depended on the set's order.
    "set_with_nan": ({"data": zlib.compress(NAN_SET_PICKLE)}, "finished", None),
    "meta_is_hostile": ({"meta": pickle.dumps(Evil(), 5)}, "finished", None),
    "timeout_float_text": ({"timeout": b"180.0"}, "failed", INVALID_JOB + "field 'timeout' is not an integer: \"180.0\""),
    "timeout_garbage": ({"timeout": b"10m\n\x00"}, "failed", INVALID_JOB + "field 'timeout' is not an integer"),
    "retries_left_text": ({"retries_left": b"x"}, "failed", INVALID_JOB + "field 'retries_left' is not an integer"),
    "result_ttl_text": ({"result_ttl": b"forever"}, "failed", INVALID_JOB + "field 'result_ttl' is not an integer"),
    "failure_ttl_text": ({"failure_ttl": b"1y"}, "failed", INVALID_JOB + "field 'failure_ttl' is not an integer"),
    "retry_intervals_broken": ({"retry_intervals": b"[1,"}, "failed",
                               INVALID_JOB + "field 'retry_intervals' is not a JSON list of seconds"),
    "status_bogus": ({"status": b"bogus"}, "finished", None),
    "status_missing": ({"status": None}, "finished", None),
    "data_missing": ({"data": None}, "failed", INVALID_JOB + "the job hash has no 'data' field"),
    "description_not_utf8": ({"description": b"\xff\xfe\xfd"}, "finished", None),
}


def exc_text(conn, job_id):
    """The failure text through rq: the job's latest result, or (when rq cannot load the hash)
    the latest result of a bare Job with that id."""
    try:
        job = Job.fetch(job_id, connection=conn)
        result = job.latest_result()
    except Exception:  # noqa: BLE001 - the hash itself may be what is broken
        result = Result.fetch_latest(Job(id=job_id, connection=conn))
    if result is not None:
        return result.exc_string
    # Failed by the start script: the legacy exc_info field, which rq's readers fall back to.
    raw = conn.hget(f"rq:job:{job_id}", "exc_info")
    return raw.decode() if raw else None


def _template(conn, queue):
    template = queue.enqueue(ECHO, "template")
    fields = conn.hgetall(f"rq:job:{template.id}")
    conn.delete(f"rq:job:{template.id}", f"rq:queue:{queue.name}")
    return {**fields, b"origin": queue.name.encode()}


def _sabotage(conn, fields):
    """Jobs whose ids, origins or lifecycle keys are hostile (issue 13): id -> (expected status
    or "refused" when the job key itself is unusable, the registry it must be in (None: none),
    a text its exc_info or the log must show). Written after the CASES, before the run."""
    echo = call(args=("sabotaged",))
    cases = {}

    def job(job_id, expected, registry=None, text=None, origin=QUEUE, **overrides):
        conn.hset(b"rq:job:" + job_id, mapping={**fields, b"origin": origin, b"data": echo, **overrides})
        conn.rpush(f"rq:queue:{QUEUE}", job_id)
        cases[job_id] = (expected, registry, text)

    # Ids and origins that would forge log lines (a non-UTF-8 id: test_non_utf8_job_id_fails_the_job;
    # in this queue's failed registry it would break rq's own get_job_ids for the others).
    job(b"bad-id\nINFO forged: job recorded", "finished", f"rq:finished:{QUEUE}")
    job(b"bad-id\r\nWARN forged", "finished", f"rq:finished:{QUEUE}")
    job(b"bad-origin-crlf", "finished", "rq:finished:bad\r\nFORGED", origin=b"bad\r\nFORGED")
    # Keys of the wrong type where start.lua writes or reads.
    conn.set("rq:job:bad-key-is-a-string", "not a hash")
    conn.rpush(f"rq:queue:{QUEUE}", "bad-key-is-a-string")
    cases[b"bad-key-is-a-string"] = ("refused", None, "job_id=bad-key-is-a-string")
    conn.set("rq:executions:bad-executions-string", "x")
    job(b"bad-executions-string", "failed", f"rq:failed:{QUEUE}", "rq:executions:bad-executions-string is not a sorted set")
    conn.set("rq:wip:trap", "x")
    job(b"bad-origin-wip-string", "failed", f"rq:failed:{QUEUE}", "StartedJobRegistry of its origin 'trap'",
        origin=b"trap")
    # The same with an origin that would break exc_info's last line: quoted escaped.
    conn.set("rq:wip:trap\nValueError: forged", "x")
    job(b"bad-origin-newline-wip-string", "failed", f"rq:failed:{QUEUE}", "origin 'trap\\x0aValueError: forged'",
        origin=b"trap\nValueError: forged")
    # Keys of the wrong type where finish.lua writes.
    conn.set("rq:results:bad-results-string", "x")
    job(b"bad-results-string", "finished", f"rq:finished:{QUEUE}", "rq:results:bad-results-string is not a stream")
    conn.set("rq:job:bad-dependents-string:dependents", "x")
    job(b"bad-dependents-string", "finished", f"rq:finished:{QUEUE}", "bad-dependents-string:dependents is not a set")
    conn.set("rq:job:bad-dependent-string", "x")
    conn.sadd("rq:job:bad-dependent-hash:dependents", "bad-dependent-string")
    job(b"bad-dependent-hash", "finished", f"rq:finished:{QUEUE}", "dependent bad-dependent-string not enqueued")
    conn.set("rq:queue:trapq", "x")
    job(b"bad-retry-queue-string", "failed", "rq:failed:trapq", "rq:queue:trapq",
        origin=b"trapq", retries_left=b"1", data=call(func="rqw.testing.fail", kwargs={"message": "retry me"}))
    conn.set("rq:finished:trapf", "x")
    job(b"bad-finished-registry-string", "failed", "rq:failed:trapf", "rq:finished:trapf", origin=b"trapf")
    return cases


def _vm_hwm_kb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.fixture(scope="module")
def corpus(redis_server, tmp_path_factory):
    """Writes the corpus (each bad job followed by a good one; the decode bombs back to back),
    runs one worker at -c 8 until every id is accounted for, and measures its peak RSS."""
    conn = redis.Redis.from_url(redis_server.url)
    conn.flushall()
    queue = Queue(QUEUE, connection=conn)
    fields = _template(conn, queue)
    good = {}
    names = sorted(CASES, key=lambda name: not name.startswith("mem_"))
    for name in names:
        overrides = CASES[name][0]
        job_id = f"bad-{name}"
        mapping = {**fields, b"origin": QUEUE.encode()}
        for key, value in overrides.items():
            if value is None:
                mapping.pop(key.encode(), None)
            else:
                mapping[key.encode()] = value
        conn.hset(f"rq:job:{job_id}", mapping=mapping)
        conn.rpush(f"rq:queue:{QUEUE}", job_id)
        if not name.startswith("mem_"):
            good[name] = queue.enqueue(ECHO, name)
    for name in names:
        if name.startswith("mem_"):
            good[name] = queue.enqueue(ECHO, name)
    sabotaged = _sabotage(conn, fields)
    # An id whose hash is gone: skipped, never stuck.
    conn.rpush(f"rq:queue:{QUEUE}", "bad-hash-is-missing")
    last = queue.enqueue(ECHO, "last")
    pushed = conn.llen(f"rq:queue:{QUEUE}")

    runner = WorkerRunner(redis_server.url, tmp_path_factory.mktemp("bad-input"))
    handle = runner.start(QUEUE, "--name", "w-bad-input", "-c", str(CONCURRENCY),
                          "--max-payload-bytes", str(MAX_PAYLOAD), "--max-inflated-bytes", str(MAX_INFLATED),
                          "--max-decoded-bytes", str(MAX_DECODED))
    wait_for(lambda: not handle.alive() or (last.get_status(refresh=True) == JobStatus.FINISHED
                                            and conn.llen(f"rq:queue:{QUEUE}") == 0
                                            and conn.zcard(f"rq:wip:{QUEUE}") == 0),
             timeout=180, message="the corpus to drain")
    assert handle.alive(), handle.describe()
    peak_kb = _vm_hwm_kb(handle.pid)
    result = handle.stop()
    runner.close()
    yield conn, good, last, result, sabotaged, pushed, peak_kb
    conn.close()


@pytest.mark.parametrize("name", list(CASES))
def test_broken_job_fails_alone_with_a_clear_text(corpus, name):
    conn, good, *_ = corpus
    _, expected_status, expected_text = CASES[name]
    job_id = f"bad-{name}"
    status = conn.hget(f"rq:job:{job_id}", "status").decode()
    assert status == expected_status, exc_text(conn, job_id)
    if expected_status == "failed":
        assert job_id in FailedJobRegistry(QUEUE, connection=conn).get_job_ids()
        text = exc_text(conn, job_id)
        line = last_line(text)
        assert expected_text in line, f"{line!r} should contain {expected_text!r}"
        assert "\x00" not in line and len(line) < 700
    else:
        assert job_id in FinishedJobRegistry(QUEUE, connection=conn).get_job_ids()
    # The good job queued right behind it finished.
    job = Job.fetch(good[name].id, connection=conn)
    assert job.get_status() == JobStatus.FINISHED
    assert job.return_value() == {"args": [name], "kwargs": {}}


def test_nothing_in_a_payload_ran_and_nothing_is_left_behind(corpus):
    conn, _, last, result, *_ = corpus
    assert not os.path.exists(MARKER), "a pickled os.system call was executed"
    assert last.get_status(refresh=True) == JobStatus.FINISHED
    assert conn.llen(f"rq:queue:{QUEUE}") == 0
    assert conn.llen(f"rq:queue:{QUEUE}:intermediate") == 0
    assert conn.zcard(f"rq:wip:{QUEUE}") == 0
    output = result.stdout + result.stderr
    assert "panicked" not in output and "panic=" not in output, output[-3000:]


def test_peak_rss_through_the_corpus_stays_under_the_stated_bound(corpus):
    *_, peak_kb = corpus
    print(f"peak RSS (VmHWM) through the corpus at -c {CONCURRENCY}: {peak_kb} kB; bound {RSS_BOUND_KB} kB")
    assert peak_kb < RSS_BOUND_KB, f"peak RSS {peak_kb} kB over the bound of {RSS_BOUND_KB} kB"


@pytest.mark.parametrize("job_id", ["id-newline", "id-crlf", "origin-crlf", "key-is-a-string",
                                    "executions-string", "origin-wip-string", "origin-newline-wip-string",
                                    "results-string",
                                    "dependents-string", "dependent-hash", "retry-queue-string",
                                    "finished-registry-string"])
def test_unusable_keys_fail_alone_and_visibly(corpus, job_id):
    conn, _, _, result, sabotaged, _, _ = corpus
    ids = {"id-newline": b"bad-id\nINFO forged: job recorded", "id-crlf": b"bad-id\r\nWARN forged",
           "origin-crlf": b"bad-origin-crlf"}
    raw_id = ids.get(job_id, f"bad-{job_id}".encode())
    expected, registry, text = sabotaged[raw_id]
    log = result.stdout + result.stderr
    if expected == "refused":
        # Not a hash: in no registry (RQ cannot read it); named in the log.
        assert "job refused at start" in log and text in log, log[-3000:]
        return
    assert conn.hget(b"rq:job:" + raw_id, "status").decode() == expected
    assert conn.zscore(registry, raw_id) is not None, f"{raw_id!r} not in {registry}"
    if text:
        exc_info = (conn.hget(b"rq:job:" + raw_id, "exc_info") or b"").decode(errors="replace")
        assert text in exc_info or text in log, (exc_info, log[-3000:])
    if expected == "failed" and conn.hget(b"rq:job:" + raw_id, "exc_info"):
        assert re.match(r"^[\w.]+: .+$", last_line(exc_info)), exc_info
        assert "\n" not in exc_info.strip() or exc_info.startswith("Traceback"), exc_info


def test_log_lines_cannot_be_forged(corpus):
    """Every line the worker wrote is one of its own events (text format: a timestamp first),
    and the hostile ids, origins and names show escaped."""
    _, _, _, result, *_ = corpus
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    stray = [line for line in lines if not re.match(r"^\d{4}-\d\d-\d\dT", line)]
    assert not stray, stray[:5]
    log = "\n".join(lines)
    assert "bad-id\\nINFO forged: job recorded" in log
    assert "bad-id\\r\\nWARN forged" in log
    assert "bad\\r\\nFORGED" in log
    assert max(len(line) for line in lines) < 4000, max(lines, key=len)[:300]


def test_every_pushed_id_is_accounted_for(corpus):
    """Every id pushed ends in exactly one place: a registry of its outcome, or (a job key that is
    not a hash, or a hash deleted before it ran) named in the log / gone, never in a queue."""
    conn, good, last, result, sabotaged, pushed, _ = corpus
    log = result.stdout + result.stderr
    registries = [key for pattern in ("rq:finished:*", "rq:failed:*") for key in conn.scan_iter(pattern)
                  if conn.type(key) == b"zset"]
    placed = {}
    for key in registries:
        for member in conn.zrange(key, 0, -1):
            placed.setdefault(member, []).append(key)
    ids = [f"bad-{name}".encode() for name in CASES] + [job.id.encode() for job in good.values()]
    ids += list(sabotaged) + [last.id.encode()]
    accounted = 0
    for job_id in ids:
        if sabotaged.get(job_id, ("",))[0] == "refused":
            assert job_id.decode() in log
        else:
            assert len(placed.get(job_id, [])) == 1, (job_id, placed.get(job_id))
        accounted += 1
    assert accounted + 1 == pushed  # + bad-hash-is-missing, whose hash never existed
    assert conn.llen(f"rq:queue:{QUEUE}") == 0 and conn.zcard(f"rq:wip:{QUEUE}") == 0


def test_a_batched_start_survives_an_unusable_job_in_the_middle(conn, worker):
    """-c 64: one start call takes 62 ids; the one whose job key is a string (WRONGTYPE) is
    refused alone and named in the log (JSON format, one object per line); the one whose
    executions key is a string fails in its failed registry; the 60 others run."""
    queue = Queue("batch", connection=conn)
    fields = _template(conn, queue)
    before = [queue.enqueue(ECHO, i) for i in range(30)]
    conn.set("rq:job:batch-wrongtype", "x")
    conn.rpush("rq:queue:batch", "batch-wrongtype")
    conn.set("rq:executions:batch-executions", "x")
    conn.hset("rq:job:batch-executions", mapping={**fields, b"data": call(args=("x",))})
    conn.rpush("rq:queue:batch", "batch-executions")
    # An id that would forge a line in text logs: one JSON object per line regardless.
    conn.hset("rq:job:batch-\nforged", mapping={**fields, b"data": call(args=("x",))})
    conn.rpush("rq:queue:batch", "batch-\nforged")
    after = [queue.enqueue(ECHO, i) for i in range(29)]
    result = worker.run_burst("batch", "-c", "64", "--log-format", "json")
    for job in before + after:
        assert job.get_status(refresh=True) == JobStatus.FINISHED, job.id
    assert conn.hget("rq:job:batch-executions", "status") == b"failed"
    assert conn.hget("rq:job:batch-\nforged", "status") == b"finished"
    assert conn.zscore("rq:failed:batch", "batch-executions") is not None
    assert conn.llen("rq:queue:batch") == 0 and conn.zcard("rq:wip:batch") == 0
    events = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    refused = [e for e in events if e.get("fields", {}).get("message") == "job refused at start"]
    assert {e["fields"]["job_id"] for e in refused} == {"batch-wrongtype", "batch-executions"}, refused
    assert any("not a hash" in e["fields"]["reason"] for e in refused)


def test_a_job_hash_deleted_while_it_runs(queue, worker, conn):
    doomed = queue.enqueue(SLEEP, 1, job_timeout=30)
    after = queue.enqueue(ECHO, "after")
    handle = worker.start("default", "--name", "w-deleted")
    wait_for(lambda: doomed.get_status(refresh=True) == JobStatus.STARTED, timeout=15, message="job running")
    conn.delete(f"rq:job:{doomed.id}")
    wait_for(lambda: after.get_status(refresh=True) == JobStatus.FINISHED, timeout=15, message="next job")
    handle.stop()
    assert conn.zcard("rq:wip:default") == 0, "the execution left the StartedJobRegistry"
    assert not conn.exists(f"rq:job:{doomed.id}"), "a deleted job is not recreated"
    out, err = handle.output()
    assert "the job hash was deleted while the job ran" in err
    assert "panicked" not in out + err


def test_bad_json_payloads(conn, worker):
    """The same with `-S json`: invalid JSON, wrong shape, nesting bombs, huge numbers."""
    queue = Queue("badjson", connection=conn)
    template = queue.enqueue(ECHO, "template")  # pickled, rewritten below
    fields = conn.hgetall(f"rq:job:{template.id}")
    conn.delete(f"rq:queue:badjson")
    cases = {
        "invalid": (b"{not json", "undecodable JSON"),
        "shape": (b'{"f": 1}', "found dict"),
        "deep": (b"[" * 50_000 + b"]" * 50_000, "undecodable JSON"),
        "nan_func": (b'[NaN, null, [], {}]', "func_name is float, expected str"),
        "bigint_ok": (b'["rqw.testing.echo", null, [123456789012345678901234567890], {}]', None),
        # 3 million nulls in 15 MB (under --max-inflated-bytes): refused by the memory budget.
        "null_bomb": (b'["rqw.testing.echo", null, [[' + b"null," * 3_000_000 + b'null]], {}]',
                      "JSON decodes to more than the 33554432-byte memory budget"),
    }
    for name, (text, _) in cases.items():
        conn.hset(f"rq:job:json-{name}", mapping={**fields, b"data": zlib.compress(text), b"origin": b"badjson"})
        conn.rpush("rq:queue:badjson", f"json-{name}")
    result = worker.run_burst("badjson", "-S", "json")
    for name, (_, expected) in cases.items():
        status = conn.hget(f"rq:job:json-{name}", "status").decode()
        if expected is None:
            assert status == "finished"
        else:
            assert status == "failed", name
            line = last_line(exc_text(conn, f"json-{name}"))
            assert line.startswith(DESERIALIZATION) and expected in line, line
    assert "panicked" not in result.stdout + result.stderr


def _raw_job(conn, queue_name, job_id, **overrides):
    queue = Queue(queue_name, connection=conn)
    template = queue.enqueue(ECHO, "template")
    fields = conn.hgetall(f"rq:job:{template.id}")
    conn.delete(f"rq:job:{template.id}", f"rq:queue:{queue_name}")
    conn.hset(b"rq:job:" + job_id, mapping={**fields, b"origin": queue_name.encode(), **overrides})
    conn.rpush(f"rq:queue:{queue_name}", job_id)
    return queue.enqueue(ECHO, "after")


def test_non_utf8_origin_fails_the_job(conn, worker):
    after = _raw_job(conn, "odd", b"odd-origin", origin=b"\xff\xfe")
    worker.run_burst("odd")
    assert after.get_status(refresh=True) == JobStatus.FINISHED  # the worker went on (true today)
    assert conn.hget("rq:job:odd-origin", "status") == b"failed"


def test_non_utf8_job_id_fails_the_job(conn, worker):
    after = _raw_job(conn, "odd", b"odd-\xff")
    result = worker.run_burst("odd")
    # Named in the log, escaped.
    assert "job refused at start job_id=odd-\\xff job_id_utf8=false" in result.stderr, result.stderr
    assert after.get_status(refresh=True) == JobStatus.FINISHED  # the worker went on (true today)
    assert conn.hget(b"rq:job:odd-\xff", "status") == b"failed"
    assert conn.zscore("rq:failed:odd", b"odd-\xff") is not None


def test_a_payload_refused_for_size_is_forwarded_intact(conn, worker):
    """With --forward-unknown, a job refused for its size (raw field, inflated size, decoded
    memory) goes, untouched, to the Python worker's queue: failed nowhere, lost nowhere."""
    queue = Queue("sized", connection=conn)
    fields = _template(conn, queue)
    payloads = {
        "sized-raw": b"x" * (5 << 20),
        "sized-inflated": zlib.compress(b"N" * (17 << 20), 9),
        "sized-decoded": zlib.compress(nones(11_000_000), 9),
    }
    for job_id, data in payloads.items():
        conn.hset(f"rq:job:{job_id}", mapping={**fields, b"data": data})
        conn.rpush("rq:queue:sized", job_id)
    after = queue.enqueue(ECHO, "after")
    result = worker.run_burst("sized", "--forward-unknown", "python-sized")
    assert after.get_status(refresh=True) == JobStatus.FINISHED
    assert conn.lrange("rq:queue:python-sized", 0, -1) == [j.encode() for j in payloads]
    for job_id, data in payloads.items():
        assert conn.hget(f"rq:job:{job_id}", "data") == data, "forwarded intact"
        assert conn.hget(f"rq:job:{job_id}", "status") == b"queued"
        assert conn.hget(f"rq:job:{job_id}", "origin") == b"python-sized"
        assert conn.zscore("rq:failed:sized", job_id) is None
    assert conn.zcard("rq:wip:sized") == 0
    for limit in ("--max-payload-bytes", "--max-inflated-bytes", "--max-decoded-bytes"):
        assert limit in result.stderr, result.stderr


def test_a_job_key_replaced_while_it_runs(queue, worker, conn):
    """A producer replaces a running job's hash with a string: the heartbeats of the worker and
    of the other running job go on (heartbeat.lua), and finish.lua treats the job as deleted
    (nothing half-written, nothing left in the StartedJobRegistry)."""
    doomed = queue.enqueue(SLEEP, 3, job_timeout=30)
    other = queue.enqueue(SLEEP, 3, job_timeout=30)
    handle = worker.start("default", "--name", "w-replaced", "-c", "2", "--job-monitoring-interval", "1")
    wait_for(lambda: doomed.get_status(refresh=True) == JobStatus.STARTED
             and other.get_status(refresh=True) == JobStatus.STARTED, timeout=15, message="both running")
    conn.delete(f"rq:job:{doomed.id}")
    conn.set(f"rq:job:{doomed.id}", "not a hash any more")
    wait_for(lambda: other.get_status(refresh=True) == JobStatus.FINISHED, timeout=15, message="other job")
    wait_for(lambda: conn.zcard("rq:wip:default") == 0, timeout=10, message="wip empty")
    handle.stop()
    assert conn.get(f"rq:job:{doomed.id}") == b"not a hash any more"
    out, err = handle.output()
    assert "heartbeat failed" not in err, err
    assert "the job hash was deleted while the job ran" in err, err
    assert "panicked" not in out + err


def test_a_queue_key_of_the_wrong_type_does_not_stop_the_other_queues(conn, worker):
    """A queue key that is not a list (a producer's SET) is refused in the start script, which
    goes on with the next queue in the same call; the refusal is logged (once a minute)."""
    conn.set("rq:queue:broken", "not a list")
    good = Queue("good", connection=conn)
    jobs = [good.enqueue(ECHO, i) for i in range(5)]
    result = worker.run_burst(["broken", "good"], "-c", "4")
    for job in jobs:
        assert job.get_status(refresh=True) == JobStatus.FINISHED
    assert conn.get("rq:queue:broken") == b"not a list"
    assert result.stderr.count("queue refused: its jobs cannot be taken") == 1, result.stderr


@pytest.mark.skipif(tuple(int(p) for p in __import__("rq").__version__.split(".")[:2]) < (3, 0),
                    reason="rate limits appeared in rq 3.0")
def test_a_rate_limited_job_whose_key_is_unusable_is_skipped_not_the_others(queue, worker, conn):
    """rq 3.0 rate limits: when a finished job promotes the next waiting one, a waiting id
    whose hash was replaced by a string is dropped (named in the log) and the next one is
    promoted; the finishing job's outcome is written in full."""
    from rq.rate_limit import RateLimit

    jobs = [queue.enqueue(NOOP, rate_limit=RateLimit("tenant-bad", 1)) for _ in range(3)]
    assert [j.get_status() for j in jobs].count(JobStatus.RATE_LIMITED) == 2
    conn.delete(f"rq:job:{jobs[1].id}")
    conn.set(f"rq:job:{jobs[1].id}", "not a hash")
    result = worker.run_burst("default")
    assert jobs[0].get_status(refresh=True) == JobStatus.FINISHED
    assert jobs[2].get_status(refresh=True) == JobStatus.FINISHED
    assert conn.zcard("rq:rl:tenant-bad:allowed") == 0 and conn.zcard("rq:rl:tenant-bad:rate_limited") == 0
    assert f"rate-limited job {jobs[1].id} dropped: its key is not a hash" in result.stderr, result.stderr
