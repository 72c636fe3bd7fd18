"""Faults, second pass (issue 16): no job waits on a lost reply, a dead lock or a fixed timer.

- a start or a finish whose reply is lost (a proxy in front of Redis cuts the connection right
  after forwarding the call, so Redis runs it and rqw never hears back) is looked up after the
  reconnect: the started jobs run, the outcome is written once;
- a worker killed (kill -9) while it holds a maintenance lock leaves the queue recoverable
  within about one --maintenance-interval, not after RQ's 899 s;
- a scheduler killed: a second worker takes its lock over within one --maintenance-interval
  of the lock's expiry;
- started_at is never before enqueued_at, even for dependents enqueued by a parent's finish.

Each asserts through rq's API that every job ran once (per attempt) and ended where RQ puts it.
"""

import os
import re
import signal
import time

import pytest
from rq import Queue, Retry
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry
from rq.worker import Worker

from compat import FAIL, NOOP, SLEEP, wait_for
from faults import FINISH_SCRIPT, START_SCRIPT, ReplyDropProxy, expire_heartbeats, script_sha, sigkill

pytestmark = pytest.mark.rqw_only("faults of the rqw process and its Redis connections")

FAST = ("--job-monitoring-interval", "1")


def picks(handle, job_id):
    out, err = handle.output()
    return len(re.findall(rf"JOB PICKED queue='[^']*' job_id={re.escape(job_id)} ", out + err))


def log_of(handle):
    out, err = handle.output()
    return out + err


def worker_record(conn, name):
    return Worker.find_by_key(Worker.redis_worker_namespace_prefix + name, connection=conn)


@pytest.fixture
def proxy(redis_server):
    p = ReplyDropProxy(redis_server.port)
    yield p
    p.close()


def load(conn, paths):
    """Loads the script as rqw sends it, so the armed EVALSHA is the call that runs."""
    body, sha = script_sha(*paths)
    assert conn.script_load(body) == sha
    return sha.encode()


def proxied(worker, proxy):
    worker.url = proxy.url
    return worker


# --------------------------------------------------------------------------- lost replies


def test_lost_start_reply_of_a_claimed_job_runs_it_once(queue, worker, conn, proxy):
    """One queue: the blocking pop claims the id, start.lua starts it, the reply is lost."""
    sha = load(conn, START_SCRIPT)
    handle = proxied(worker, proxy).start("default", "--name", "w-lost-start", *FAST)
    wait_for(lambda: worker_record(conn, "w-lost-start") is not None, message="worker registered")
    time.sleep(0.3)  # past the first (empty) start call, into the blocking pop
    proxy.arm(sha)
    job = queue.enqueue(SLEEP, 0.1)
    wait_for(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, timeout=15,
             message=f"the job whose start reply was lost finished\n{handle.describe()}")
    assert proxy.fired == 1
    assert picks(handle, job.id) == 1, handle.describe()
    assert job.return_value() == 0.1
    assert len(job.results()) == 1
    assert "start reply lost" in log_of(handle) and job.id in log_of(handle)
    assert conn.zcard("rq:wip:default") == 0
    assert handle.stop().returncode == 0


def test_start_cut_before_redis_restarts_the_claimed_job_once(queue, worker, conn, proxy):
    """One queue: the blocking pop claimed the id, the start call never reached Redis (the
    connection was cut first). The lookup finds nothing started, the id is still in the
    intermediate list, so rqw starts it again: it runs once."""
    sha = load(conn, START_SCRIPT)
    handle = proxied(worker, proxy).start("default", "--name", "w-cut-start", *FAST)
    wait_for(lambda: worker_record(conn, "w-cut-start") is not None, message="worker registered")
    time.sleep(0.3)  # into the blocking pop
    proxy.arm(sha, forward=False)
    job = queue.enqueue(SLEEP, 0.1)
    wait_for(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, timeout=15,
             message=f"the claimed job finished\n{handle.describe()}")
    assert proxy.fired == 1
    assert picks(handle, job.id) == 1, handle.describe()
    assert "the claimed job had not started; starting it again" in log_of(handle), handle.describe()
    assert conn.llen("rq:queue:default:intermediate") == 0
    assert handle.stop().returncode == 0


def test_lost_start_reply_of_a_batch_runs_each_job_once(queue, worker, conn, proxy):
    """Two queues (the polled pop), --concurrency 4: one call starts four jobs, its reply is lost."""
    sha = load(conn, START_SCRIPT)
    other = Queue("other", connection=conn)
    jobs = [queue.enqueue(SLEEP, 0.2, retry=Retry(max=1)) for _ in range(3)] + [other.enqueue(NOOP)]
    proxy.arm(sha)
    handle = proxied(worker, proxy).start(["default", "other"], "--name", "w-lost-batch",
                                          "--concurrency", "4", *FAST)
    wait_for(lambda: all(j.get_status(refresh=True) == JobStatus.FINISHED for j in jobs), timeout=15,
             message=f"every job of the lost batch finished\n{handle.describe()}")
    assert proxy.fired == 1
    log = log_of(handle)
    lost = [line for line in log.splitlines() if "start reply lost" in line]
    assert lost and all(j.id in lost[0] for j in jobs), log
    for j in jobs:
        assert picks(handle, j.id) == 1, handle.describe()
        assert Job.fetch(j.id, connection=conn).retries_left in (None, 1), "no retry consumed"
    assert conn.zcard("rq:wip:default") == 0 and conn.zcard("rq:wip:other") == 0
    assert handle.stop().returncode == 0


def test_lost_finish_reply_is_written_once(queue, worker, conn, proxy):
    sha = load(conn, FINISH_SCRIPT)
    handle = proxied(worker, proxy).start("default", "--name", "w-lost-finish", *FAST)
    wait_for(lambda: worker_record(conn, "w-lost-finish") is not None, message="worker registered")
    proxy.arm(sha)
    job = queue.enqueue(SLEEP, 0.1)
    wait_for(lambda: "outcome reply lost" in log_of(handle), timeout=15,
             message=f"the lost finish was looked up\n{handle.describe()}")
    assert job.get_status(refresh=True) == JobStatus.FINISHED
    assert proxy.fired == 1
    assert picks(handle, job.id) == 1
    assert "the lost call had written it" in log_of(handle), handle.describe()
    assert conn.xlen(f"rq:results:{job.id}") == 1, "one result entry"
    assert worker_record(conn, "w-lost-finish").successful_job_count == 1, "counted once"
    assert handle.stop().returncode == 0


def test_lost_requeue_reply_retries_once(queue, worker, conn, proxy):
    """A failing job with one retry: the reply of its requeue is lost; it is requeued once,
    runs once more and fails for good."""
    sha = load(conn, FINISH_SCRIPT)
    handle = proxied(worker, proxy).start("default", "--name", "w-lost-requeue", *FAST)
    wait_for(lambda: worker_record(conn, "w-lost-requeue") is not None, message="worker registered")
    proxy.arm(sha)
    job = queue.enqueue(FAIL, message="boom", retry=Retry(max=1))
    wait_for(lambda: job.get_status(refresh=True) == JobStatus.FAILED, timeout=15,
             message=f"the job failed after its one retry\n{handle.describe()}")
    assert proxy.fired == 1
    assert picks(handle, job.id) == 2, "one run per attempt"
    assert Job.fetch(job.id, connection=conn).retries_left == 0
    assert "outcome reply lost" in log_of(handle)
    assert queue.count == 0
    assert handle.stop().returncode == 0


# --------------------------------------------------------------------------- maintenance lock

QUEUES = [f"m{i}" for i in range(12)]


def catch_holding_a_maintenance_lock(conn, handle, attempts=40):
    """SIGSTOPs the worker right after it takes a maintenance lock (keyspace notification of
    the SET), until it is caught with one held. Returns the held lock keys."""
    conn.config_set("notify-keyspace-events", "K$g")
    pubsub = conn.pubsub()
    pubsub.psubscribe("__keyspace@0__:rq:clean_registries:*")
    try:
        for _ in range(attempts):
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                msg = pubsub.get_message(timeout=1)
                if msg and msg["type"] == "pmessage" and msg["data"] == b"set":
                    break
            else:
                continue
            os.kill(handle.pid, signal.SIGSTOP)
            held = [k.decode() for k in conn.keys("rq:clean_registries:*")]
            if held:
                return held
            os.kill(handle.pid, signal.SIGCONT)  # that queue's step was over: next one
        pytest.fail("never caught the worker holding a maintenance lock")
    finally:
        pubsub.close()
        conn.config_set("notify-keyspace-events", "")


def test_kill9_while_holding_the_maintenance_lock_leaves_the_queue_recoverable(worker, conn):
    """A worker killed inside a maintenance pass: its lease (5 s with --maintenance-interval 1,
    at most 60 s) expires and a second worker recovers the dead worker's jobs of that queue
    at its next pass; with RQ's 899 s lock they would wait 15 minutes."""
    queues = [Queue(q, connection=conn) for q in QUEUES]
    jobs = [q.enqueue(SLEEP, 60, job_timeout=120) for q in queues]
    a = worker.start(QUEUES, "--name", "w-maint-a", "--concurrency", str(len(QUEUES)),
                     "--maintenance-interval", "1", *FAST)
    wait_for(lambda: all(j.get_status(refresh=True) == JobStatus.STARTED for j in jobs), timeout=15,
             message="every job running")
    held = catch_holding_a_maintenance_lock(conn, a)
    sigkill(a)
    # What the kill left: a lock that dies soon, which a Python worker honours meanwhile.
    for key in held:
        assert 0 < conn.ttl(key) <= 5, (key, conn.ttl(key))
    stuck_queue = Queue(held[0].rsplit(":", 1)[1], connection=conn)
    assert stuck_queue.acquire_maintenance_lock() is False
    for q in QUEUES:
        expire_heartbeats(conn, q)  # the dead worker's heartbeats have run out

    b = worker.start(QUEUES, "--name", "w-maint-b", "--maintenance-interval", "1", *FAST)
    wait_for(lambda: all(j.get_status(refresh=True) == JobStatus.FAILED for j in jobs), timeout=15,
             message=f"every abandoned job failed, the locked queue's too\n{b.describe()}")
    for j in jobs:
        job = Job.fetch(j.id, connection=conn)
        text = job.latest_result().exc_string if job.latest_result() else job.exc_info
        assert "AbandonedJobError" in text
        assert picks(a, j.id) == 1 and picks(b, j.id) == 0, "ran once, by the killed worker"
        assert conn.zcard(f"rq:wip:{job.origin}") == 0
    assert b.stop().returncode == 0
    assert conn.keys("rq:clean_registries:*") == [], "every lease released"


# --------------------------------------------------------------------------- scheduler takeover

SCHED_LOCK = "rq:scheduler-lock:default"


def test_a_killed_schedulers_lock_is_taken_over_within_one_maintenance_interval(queue, worker, conn):
    """Scheduler A holds the lock; B, started after it, finds it taken. A is killed (kill -9);
    once A's lock expires (61 s; here its TTL is cut to 0.3 s, as if that time had passed), B
    takes it within one --maintenance-interval (1 s here; RQ's 120 s fallback before) and runs
    a due enqueue_in job once."""
    import datetime as dt

    a = worker.start("default", "--name", "w-sched-a", "--with-scheduler", *FAST)
    wait_for(lambda: conn.get(SCHED_LOCK), message="scheduler A holds the lock")
    a_token = conn.get(SCHED_LOCK)
    b = worker.start("default", "--name", "w-sched-b", "--with-scheduler", "--maintenance-interval", "1", *FAST)
    wait_for(lambda: worker_record(conn, "w-sched-b") is not None, message="worker B registered")
    time.sleep(1.5)  # B has tried for the lock and found it A's
    assert conn.get(SCHED_LOCK) == a_token
    sigkill(a)
    assert 0 < conn.ttl(SCHED_LOCK) <= 61, "A's lock outlives A until its TTL"
    job = queue.enqueue_in(dt.timedelta(seconds=1), SLEEP, 0)
    conn.pexpire(SCHED_LOCK, 300)
    # Within one maintenance interval (1 s) of the expiry; 10 s is a loose bound for a loaded
    # machine, far below the 120 s B waited before.
    wait_for(lambda: conn.get(SCHED_LOCK) not in (None, a_token), timeout=10,
             message=f"B took the lock over\n{b.describe()}")
    b_token = conn.get(SCHED_LOCK).decode()
    assert conn.hget(f"rq:scheduler:{b_token}", "pid") == str(b.pid).encode()
    wait_for(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, timeout=10,
             message=f"the scheduled job ran\n{b.describe()}")
    assert picks(b, job.id) == 1 and picks(a, job.id) == 0
    assert ScheduledJobRegistry(queue=queue).get_job_ids() == []
    assert b.stop().returncode == 0
    assert not conn.exists(SCHED_LOCK), "released at shutdown"


# --------------------------------------------------------------------------- timestamps


def test_started_at_is_never_before_enqueued_at(queue, worker, conn):
    """Dependents enqueued by their parent's finish and picked at once by other slots (the
    case that showed started_at up to 27 ms before enqueued_at), and a job whose producer's
    clock runs a minute ahead of Redis's: started_at >= enqueued_at for every job, read by rq."""
    import datetime as dt

    pairs = []
    for _ in range(40):
        parent = queue.enqueue(NOOP)
        pairs.append((parent, queue.enqueue(NOOP, depends_on=parent)))
    ahead = queue.enqueue(NOOP)
    future = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    conn.hset(ahead.key, "enqueued_at", future)
    worker.run_burst("default", "--concurrency", "8", *FAST)
    jobs = [j for pair in pairs for j in pair] + [ahead]
    for j in jobs:
        job = Job.fetch(j.id, connection=conn)
        assert job.get_status() == JobStatus.FINISHED
        assert job.started_at >= job.enqueued_at, (job.id, job.enqueued_at, job.started_at)
        assert job.ended_at >= job.started_at or job.id == ahead.id
    assert conn.hget(ahead.key, "started_at").decode() == future, "clamped to the producer's enqueued_at"
