"""--concurrency (rqw only): several jobs run at once in one worker."""

import pytest
from rq import Worker
from rq.job import Job, JobStatus

from compat import SLEEP, utc


@pytest.mark.rqw_only("rq's forking Worker runs one job at a time; rqw has --concurrency")
def test_concurrent_jobs_overlap(queue, worker, conn):
    jobs = [queue.enqueue(SLEEP, 1) for _ in range(4)]
    worker.run_burst("default", "--concurrency", "4", "--name", "w-conc")

    jobs = [Job.fetch(j.id, connection=conn) for j in jobs]
    assert all(j.get_status() == JobStatus.FINISHED for j in jobs)
    # All four were running at the same moment: every start precedes every end.
    assert max(utc(j.started_at) for j in jobs) < min(utc(j.ended_at) for j in jobs)
    assert len({j.worker_name for j in jobs}) == 1
    w = Worker.find_by_key(Worker.redis_worker_namespace_prefix + "w-conc", connection=conn)
    assert w.successful_job_count == 4
