"""A mixed fleet: a Python `rq worker` and two workers under test serve the same queues at
once (schedulers on all of them, so they contend for the scheduler locks), a few hundred jobs
with failures, immediate retries and retries after an interval. Every job must be accounted
for exactly once: one final status, one result entry, one successful run per echo job, and
the workers' counters adding up to exactly the attempts made."""

from rq import Queue, Retry
from rq.job import Job, JobStatus

from compat import ECHO, FAIL, last_line, wait_for
from duty_helpers import python_worker, worker_counts  # noqa: F401  (fixture)

QUEUES = ["mix-a", "mix-b"]
ECHOES = 240
RETRIED = 30  # Retry(max=2): 3 attempts each
RETRIED_LATER = 10  # Retry(max=1, interval=1): 2 attempts each, through a scheduler
FAILED = 20  # no retry: 1 attempt each


def _up(conn, name):
    return conn.hget(f"rq:worker:{name}", "state") in (b"idle", b"busy")


def test_python_and_rqw_share_queues_and_every_job_runs_once(conn, worker, python_worker):
    names = ["py-mix", "w-mix-1", "w-mix-2"]
    handles = [python_worker.start(QUEUES, "--name", "py-mix", "--with-scheduler")]
    handles += [worker.start(QUEUES, "--name", n, "--with-scheduler") for n in names[1:]]
    wait_for(lambda: all(_up(conn, n) for n in names), timeout=20, message="all workers up")

    queues = [Queue(q, connection=conn) for q in QUEUES]
    echoes, failing = [], []
    for i in range(ECHOES):
        job_id = f"echo-{i}"
        echoes.append(queues[i % 2].enqueue(ECHO, job_id, job_id=job_id))
    for i in range(RETRIED):
        failing.append((queues[i % 2].enqueue(FAIL, message=f"r{i}", retry=Retry(max=2)), 3))
    for i in range(RETRIED_LATER):
        failing.append((queues[i % 2].enqueue(FAIL, message=f"l{i}", retry=Retry(max=1, interval=1)), 2))
    for i in range(FAILED):
        failing.append((queues[i % 2].enqueue(FAIL, message=f"f{i}"), 1))

    def settled():
        pipe = conn.pipeline()
        for job in echoes + [j for j, _ in failing]:
            pipe.hget(job.key, "status")
        statuses = pipe.execute()
        done = statuses[:ECHOES].count(b"finished") + statuses[ECHOES:].count(b"failed")
        return done == len(statuses)

    wait_for(settled, timeout=90, interval=0.2, message="every job finished or failed for good")
    for handle in handles:
        assert handle.stop().returncode == 0

    ran_by = {}
    for job in echoes:
        job = Job.fetch(job.id, connection=conn)
        assert job.get_status() == JobStatus.FINISHED
        assert job.return_value() == {"args": [job.id], "kwargs": {}}, job.id
        assert len(job.results()) == 1, f"{job.id} has {len(job.results())} results"
        ran_by[job.worker_name] = ran_by.get(job.worker_name, 0) + 1
    attempts = 0
    for job, tries in failing:
        job = Job.fetch(job.id, connection=conn)
        assert job.get_status() == JobStatus.FAILED
        assert job.retries_left in (None, 0)
        assert len(job.results()) == 1, f"{job.id} has {len(job.results())} results"
        assert last_line(job.latest_result().exc_string).startswith("RuntimeError: ")
        attempts += tries

    for q in QUEUES:
        assert conn.llen(f"rq:queue:{q}") == 0
        assert conn.zcard(f"rq:wip:{q}") == 0
        assert conn.zcard(f"rq:scheduled:{q}") == 0
        assert conn.llen(f"rq:queue:{q}:intermediate") == 0
    assert sum(conn.zcard(f"rq:finished:{q}") for q in QUEUES) == ECHOES
    assert sum(conn.zcard(f"rq:failed:{q}") for q in QUEUES) == len(failing)

    # Each echo job ran exactly once and each failing attempt was counted exactly once.
    counts = {n: worker_counts(conn, n) for n in names}
    assert sum(ok for ok, _ in counts.values()) == ECHOES, counts
    assert sum(bad for _, bad in counts.values()) == attempts, counts
    # Everybody took part.
    assert all(ok + bad > 0 for ok, bad in counts.values()), counts
    assert set(ran_by) <= set(names)
    print(f"jobs per worker (ok, failed attempts): {counts}")
