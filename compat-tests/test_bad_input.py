"""Bad input: broken jobs written straight into Redis (HSET rq:job:<id> + RPUSH), as a buggy or
hostile producer could. Each one fails alone with a clear exception text (read through rq's
API), a good job queued right behind it finishes, nothing in a payload ever runs (a pickle
that calls os.system leaves no file behind), and rqw never panics.

One worker run (`--burst`) takes the whole corpus, bad and good jobs interleaved; the
parametrized tests then check one case each.
"""

import os
import pickle
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

from compat import ECHO, SLEEP, last_line, wait_for
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


def deep_list(levels):
    # PROTO 5, then `levels` x (EMPTY_LIST, MARK), closed by APPENDS, STOP.
    return b"\x80\x05" + b"](" * levels + b"e" * levels + b"."


NAN_SET_PICKLE = (Path(__file__).resolve().parent.parent / "tests" / "fuzz" / "corpus" / "pickle_decode"
                  / "seed_regression_nan_set_job").read_bytes()

# name -> (field overrides, or None to delete a field, expected status, text expected in the last line)
CASES = {
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
    return result.exc_string if result is not None else None


@pytest.fixture(scope="module")
def corpus(redis_server, tmp_path_factory):
    """Writes the corpus (each bad job followed by a good one), runs one burst worker."""
    conn = redis.Redis.from_url(redis_server.url)
    conn.flushall()
    queue = Queue(QUEUE, connection=conn)
    template = queue.enqueue(ECHO, "template")
    fields = conn.hgetall(f"rq:job:{template.id}")
    conn.delete(f"rq:job:{template.id}")
    conn.delete(f"rq:queue:{QUEUE}")
    good = {}
    for name, (overrides, _, _) in CASES.items():
        job_id = f"bad-{name}"
        mapping = {**fields, b"origin": QUEUE.encode()}
        for key, value in overrides.items():
            if value is None:
                mapping.pop(key.encode(), None)
            else:
                mapping[key.encode()] = value
        conn.hset(f"rq:job:{job_id}", mapping=mapping)
        conn.rpush(f"rq:queue:{QUEUE}", job_id)
        good[name] = queue.enqueue(ECHO, name)
    # An id whose hash is gone: skipped, never stuck.
    conn.rpush(f"rq:queue:{QUEUE}", "bad-hash-is-missing")
    last = queue.enqueue(ECHO, "last")

    runner = WorkerRunner(redis_server.url, tmp_path_factory.mktemp("bad-input"))
    result = runner.run_burst(QUEUE, "--name", "w-bad-input", timeout=120)
    yield conn, good, last, result
    conn.close()


@pytest.mark.parametrize("name", list(CASES))
def test_broken_job_fails_alone_with_a_clear_text(corpus, name):
    conn, good, _, _ = corpus
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
    conn, _, last, result = corpus
    assert not os.path.exists(MARKER), "a pickled os.system call was executed"
    assert last.get_status(refresh=True) == JobStatus.FINISHED
    assert conn.llen(f"rq:queue:{QUEUE}") == 0
    assert conn.llen(f"rq:queue:{QUEUE}:intermediate") == 0
    assert conn.zcard(f"rq:wip:{QUEUE}") == 0
    output = result.stdout + result.stderr
    assert "panicked" not in output and "panic=" not in output, output[-3000:]


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
    worker.run_burst("odd")
    assert after.get_status(refresh=True) == JobStatus.FINISHED  # the worker went on (true today)
    assert conn.hget(b"rq:job:odd-\xff", "status") == b"failed"
    assert conn.zscore("rq:failed:odd", b"odd-\xff") is not None
