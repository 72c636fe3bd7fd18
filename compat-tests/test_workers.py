"""The worker as RQ's Python side sees it: registration, state, current job, counters,
`rq info`, warm shutdown."""

import signal

import pytest
from rq import Worker
from rq.job import Job, JobStatus

from compat import FAIL, NOOP, SLEEP, rq_cli, started_ids, wait_for

PREFIX = Worker.redis_worker_namespace_prefix


def find(conn, name):
    return Worker.find_by_key(PREFIX + name, connection=conn)


def names(conn, **kwargs):
    return sorted(w.name for w in Worker.all(connection=conn, **kwargs))


def wait_idle(conn, name):
    """Waits until worker `name` is registered and idle, reading its hash only. (Not with
    `Worker.find_by_key`: polled before the worker registers, it SREMs the missing key from
    rq:workers, and a registration landing between its EXISTS and that SREM loses the
    membership: a race of the poll itself, seen once on rq 1.16.2 in CI.)"""
    wait_for(lambda: conn.hget(PREFIX + name, "state") == b"idle", message=f"worker {name} registered and idle")


def test_busy_worker_then_warm_shutdown(queue, worker, conn, url):
    handle = worker.start("default", "--name", "w-busy")
    wait_idle(conn, "w-busy")
    assert names(conn) == ["w-busy"]
    assert names(conn, queue=queue) == ["w-busy"]

    job = queue.enqueue(SLEEP, 4)
    wait_for(lambda: job.get_status() == JobStatus.STARTED, message="job started")
    w = wait_for(lambda: (lambda w: w if w.get_state() == "busy" else None)(find(conn, "w-busy")),
                 message="worker state busy")
    assert w.get_current_job_id() == job.id
    assert w.get_current_job().id == job.id
    assert w.queue_names() == ["default"]
    assert w.pid == handle.pid
    assert w.hostname
    assert w.birth_date is not None and w.last_heartbeat is not None
    assert Job.fetch(job.id, connection=conn).worker_name == "w-busy"
    assert started_ids(queue.started_job_registry) == [job.id]
    assert queue.get_job_ids() == []

    # rq info cleans the registries: a live, heartbeating job must not be failed as abandoned.
    info = rq_cli(url, "info", "--raw")
    assert info.returncode == 0, info.stderr
    assert "queue default 0, 1 executing, 0 finished, 0 failed" in info.stdout
    worker_lines = [line for line in info.stdout.splitlines() if line.startswith("worker w-busy ")]
    assert len(worker_lines) == 1 and " busy default." in worker_lines[0], info.stdout
    assert job.get_status() == JobStatus.STARTED
    assert started_ids(queue.started_job_registry) == [job.id]
    assert queue.failed_job_registry.get_job_ids() == []

    # Warm shutdown: SIGTERM while busy lets the job finish, then the worker leaves.
    assert job.get_status() == JobStatus.STARTED
    exited = handle.stop(signal.SIGTERM, timeout=30)
    assert exited.returncode == 0
    assert job.get_status() == JobStatus.FINISHED
    assert job.return_value() == 4
    assert names(conn) == []
    assert names(conn, queue=queue) == []
    assert queue.started_job_registry.get_job_ids() == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_idle_worker_stops_on_signal(queue, worker, conn, sig):
    handle = worker.start("default", "--name", "w-idle")
    wait_idle(conn, "w-idle")
    exited = handle.stop(sig, timeout=20)
    assert exited.returncode == 0
    assert names(conn) == []


def test_burst_worker_counters(queue, worker, conn, url):
    for _ in range(3):
        queue.enqueue(SLEEP, 0.1)
    queue.enqueue(FAIL, message="boom")
    worker.run_burst("default", "--name", "w-count")

    assert names(conn) == []  # a burst worker deregisters when done
    w = find(conn, "w-count")  # its hash lingers briefly after death, counters included
    assert w is not None
    assert w.successful_job_count == 3
    assert w.failed_job_count == 1
    assert w.total_working_time >= 0.25

    info = rq_cli(url, "info", "--raw")
    assert info.returncode == 0, info.stderr
    assert "queue default 0, 0 executing, 3 finished, 1 failed" in info.stdout


def test_two_workers_have_distinct_names(queue, worker, conn):
    a = worker.start("default", "--name", "w-a")
    b = worker.start("default", "--name", "w-b")
    wait_for(lambda: names(conn) == ["w-a", "w-b"], message="both workers registered")
    assert a.stop().returncode == 0
    assert b.stop().returncode == 0
    assert names(conn) == []


def test_running_job_heartbeats(queue, worker, conn):
    handle = worker.start("default", "--name", "w-hb", "--job-monitoring-interval", "1")
    job = queue.enqueue(SLEEP, 4)
    wait_for(lambda: job.get_status() == JobStatus.STARTED, message="job started")
    first = Job.fetch(job.id, connection=conn).last_heartbeat
    worker_first = find(conn, "w-hb").last_heartbeat
    assert first is not None

    def heartbeat_while_running():
        j = Job.fetch(job.id, connection=conn)
        return j.get_status() == JobStatus.STARTED and j.last_heartbeat > first

    wait_for(heartbeat_while_running, timeout=3.5, message="a job heartbeat while the job runs")
    assert find(conn, "w-hb").last_heartbeat > worker_first
    assert handle.stop().returncode == 0
    assert job.get_status() == JobStatus.FINISHED


@pytest.mark.parametrize("ttl", [30, 5, 0])
def test_worker_ttl_option(queue, worker, conn, ttl):
    # rq worker takes any whole number (under 16 its blocking pop waits 1 s; 0 means the
    # default, 420, in rq 2.x and 3.0); so does rqw.
    key_ttl = (ttl or 420) + 60
    handle = worker.start("default", "--name", "w-ttl", "--worker-ttl", str(ttl),
                          "--job-monitoring-interval", "1")
    wait_idle(conn, "w-ttl")
    # RQ keeps an idle worker's key for worker_ttl + 60 seconds.
    assert key_ttl - 5 < conn.ttl(PREFIX + "w-ttl") <= key_ttl
    job = queue.enqueue(NOOP)
    wait_for(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, timeout=10, message="job finished")
    # While a job runs the key lives as long as the job's heartbeat (61 s here); the next idle
    # heartbeat (every second at most) gives it worker_ttl + 60 again.
    wait_for(lambda: key_ttl - 5 < conn.ttl(PREFIX + "w-ttl") <= key_ttl, timeout=5, message="idle key TTL again")
    assert handle.stop().returncode == 0
