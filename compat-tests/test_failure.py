"""Failing jobs: status, FailedJobRegistry, exception text, failure TTLs."""

from rq import Worker
from rq.job import Job, JobStatus
from rq.results import Result

from compat import DEFAULT_FAILURE_TTL, FAIL, NOOP, last_line, utc


def test_failure_is_recorded(queue, worker, conn):
    job = queue.enqueue(FAIL, message="boom")
    worker.run_burst("default", "--name", "w-fail")

    job = Job.fetch(job.id, connection=conn)
    assert job.get_status() == JobStatus.FAILED
    assert job.is_failed
    assert queue.failed_job_registry.get_job_ids() == [job.id]
    assert queue.finished_job_registry.get_job_ids() == []
    assert queue.started_job_registry.get_job_ids() == []
    assert queue.get_job_ids() == []

    assert last_line(job.exc_info) == "RuntimeError: boom"
    result = job.latest_result()
    assert result.type == Result.Type.FAILED
    assert last_line(result.exc_string) == "RuntimeError: boom"
    assert job.return_value() is None
    assert len(job.results()) == 1
    assert job.worker_name == "w-fail"
    assert utc(job.started_at) <= utc(job.ended_at)


def test_unicode_exception_message(queue, worker):
    job = queue.enqueue(FAIL, message="bøøm ☃ 日本")
    worker.run_burst("default")

    assert job.get_status() == JobStatus.FAILED
    assert last_line(job.latest_result().exc_string) == "RuntimeError: bøøm ☃ 日本"


def test_failure_ttl_respected(queue, worker, conn):
    job = queue.enqueue(FAIL, message="boom", failure_ttl=100)
    worker.run_burst("default")

    assert job.get_status() == JobStatus.FAILED
    assert 70 < conn.ttl(job.key) <= 100
    assert job.id in queue.failed_job_registry.get_job_ids()


def test_default_failure_ttl_is_one_year(queue, worker, conn):
    job = queue.enqueue(FAIL, message="boom")
    worker.run_burst("default")

    assert DEFAULT_FAILURE_TTL - 60 < conn.ttl(job.key) <= DEFAULT_FAILURE_TTL


def test_failure_does_not_stop_the_worker(queue, worker, conn):
    failed = queue.enqueue(FAIL, message="first")
    ok = queue.enqueue(NOOP)
    worker.run_burst("default", "--name", "w-go-on")

    assert failed.get_status() == JobStatus.FAILED
    assert ok.get_status() == JobStatus.FINISHED
    w = Worker.find_by_key(Worker.redis_worker_namespace_prefix + "w-go-on", connection=conn)
    assert (w.successful_job_count, w.failed_job_count) == (1, 1)
