"""Job callbacks (on_success / on_failure / on_stopped), Repeat (2.12+) and rate limits (3.0)."""

import pytest
from rq.job import Callback, Job, JobStatus
from rq.registry import FailedJobRegistry

from compat import ECHO, FAIL, NOOP, RQ_VERSION, last_line

LOG = "rqw.testing.callback_log"
BAD = "rqw.testing.callback_fail"


def test_success_callback_runs_and_job_finishes(queue, worker):
    job = queue.enqueue(ECHO, 1, on_success=Callback(LOG), on_failure=Callback(BAD))
    proc = worker.run_burst("default")
    assert job.get_status() == JobStatus.FINISHED
    assert job.return_value() == {"args": [1], "kwargs": {}}
    if worker.kind == "rqw":
        assert f"callback for job {job.id}" in proc.stderr


def test_failing_success_callback_fails_the_job(queue, worker, conn):
    job = queue.enqueue(NOOP, on_success=Callback(BAD))
    worker.run_burst("default")
    assert job.get_status() == JobStatus.FAILED
    assert job.id in FailedJobRegistry(queue=queue).get_job_ids()
    assert last_line(Job.fetch(job.id, connection=conn).exc_info) == "RuntimeError: callback failed"


def test_unknown_success_callback_fails_the_job_naming_it(queue, worker, conn):
    job = queue.enqueue(NOOP, on_success=Callback("no.such.module.callback"))
    worker.run_burst("default")
    assert job.get_status() == JobStatus.FAILED
    assert "no.such.module.callback" in Job.fetch(job.id, connection=conn).exc_info


def test_failing_failure_callback_replaces_the_exception(queue, worker, conn):
    job = queue.enqueue(FAIL, message="boom", on_failure=Callback(BAD))
    worker.run_burst("default")
    assert job.get_status() == JobStatus.FAILED
    assert last_line(Job.fetch(job.id, connection=conn).exc_info) == "RuntimeError: callback failed"


def test_failure_callback_runs_and_keeps_the_exception(queue, worker, conn):
    job = queue.enqueue(FAIL, message="boom", on_failure=Callback(LOG))
    worker.run_burst("default")
    assert last_line(Job.fetch(job.id, connection=conn).exc_info) == "RuntimeError: boom"


@pytest.mark.skipif(RQ_VERSION < (2, 12, 0), reason="Repeat appeared in rq 2.3")
def test_repeat_runs_the_job_again(queue, worker, conn):
    from rq import Repeat

    job = queue.enqueue(ECHO, 7, repeat=Repeat(times=2))
    worker.run_burst("default")
    job = Job.fetch(job.id, connection=conn)
    assert job.get_status() == JobStatus.FINISHED
    assert job.repeats_left == 0
    assert len(job.results()) == 3
    assert job.return_value() == {"args": [7], "kwargs": {}}


@pytest.mark.skipif(RQ_VERSION < (2, 12, 0), reason="Repeat appeared in rq 2.3")
def test_repeat_with_interval_is_scheduled(queue, worker, conn):
    from rq import Repeat
    from rq.registry import ScheduledJobRegistry

    job = queue.enqueue(ECHO, 7, repeat=Repeat(times=1, interval=60))
    worker.run_burst("default")
    job = Job.fetch(job.id, connection=conn)
    assert job.get_status() == JobStatus.SCHEDULED
    assert job.id in ScheduledJobRegistry(queue=queue).get_job_ids()
    assert job.repeats_left == 0


@pytest.mark.skipif(RQ_VERSION < (3, 0, 0), reason="rate limits appeared in rq 3.0")
def test_rate_limited_jobs_are_released_and_promoted(queue, worker, conn):
    from rq.rate_limit import RateLimit

    jobs = [queue.enqueue(NOOP, rate_limit=RateLimit("tenant-1", 1)) for _ in range(3)]
    assert [j.get_status() for j in jobs].count(JobStatus.RATE_LIMITED) == 2
    worker.run_burst("default")
    assert [j.get_status() for j in jobs] == [JobStatus.FINISHED] * 3
    assert conn.zcard("rq:rl:tenant-1:allowed") == 0
    assert conn.zcard("rq:rl:tenant-1:rate_limited") == 0


@pytest.mark.skipif(RQ_VERSION < (3, 0, 0), reason="rate limits appeared in rq 3.0")
def test_failed_rate_limited_jobs_release_their_slot_after_the_last_attempt(queue, worker, conn):
    from rq import Retry
    from rq.rate_limit import RateLimit

    jobs = [queue.enqueue(FAIL, message="no", rate_limit=RateLimit("tenant-f", 1), retry=Retry(max=1))
            for _ in range(3)]
    assert [j.get_status() for j in jobs].count(JobStatus.RATE_LIMITED) == 2
    worker.run_burst("default")
    assert [j.get_status() for j in jobs] == [JobStatus.FAILED] * 3
    assert [j.retries_left for j in (Job.fetch(j.id, connection=conn) for j in jobs)] == [0] * 3
    assert conn.zcard("rq:rl:tenant-f:allowed") == 0
    assert conn.zcard("rq:rl:tenant-f:rate_limited") == 0
