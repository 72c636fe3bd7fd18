"""Dependencies: dependents run after their parent succeeds, in their own queue; a failed
parent leaves them deferred unless they allow failures."""

from rq import Queue
from rq.job import Dependency, Job, JobStatus

from compat import DEFAULT_FAILURE_TTL, ECHO, FAIL, NOOP, SLEEP, utc


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


# --------------------------------------------------------------------------- key TTLs
# Job.cleanup gives a job's dependents set (rq:job:<id>:dependents) and dependencies set
# (rq:job::<id>:dependencies) the job's result_ttl / failure_ttl. rqw issues those EXPIREs only
# when the set can exist; these tests pin the resulting TTLs, as RQ's worker leaves them.


def dependents_key(job_id):
    return f"rq:job:{job_id}:dependents"


def dependencies_key(job_id):
    return f"rq:job::{job_id}:dependencies"


def assert_ttl(conn, key, ttl):
    assert ttl - 30 < conn.ttl(key) <= ttl, f"{key}: ttl {conn.ttl(key)}, expected about {ttl}"


def test_finished_job_sets_keep_the_result_ttl(queue, worker, conn):
    other = Queue("other", connection=conn)
    a = queue.enqueue(NOOP, result_ttl=300)
    c = other.enqueue(NOOP)
    b = queue.enqueue(NOOP, depends_on=[a, c], result_ttl=200)

    worker.run_burst("default")  # a runs; b still waits for c

    assert a.get_status() == JobStatus.FINISHED
    assert b.get_status() == JobStatus.DEFERRED
    assert_ttl(conn, a.key, 300)
    assert conn.smembers(dependents_key(a.id)) == {b.id.encode()}
    assert_ttl(conn, dependents_key(a.id), 300)  # b stayed in it: it keeps a's TTL
    assert conn.ttl(dependencies_key(b.id)) == -1

    worker.run_burst("other")  # c runs: b is enqueued, c's dependents set is gone
    assert c.get_status() == JobStatus.FINISHED
    assert b.get_status() == JobStatus.QUEUED
    assert conn.exists(dependents_key(c.id)) == 0

    worker.run_burst("default")  # b runs: its dependencies set takes its result_ttl
    assert b.get_status() == JobStatus.FINISHED
    assert_ttl(conn, b.key, 200)
    assert conn.smembers(dependencies_key(b.id)) == {a.id.encode(), c.id.encode()}
    assert_ttl(conn, dependencies_key(b.id), 200)
    assert conn.exists(dependents_key(b.id)) == 0


def test_job_without_dependencies_leaves_no_dependency_keys(queue, worker, conn):
    job = queue.enqueue(NOOP, result_ttl=300)
    worker.run_burst("default")

    assert job.get_status() == JobStatus.FINISHED
    assert_ttl(conn, job.key, 300)
    assert conn.exists(dependents_key(job.id), dependencies_key(job.id)) == 0


def test_failed_job_sets_keep_the_failure_ttl(queue, worker, conn):
    a = queue.enqueue(FAIL, message="parent failed", failure_ttl=300)
    b = queue.enqueue(NOOP, depends_on=a)

    worker.run_burst("default")

    assert a.get_status() == JobStatus.FAILED
    assert b.get_status() == JobStatus.DEFERRED
    assert_ttl(conn, a.key, 300)
    assert conn.smembers(dependents_key(a.id)) == {b.id.encode()}
    assert_ttl(conn, dependents_key(a.id), 300)


def test_failed_dependent_keeps_its_dependencies_for_the_failure_ttl(queue, worker, conn):
    a = queue.enqueue(NOOP)
    b = queue.enqueue(FAIL, message="dependent failed", depends_on=a, failure_ttl=400)
    c = queue.enqueue(FAIL, message="default ttl", depends_on=a)

    worker.run_burst("default")

    assert b.get_status() == JobStatus.FAILED
    assert c.get_status() == JobStatus.FAILED
    assert conn.exists(dependents_key(a.id)) == 0  # both were enqueued
    assert_ttl(conn, b.key, 400)
    assert_ttl(conn, dependencies_key(b.id), 400)
    assert_ttl(conn, dependencies_key(c.id), DEFAULT_FAILURE_TTL)
    assert conn.exists(dependents_key(b.id), dependents_key(c.id)) == 0


def test_result_ttl_zero_parent_deletes_its_sets(queue, worker, conn):
    other = Queue("other", connection=conn)
    a = queue.enqueue(NOOP, result_ttl=0)
    c = other.enqueue(NOOP)
    b = queue.enqueue(NOOP, depends_on=[a, c])

    worker.run_burst("default")

    assert conn.exists(a.key, dependents_key(a.id), dependencies_key(a.id)) == 0
    assert b.get_status() == JobStatus.DEFERRED


def test_enqueued_dependent_with_ttl_keeps_it_on_its_sets(queue, worker, conn):
    other = Queue("other", connection=conn)
    a = queue.enqueue(NOOP)
    b = other.enqueue(NOOP, depends_on=a, ttl=600)

    worker.run_burst("default")

    assert b.get_status() == JobStatus.QUEUED
    assert_ttl(conn, b.key, 600)
    assert conn.smembers(dependencies_key(b.id)) == {a.id.encode()}
    assert_ttl(conn, dependencies_key(b.id), 600)
