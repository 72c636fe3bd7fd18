"""Successful jobs: return values round-trip through pickle, status, registries, result TTLs."""

import pytest
from rq import Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.results import Result

from compat import DEFAULT_RESULT_TTL, ECHO, NOOP, now_utc, strict_diff, utc

BIG = 2**64 + 1

# (label, args, kwargs): rqw.testing.echo returns {"args": list(args), "kwargs": kwargs}.
ECHO_CASES = [
    ("small ints", (0, 1, -1, 255, 256, -256, 65535, 65536), {}),
    ("wide ints", (2**31 - 1, -(2**31), 2**31, 2**63 - 1, -(2**63), 2**64 - 1), {}),
    ("big ints", (BIG, -BIG, 2**200, -(10**40)), {}),
    ("floats", (0.0, 1.5, -2.25, 0.1, 1e300, -1e-300, float("inf"), float("-inf")), {}),
    ("str", ("", "hello", "héllo wörld", "日本語", "emoji 🎉", "nul\x00byte", "x" * 300), {}),
    ("bytes", (b"", b"\x00\xff", bytes(range(256)), b"y" * 300), {}),
    ("none and bools", (None, True, False), {}),
    ("lists", ([], [1, "a", None], [[1, [2, [3]]]], list(range(1500))), {}),
    ("tuples", ((), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), ((1, 2), [3, (4,)])), {}),
    ("dicts", ({}, {"a": 1}, {1: "int key"}, {"k%d" % i: i for i in range(1500)}), {}),
    ("nested", ({"users": [{"id": 1, "tags": ("a", "b"), "score": 9.5, "raw": b"\x01"}], "next": None},), {}),
    ("kwargs only", (), {"call_sid": "CA123", "business_id": 42, "from_number": "", "recording_sid": None}),
    ("args and kwargs", ("CA1", "https://example.invalid/r.mp3"), {"business_id": 7, "flags": [True, False]}),
    ("sets", ({1, 2, 3}, frozenset({"a"}), set()), {}),
]


def test_echo_round_trips_python_values(queue, worker):
    jobs = [(label, args, kwargs, queue.enqueue(ECHO, args=args, kwargs=kwargs)) for label, args, kwargs in ECHO_CASES]
    worker.run_burst("default")

    problems = []
    for label, args, kwargs, job in jobs:
        status = job.get_status()
        if status != JobStatus.FINISHED:
            problems.append(f"{label}: status {status}, exc_info={job.exc_info!r}")
            continue
        diff = strict_diff({"args": list(args), "kwargs": kwargs}, job.return_value())
        if diff:
            problems.append(f"{label}: {diff}")
        result = job.latest_result()
        if result is None or result.type != Result.Type.SUCCESSFUL:
            problems.append(f"{label}: latest_result {result!r}")
    assert not problems, "\n".join(problems)


def test_noop_returns_none(queue, worker, conn):
    before = now_utc()
    job = queue.enqueue(NOOP)
    worker.run_burst("default", "--name", "w-noop")

    job = Job.fetch(job.id, connection=conn)
    assert job.get_status() == JobStatus.FINISHED
    assert job.return_value() is None
    result = job.latest_result()
    assert result.type == Result.Type.SUCCESSFUL
    assert result.return_value is None
    assert len(job.results()) == 1
    assert job.worker_name == "w-noop"
    assert before <= utc(job.enqueued_at) <= utc(job.started_at) <= utc(job.ended_at) <= now_utc()


def test_registries_after_success(queue, worker):
    job = queue.enqueue(NOOP)
    assert queue.get_job_ids() == [job.id]
    worker.run_burst("default")

    assert queue.get_job_ids() == []
    assert queue.count == 0
    assert queue.finished_job_registry.get_job_ids() == [job.id]
    assert queue.started_job_registry.get_job_ids() == []
    assert queue.failed_job_registry.get_job_ids() == []
    assert job.get_status() == JobStatus.FINISHED


def test_default_result_ttl(queue, worker, conn):
    job = queue.enqueue(ECHO, 1)
    worker.run_burst("default")

    assert job.get_status() == JobStatus.FINISHED
    assert DEFAULT_RESULT_TTL - 30 < conn.ttl(job.key) <= DEFAULT_RESULT_TTL
    assert job.return_value() == {"args": [1], "kwargs": {}}


def test_worker_results_ttl_option(queue, worker, conn):
    job = queue.enqueue(NOOP)
    worker.run_burst("default", "--results-ttl", "100")

    assert job.get_status() == JobStatus.FINISHED
    assert 70 < conn.ttl(job.key) <= 100


def test_job_result_ttl_overrides_worker_default(queue, worker, conn):
    job = queue.enqueue(NOOP, result_ttl=200)
    worker.run_burst("default", "--results-ttl", "100")

    assert 170 < conn.ttl(job.key) <= 200


def test_result_ttl_zero_deletes_job(queue, worker, conn):
    job = queue.enqueue(ECHO, "gone", result_ttl=0)
    worker.run_burst("default", "--name", "w-ttl0")

    with pytest.raises(NoSuchJobError):
        Job.fetch(job.id, connection=conn)
    assert queue.finished_job_registry.get_job_ids() == []
    assert queue.failed_job_registry.get_job_ids() == []
    # It did run: the worker counted a success.
    w = Worker.find_by_key(Worker.redis_worker_namespace_prefix + "w-ttl0", connection=conn)
    assert w is not None and w.successful_job_count == 1


def test_result_ttl_minus_one_persists(queue, worker, conn):
    job = queue.enqueue(ECHO, "keep", result_ttl=-1)
    worker.run_burst("default")

    job = Job.fetch(job.id, connection=conn)
    assert job.get_status() == JobStatus.FINISHED
    assert conn.ttl(job.key) == -1
    assert job.return_value() == {"args": ["keep"], "kwargs": {}}
    assert job.id in queue.finished_job_registry.get_job_ids()


def test_job_fields_survive_the_worker(queue, worker, conn):
    """The worker re-saves the job hash: what the producer set must read back unchanged
    (the recording-download style enqueue: custom id, '10m' timeout, failure_ttl, meta)."""
    job_id = "recording_download_CA0123456789_1700000000000"
    job = queue.enqueue(
        ECHO, "CA0123456789", "https://example.invalid/rec.mp3", business_id=42,
        job_id=job_id, job_timeout="10m", failure_ttl=3600, result_ttl=900,
        description="download CA0123456789", meta={"tenant": 42, "tags": ["a", "b"]},
    )
    worker.run_burst("default")

    job = Job.fetch(job_id, connection=conn)
    assert job.get_status() == JobStatus.FINISHED
    assert job.id == job_id
    assert job.func_name == ECHO
    assert job.args == ("CA0123456789", "https://example.invalid/rec.mp3")
    assert job.kwargs == {"business_id": 42}
    assert job.timeout == 600
    assert job.failure_ttl == 3600
    assert job.result_ttl == 900
    assert job.origin == "default"
    assert job.description == "download CA0123456789"
    assert job.meta == {"tenant": 42, "tags": ["a", "b"]}
    assert job.get_meta() == {"tenant": 42, "tags": ["a", "b"]}
    assert job.return_value() == {"args": ["CA0123456789", "https://example.invalid/rec.mp3"],
                                  "kwargs": {"business_id": 42}}


def test_producer_waits_for_result_with_latest_result_timeout(queue, worker):
    handle = worker.start("default")
    job = queue.enqueue(ECHO, "waited")
    result = job.latest_result(timeout=20)  # XREAD BLOCK on the results stream

    assert result is not None
    assert result.type == Result.Type.SUCCESSFUL
    assert result.return_value == {"args": ["waited"], "kwargs": {}}
    assert handle.stop().returncode == 0
