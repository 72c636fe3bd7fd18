"""The StartedJobRegistry (`rq:wip:<q>`) of a running job, as each rq version's own readers see it.

Its members differ by version: rq 1.x stores the plain job id, rq 2.x and 3.0
`<id>:<execution id>`. rqw writes the plain id for a job enqueued by rq 1.x (its hash has no
`group_id`) and `<id>:<execution id>` otherwise, so `get_job_ids()`, `job in registry` and
`StartedJobRegistry.cleanup` (run by `rq info`, registry counts and every Python worker's
maintenance) read it as they read their own worker's entries. Run with WORKER=python, the
same tests show what rq's own worker writes.
"""

import time

import pytest
from rq.job import JobStatus

from compat import RQ_VERSION, SLEEP, wait_for

# rq 2.0.0 returns its raw `<id>:<execution id>` members from get_job_ids() and looks a job up
# with ZSCORE <id>: its own worker's running jobs are neither listed by id nor `in` it.
RQ_2_0 = RQ_VERSION[:2] == (2, 0)


def _running(queue, worker, *extra):
    job = queue.enqueue(SLEEP, 4)
    worker.start("default", *extra)
    wait_for(lambda: job.get_status() == JobStatus.STARTED, timeout=15, message="job started")
    return job


def test_running_job_is_read_by_rqs_registry_readers(queue, worker, conn):
    job = _running(queue, worker)
    members = [m.decode() for m in conn.zrange("rq:wip:default", 0, -1)]
    assert len(members) == 1
    if RQ_VERSION < (2, 0, 0):
        assert members == [job.id]
    else:
        assert members[0].startswith(job.id + ":") and len(members[0]) > len(job.id) + 1

    registry = queue.started_job_registry
    if RQ_2_0:
        assert registry.get_job_ids() == members
        assert job not in registry
    else:
        assert registry.get_job_ids() == [job.id]
        assert job in registry and job.id in registry
    assert registry.count == 1
    # A reader's cleanup now (what `rq info` runs) leaves a live job alone.
    registry.cleanup()
    assert job.get_status() == JobStatus.STARTED
    assert conn.zcard("rq:wip:default") == 1

    wait_for(lambda: job.get_status() == JobStatus.FINISHED, timeout=15, message="job finished")
    assert conn.zcard("rq:wip:default") == 0
    assert registry.get_job_ids() == []
    assert job.return_value() == 4


def test_heartbeats_keep_the_registry_entry_of_a_running_job_alive(queue, worker, conn):
    job = _running(queue, worker, "--job-monitoring-interval", "1")
    first = conn.zrange("rq:wip:default", 0, -1, withscores=True)
    assert len(first) == 1
    member, score = first[0]
    assert score > time.time()
    wait_for(lambda: (conn.zscore("rq:wip:default", member) or 0) > score, timeout=10,
             message="a heartbeat moved the entry's expiry forward")
    assert conn.zcard("rq:wip:default") == 1  # the same member, not a second one
    wait_for(lambda: job.get_status() == JobStatus.FINISHED, timeout=15, message="job finished")
    assert conn.zcard("rq:wip:default") == 0


@pytest.mark.rqw_only("a job hash without group_id is what rq 1.x enqueues; the 2.x and 3.0 Python workers are not "
                      "meant to read one")
def test_job_enqueued_by_rq_1x_gets_a_plain_id_member_on_every_version(queue, worker, conn):
    # Whatever rq the readers run, a job whose hash has no group_id was enqueued by rq 1.x:
    # rqw enters it under its plain id, which 1.x, 2.0.0, 2.12+ and 3.0 all read back as the id.
    job = queue.enqueue(SLEEP, 4)
    conn.hdel(job.key, "group_id")
    worker.start("default", "--job-monitoring-interval", "1")
    wait_for(lambda: job.get_status() == JobStatus.STARTED, timeout=15, message="job started")
    assert [m.decode() for m in conn.zrange("rq:wip:default", 0, -1)] == [job.id]
    assert queue.started_job_registry.get_job_ids() == [job.id]
    score = conn.zscore("rq:wip:default", job.id)
    wait_for(lambda: (conn.zscore("rq:wip:default", job.id) or 0) > score, timeout=10,
             message="a heartbeat moved the plain member's expiry forward")
    wait_for(lambda: job.get_status() == JobStatus.FINISHED, timeout=15, message="job finished")
    assert conn.zcard("rq:wip:default") == 0
    assert job.return_value() == 4
    assert queue.finished_job_registry.get_job_ids() == [job.id]
