"""Dependencies: dependents run after their parent succeeds, in their own queue; a failed
parent leaves them deferred unless they allow failures."""

from rq import Queue
from rq.job import Dependency, Job, JobStatus

from compat import ECHO, FAIL, NOOP, SLEEP, utc


def test_dependent_runs_after_parent(queue, worker, conn):
    a = queue.enqueue(SLEEP, 0.05)
    b = queue.enqueue(ECHO, "b", depends_on=a)
    assert b.get_status() == JobStatus.DEFERRED
    assert queue.deferred_job_registry.get_job_ids() == [b.id]
    assert queue.get_job_ids() == [a.id]

    worker.run_burst("default")

    a, b = Job.fetch(a.id, connection=conn), Job.fetch(b.id, connection=conn)
    assert a.get_status() == JobStatus.FINISHED
    assert b.get_status() == JobStatus.FINISHED
    assert b.return_value() == {"args": ["b"], "kwargs": {}}
    assert utc(a.ended_at) <= utc(b.started_at)
    assert queue.deferred_job_registry.get_job_ids() == []
    assert sorted(queue.finished_job_registry.get_job_ids()) == sorted([a.id, b.id])


def test_cross_queue_dependent_is_enqueued_in_its_own_queue(queue, worker, conn):
    other = Queue("other", connection=conn)
    a = queue.enqueue(NOOP)
    c = other.enqueue(ECHO, "c", depends_on=a)
    assert other.deferred_job_registry.get_job_ids() == [c.id]

    worker.run_burst("default")  # listens on "default" only

    assert a.get_status() == JobStatus.FINISHED
    assert c.get_status() == JobStatus.QUEUED
    assert other.get_job_ids() == [c.id]
    assert queue.get_job_ids() == []
    assert other.deferred_job_registry.get_job_ids() == []

    worker.run_burst("other")
    assert c.get_status() == JobStatus.FINISHED
    assert c.return_value() == {"args": ["c"], "kwargs": {}}


def test_dependents_in_both_queues_run_in_one_burst(queue, worker, conn):
    other = Queue("other", connection=conn)
    a = queue.enqueue(SLEEP, 0.05)
    b = queue.enqueue(NOOP, depends_on=a)
    c = other.enqueue(NOOP, depends_on=a)

    worker.run_burst(["default", "other"])

    for job in (a, b, c):
        assert job.get_status() == JobStatus.FINISHED, job.id
    a = Job.fetch(a.id, connection=conn)
    for dependent in (b, c):
        assert utc(a.ended_at) <= utc(Job.fetch(dependent.id, connection=conn).started_at)


def test_multiple_parents_wait_for_all(queue, worker, conn):
    a = queue.enqueue(NOOP)
    b = queue.enqueue(SLEEP, 0.05)
    c = queue.enqueue(NOOP, depends_on=[a, b])

    worker.run_burst("default")

    assert c.get_status() == JobStatus.FINISHED
    b = Job.fetch(b.id, connection=conn)
    assert utc(b.ended_at) <= utc(Job.fetch(c.id, connection=conn).started_at)


def test_dependent_of_failed_parent_stays_deferred(queue, worker):
    a = queue.enqueue(FAIL, message="parent failed")
    b = queue.enqueue(NOOP, depends_on=a)

    worker.run_burst("default")

    assert a.get_status() == JobStatus.FAILED
    assert b.get_status() == JobStatus.DEFERRED
    assert queue.deferred_job_registry.get_job_ids() == [b.id]
    assert queue.get_job_ids() == []
    assert queue.finished_job_registry.get_job_ids() == []


def test_allow_failure_dependent_runs_after_failed_parent(queue, worker, conn):
    a = queue.enqueue(FAIL, message="parent failed")
    b = queue.enqueue(ECHO, "b", depends_on=Dependency(jobs=[a], allow_failure=True))
    assert b.get_status() == JobStatus.DEFERRED

    worker.run_burst("default")

    assert a.get_status() == JobStatus.FAILED
    assert b.get_status() == JobStatus.FINISHED
    assert b.return_value() == {"args": ["b"], "kwargs": {}}
    a = Job.fetch(a.id, connection=conn)
    assert utc(a.ended_at) <= utc(Job.fetch(b.id, connection=conn).started_at)
    assert queue.deferred_job_registry.get_job_ids() == []
