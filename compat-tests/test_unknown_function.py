"""A function path the worker cannot run fails visibly and can be requeued."""

from rq.job import JobStatus
from rq.registry import FailedJobRegistry

from compat import NOOP, rq_cli

MISSING = "no.such.module.func"


def test_unknown_function_fails_visibly(queue, worker):
    job = queue.enqueue(MISSING, 1, key="v")
    after = queue.enqueue(NOOP)
    worker.run_burst("default")

    assert job.get_status() == JobStatus.FAILED
    assert queue.failed_job_registry.get_job_ids() == [job.id]
    # Python says "ValueError: Invalid attribute name: no.such.module.func"; rqw names the path too.
    assert MISSING in job.exc_info
    assert MISSING in job.latest_result().exc_string
    assert after.get_status() == JobStatus.FINISHED


def test_unknown_function_can_be_requeued(queue, worker):
    job = queue.enqueue(MISSING)
    worker.run_burst("default")
    assert job.get_status() == JobStatus.FAILED

    FailedJobRegistry(queue=queue).requeue(job.id)

    assert job.get_status() == JobStatus.QUEUED
    assert queue.get_job_ids() == [job.id]
    assert queue.failed_job_registry.get_job_ids() == []

    worker.run_burst("default")  # fails again, back in the failed registry
    assert job.get_status() == JobStatus.FAILED
    assert queue.failed_job_registry.get_job_ids() == [job.id]


def test_rq_requeue_all_cli(queue, worker, url):
    jobs = [queue.enqueue(MISSING), queue.enqueue(MISSING)]
    worker.run_burst("default")
    assert sorted(queue.failed_job_registry.get_job_ids()) == sorted(j.id for j in jobs)

    proc = rq_cli(url, "requeue", "--queue", "default", "--all")
    assert proc.returncode == 0, proc.stderr

    assert sorted(queue.get_job_ids()) == sorted(j.id for j in jobs)
    assert queue.failed_job_registry.get_job_ids() == []
    assert all(j.get_status() == JobStatus.QUEUED for j in jobs)
