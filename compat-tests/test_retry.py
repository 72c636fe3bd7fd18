"""Retries: immediate re-enqueue, retry with an interval (scheduled), enqueue_at_front_on_retry."""

import datetime as dt

import pytest
from rq import Retry, Worker
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry

from compat import FAIL, SLEEP, last_line, now_utc, utc


def test_retry_max_two_runs_three_times(queue, worker, conn):
    job = queue.enqueue(FAIL, message="again", retry=Retry(max=2))
    worker.run_burst("default", "--name", "w-retry")

    job = Job.fetch(job.id, connection=conn)
    assert job.get_status() == JobStatus.FAILED
    assert job.retries_left == 0
    assert queue.failed_job_registry.get_job_ids() == [job.id]
    assert queue.get_job_ids() == []
    assert last_line(job.latest_result().exc_string) == "RuntimeError: again"
    # Retried attempts leave no Result entry: only the final failure is recorded...
    assert len(job.results()) == 1
    # ...but every attempt counts as a failure for the worker.
    w = Worker.find_by_key(Worker.redis_worker_namespace_prefix + "w-retry", connection=conn)
    assert w.failed_job_count == 3
    assert w.successful_job_count == 0


def test_retry_with_interval_is_scheduled(queue, worker, conn):
    before = now_utc()
    job = queue.enqueue(FAIL, message="later", retry=Retry(max=2, interval=5))
    worker.run_burst("default")  # no scheduler: the job waits in the ScheduledJobRegistry

    job = Job.fetch(job.id, connection=conn)
    assert job.get_status() == JobStatus.SCHEDULED
    assert job.retries_left == 1
    registry = ScheduledJobRegistry(queue=queue)
    assert registry.get_job_ids() == [job.id]
    run_at = utc(registry.get_scheduled_time(job.id))
    assert before + dt.timedelta(seconds=3) <= run_at <= now_utc() + dt.timedelta(seconds=6)
    assert queue.get_job_ids() == []
    assert queue.failed_job_registry.get_job_ids() == []
    assert job.results() == []


def _fetch(job):
    return Job.fetch(job.id, connection=job.connection)


# b and c sleep a little so that every comparison below has a margin even if a worker
# records timestamps at millisecond precision.
def test_retry_goes_to_back_of_queue_by_default(queue, worker):
    a = queue.enqueue(FAIL, message="a", retry=Retry(max=1))
    b = queue.enqueue(SLEEP, 0.05)
    c = queue.enqueue(SLEEP, 0.05)
    worker.run_burst("default")

    a, b, c = _fetch(a), _fetch(b), _fetch(c)
    assert a.get_status() == JobStatus.FAILED
    assert (b.get_status(), c.get_status()) == (JobStatus.FINISHED, JobStatus.FINISHED)
    # started_at of "a" is that of its last (retried) run: after b and c.
    assert utc(b.ended_at) <= utc(c.started_at)
    assert utc(c.ended_at) <= utc(a.started_at)


@pytest.mark.min_rq("2.12.0", reason="Retry(enqueue_at_front=...) appeared in rq 2.12")
def test_enqueue_at_front_on_retry(queue, worker):
    a = queue.enqueue(FAIL, message="a", retry=Retry(max=1, enqueue_at_front=True))
    b = queue.enqueue(SLEEP, 0.05)
    c = queue.enqueue(SLEEP, 0.05)
    worker.run_burst("default")

    a, b, c = _fetch(a), _fetch(b), _fetch(c)
    assert a.get_status() == JobStatus.FAILED
    assert a.retries_left == 0
    # The retried run of "a" jumped ahead of b and c.
    assert utc(a.ended_at) <= utc(b.started_at)
    assert utc(b.ended_at) <= utc(c.started_at)
