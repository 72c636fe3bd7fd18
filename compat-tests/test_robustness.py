"""Jobs the worker cannot or must not run fail alone: the worker goes on with the next job."""

import datetime as dt

import pytest
from rq import Worker
from rq.job import JobStatus

from compat import ECHO, NOOP, PANIC, last_line


@pytest.mark.rqw_only(
    "RQ unpickles anything (a datetime argument just works); rqw refuses pickle opcodes that "
    "import globals and fails the job with a DeserializationError"
)
def test_unsafe_pickle_payload_fails_only_that_job(queue, worker, conn):
    unsafe = queue.enqueue(ECHO, dt.datetime(2024, 1, 2, 3, 4, 5))
    after = queue.enqueue(ECHO, "next")
    worker.run_burst("default", "--name", "w-unsafe")

    assert unsafe.get_status() == JobStatus.FAILED
    assert unsafe.id in queue.failed_job_registry.get_job_ids()
    text = unsafe.latest_result().exc_string
    assert "DeserializationError" in text or "datetime" in text, text
    assert after.get_status() == JobStatus.FINISHED
    assert after.return_value() == {"args": ["next"], "kwargs": {}}
    w = Worker.find_by_key(Worker.redis_worker_namespace_prefix + "w-unsafe", connection=conn)
    assert (w.successful_job_count, w.failed_job_count) == (1, 1)


@pytest.mark.python_only("documents RQ's behaviour that the rqw-only test above deliberately differs from")
def test_python_worker_accepts_datetime_arguments(queue, worker):
    value = dt.datetime(2024, 1, 2, 3, 4, 5)
    job = queue.enqueue(ECHO, value)
    worker.run_burst("default")

    assert job.get_status() == JobStatus.FINISHED
    assert job.return_value() == {"args": [value], "kwargs": {}}


def test_panicking_handler_fails_only_its_job(queue, worker, conn):
    job = queue.enqueue(PANIC)
    after = queue.enqueue(NOOP)
    worker.run_burst("default", "--name", "w-panic")

    assert job.get_status() == JobStatus.FAILED
    assert job.id in queue.failed_job_registry.get_job_ids()
    # rqw reports a caught panic as rqw.errors.HandlerPanic; the Python twin raises the same type.
    last = last_line(job.latest_result().exc_string)
    assert last.startswith("rqw.errors.HandlerPanic: ") and "rqw.testing.panic was asked to panic" in last, last
    assert after.get_status() == JobStatus.FINISHED
    w = Worker.find_by_key(Worker.redis_worker_namespace_prefix + "w-panic", connection=conn)
    assert (w.successful_job_count, w.failed_job_count) == (1, 1)
