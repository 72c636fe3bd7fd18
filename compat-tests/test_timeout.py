"""Job timeouts: the job fails with RQ's JobTimeoutException text and the worker goes on."""

from rq.job import JobStatus

from compat import NOOP, SLEEP, last_line, utc


def test_job_timeout_fails_the_job(queue, worker):
    job = queue.enqueue(SLEEP, 30, job_timeout=1)
    after = queue.enqueue(NOOP)
    worker.run_burst("default", timeout=25)  # finishing at all proves the sleep was cut short

    assert job.get_status() == JobStatus.FAILED
    assert job.id in queue.failed_job_registry.get_job_ids()
    assert last_line(job.latest_result().exc_string) == (
        "rq.timeouts.JobTimeoutException: Task exceeded maximum timeout value (1 seconds)"
    )
    assert last_line(job.exc_info).endswith("JobTimeoutException: Task exceeded maximum timeout value (1 seconds)")
    job.refresh()
    assert (utc(job.ended_at) - utc(job.started_at)).total_seconds() < 20
    assert after.get_status() == JobStatus.FINISHED
