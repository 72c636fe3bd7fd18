"""Helpers of the duty tests (scheduler, maintenance, mixed runs): a real Python `rq worker`
beside the worker under test, and a simulated dead worker's leftovers.

`python_worker` runs this venv's `rq worker` whatever WORKER says (with WORKER=python both
sides are Python, which proves the tests' expectations against RQ itself).
"""

import time
import uuid

import pytest
from rq.utils import utcformat

from compat import RQ_VERSION, now_utc
from conftest import WorkerRunner


@pytest.fixture
def python_worker(conn, url, tmp_path):
    runner = WorkerRunner(url, tmp_path / "python-worker")
    (tmp_path / "python-worker").mkdir()
    runner.kind = "python"
    yield runner
    runner.close()


def abandon(conn, queue, job, seconds_ago=10, worker_name="dead-worker"):
    """Makes `job` look started by a worker that died: off the queue, status started, and a
    StartedJobRegistry member whose score expired `seconds_ago`: `<id>:<execution id>` as rq 2.x
    and 3.0 write it, the plain job id as rq 1.x does. Returns the member. Uses raw commands:
    RQ's registry readers would clean it up."""
    execution = uuid.uuid4().hex
    stamp = utcformat(now_utc())
    conn.lrem(queue.key, 1, job.id)
    conn.hset(job.key, mapping={"status": "started", "started_at": stamp, "last_heartbeat": stamp,
                                "worker_name": worker_name})
    member = f"{job.id}:{execution}" if RQ_VERSION >= (2, 0, 0) else job.id
    conn.zadd(f"rq:wip:{queue.name}", {member: int(time.time()) - seconds_ago})
    return member


def latest_result_fields(conn, job_id):
    """The raw fields of the newest entry of `rq:results:<id>` (rq 2.0.0's Result has no
    `worker_name`)."""
    entries = conn.xrevrange(f"rq:results:{job_id}", count=1)
    assert entries, f"no result entry for {job_id}"
    return {k.decode(): v.decode() for k, v in entries[0][1].items()}


def worker_counts(conn, name):
    """(successful_job_count, failed_job_count) of a worker hash, read raw (the hash lingers
    60 s after the worker's death)."""
    ok, failed = conn.hmget(f"rq:worker:{name}", "successful_job_count", "failed_job_count")
    return int(ok or 0), int(failed or 0)
