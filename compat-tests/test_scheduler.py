"""The scheduler (`--with-scheduler`): enqueue_at / enqueue_in / retry intervals with the worker
under test as the only worker, the burst pass, and the scheduler lock `rq:scheduler-lock:<q>`
against a real Python scheduler (`rq worker --with-scheduler`) in both directions."""

import datetime as dt
import time

import pytest
from rq import Retry
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry

from compat import ECHO, FAIL, RQ_VERSION, SLEEP, WORKER_KIND, last_line, now_utc, utc, wait_for
from duty_helpers import python_worker, worker_counts  # noqa: F401  (fixture)

LOCK = "rq:scheduler-lock:default"


def _status(job):
    return Job.fetch(job.id, connection=job.connection).get_status()


def test_enqueue_in_and_at_run_with_the_scheduler(queue, worker, conn):
    soon = queue.enqueue_in(dt.timedelta(seconds=1), ECHO, "in")
    at = queue.enqueue_at(now_utc() + dt.timedelta(seconds=1), ECHO, "at")
    past = queue.enqueue_at(now_utc() - dt.timedelta(seconds=30), ECHO, "past")
    later = queue.enqueue_in(dt.timedelta(hours=1), ECHO, "later")
    registry = ScheduledJobRegistry(queue=queue)
    assert sorted(registry.get_job_ids()) == sorted(j.id for j in (soon, at, past, later))
    assert soon.get_status() == JobStatus.SCHEDULED

    handle = worker.start("default", "--name", "w-sched", "--with-scheduler")
    for job, arg in ((past, "past"), (soon, "in"), (at, "at")):
        wait_for(lambda: _status(job) == JobStatus.FINISHED, timeout=10, message=f"job {arg} finished")
        job = Job.fetch(job.id, connection=conn)
        assert job.return_value() == {"args": [arg], "kwargs": {}}
        assert len(job.results()) == 1
        assert job.origin == "default"
    # Each ran only once it was due (registry scores are whole seconds, rounded down).
    soon = Job.fetch(soon.id, connection=conn)
    due = (utc(soon.created_at) + dt.timedelta(seconds=1)).replace(microsecond=0)
    assert utc(soon.enqueued_at) >= due
    assert registry.get_job_ids() == [later.id]
    assert _status(later) == JobStatus.SCHEDULED

    assert conn.exists(LOCK)
    assert handle.stop().returncode == 0
    # The lock is released at shutdown, and no scheduler hash is left behind.
    assert not conn.exists(LOCK)
    assert conn.keys("rq:scheduler:*") == []


def test_retry_interval_with_the_scheduler(queue, worker, conn):
    job = queue.enqueue(FAIL, message="flaky", retry=Retry(max=2, interval=1))
    started = time.monotonic()
    handle = worker.start("default", "--name", "w-retry-int", "--with-scheduler")
    wait_for(lambda: _status(job) == JobStatus.FAILED, timeout=15, message="retries exhausted")
    assert time.monotonic() - started >= 1.9  # two intervals of 1 s
    job = Job.fetch(job.id, connection=conn)
    assert job.retries_left == 0
    assert last_line(job.latest_result().exc_string) == "RuntimeError: flaky"
    assert len(job.results()) == 1
    assert queue.failed_job_registry.get_job_ids() == [job.id]
    assert ScheduledJobRegistry(queue=queue).get_job_ids() == []
    assert handle.stop().returncode == 0
    assert worker_counts(conn, "w-retry-int") == (0, 3)


def test_burst_scheduler_pass_runs_before_the_jobs(queue, worker, conn):
    b = queue.enqueue(SLEEP, 0.05)
    c = queue.enqueue(SLEEP, 0.05)
    a = queue.enqueue_at(now_utc() - dt.timedelta(seconds=5), SLEEP, 0.05, at_front=True)
    later = queue.enqueue_in(dt.timedelta(hours=1), SLEEP, 0)
    worker.run_burst("default", "--with-scheduler")

    a, b, c = (Job.fetch(j.id, connection=conn) for j in (a, b, c))
    assert [j.get_status() for j in (a, b, c)] == [JobStatus.FINISHED] * 3
    # enqueue_at(..., at_front=True): the scheduler pushed it to the front of the queue.
    assert utc(a.ended_at) <= utc(b.started_at)
    assert utc(b.ended_at) <= utc(c.started_at)
    assert _status(later) == JobStatus.SCHEDULED
    assert not conn.exists(LOCK)
    assert conn.keys("rq:scheduler:*") == []


def test_burst_without_scheduler_leaves_scheduled_jobs(queue, worker, conn):
    due = queue.enqueue_at(now_utc() - dt.timedelta(seconds=5), ECHO, 1)
    worker.run_burst("default")
    assert _status(due) == JobStatus.SCHEDULED
    assert not conn.exists(LOCK)


@pytest.mark.rqw_only("rqw's lock value is rq 2.12+'s token; rq's own scheduler of a version writes that version's")
def test_queue_scheduler_pid_names_the_worker_from_rq_2_12(queue, worker, conn):
    handle = worker.start("default", "--name", "w-pid", "--with-scheduler")
    wait_for(lambda: conn.exists(LOCK), timeout=10, message="scheduler lock taken")
    if RQ_VERSION >= (2, 12, 0):
        assert queue.scheduler_pid == handle.pid
    else:
        # rq 1.x and 2.0.0 store the scheduler's pid as the lock value and int() it back: the
        # caveat the README states. The lock itself is still refused by their schedulers.
        with pytest.raises(ValueError):
            queue.scheduler_pid
    assert handle.stop().returncode == 0


def _lock_value(conn):
    value = conn.get(LOCK)
    return value.decode() if value is not None else None


def _holds_for(conn, value, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        current = _lock_value(conn)
        assert current == value, f"scheduler lock changed hands: {value!r} -> {current!r}"
        time.sleep(0.05)


def test_lock_held_by_the_worker_keeps_a_python_scheduler_out(queue, worker, python_worker, conn):
    ours = worker.start("default", "--name", "w-first", "--with-scheduler")
    value = wait_for(lambda: _lock_value(conn), timeout=10, message="scheduler lock taken")
    if WORKER_KIND == "rqw":
        # rq 2.12+'s format: a uuid name, and its hash with our pid (Queue.scheduler_pid).
        assert len(value) == 32 and int(value, 16) >= 0
        assert conn.hget(f"rq:scheduler:{value}", "pid") == str(ours.pid).encode()
        assert 55 <= conn.ttl(LOCK) <= 61
    theirs = python_worker.start("default", "--name", "py-second", "--with-scheduler")
    wait_for(lambda: conn.hget("rq:worker:py-second", "state") in (b"idle", b"busy"), timeout=15,
             message="python worker up")
    _holds_for(conn, value, 2.5)

    job = queue.enqueue_in(dt.timedelta(seconds=1), ECHO, "once")
    wait_for(lambda: _status(job) == JobStatus.FINISHED, timeout=10, message="scheduled job ran")
    assert len(Job.fetch(job.id, connection=conn).results()) == 1

    # The Python worker leaves without touching a lock it does not hold...
    assert theirs.stop().returncode == 0
    assert _lock_value(conn) == value
    # ...and ours releases it.
    assert ours.stop().returncode == 0
    assert _lock_value(conn) is None


def test_lock_held_by_a_python_scheduler_keeps_the_worker_out(queue, worker, python_worker, conn):
    theirs = python_worker.start("default", "--name", "py-first", "--with-scheduler")
    value = wait_for(lambda: _lock_value(conn), timeout=15, message="python scheduler lock taken")
    ours = worker.start("default", "--name", "w-second", "--with-scheduler")
    wait_for(lambda: conn.hget("rq:worker:w-second", "state") in (b"idle", b"busy"), timeout=15,
             message="worker under test up")
    _holds_for(conn, value, 2.5)

    job = queue.enqueue_in(dt.timedelta(seconds=1), ECHO, "once")
    wait_for(lambda: _status(job) == JobStatus.FINISHED, timeout=10, message="scheduled job ran")
    assert len(Job.fetch(job.id, connection=conn).results()) == 1

    # The worker under test leaves the Python scheduler's lock alone at shutdown.
    assert ours.stop().returncode == 0
    assert _lock_value(conn) == value
    if WORKER_KIND == "rqw":
        out, err = ours.output()
        assert "acquired scheduler lock" not in out + err
    assert theirs.stop().returncode == 0
    assert _lock_value(conn) is None
