"""Maintenance (first pass at start, then every --maintenance-interval), under RQ's lock
`rq:clean_registries:<q>`: abandoned jobs of dead workers, ids stranded in the intermediate
list, expired registry entries, dead worker keys, rq 3.0 ready leftovers.

Registries are read raw here: RQ's own registry readers clean up on read, which would do the
worker's job for it."""

import time

import pytest
from rq import Retry
from rq.job import Job, JobStatus

from compat import ECHO, RQ_VERSION, WORKER_KIND, DEFAULT_FAILURE_TTL, wait_for
from duty_helpers import abandon, latest_result_fields, worker_counts

# rq 1.16.2 and 2.0.0 themselves fail an abandoned job without a result entry (they write the
# text into the hash's legacy `exc_info`); rqw writes the result entry, as 2.12+ does, which
# 1.16.2 and 2.0.0 read too.
PYTHON_2_0 = WORKER_KIND == "python" and RQ_VERSION < (2, 12, 0)
# rq 2.x fails the job of any expired entry, even a finished one; rq 3.0 (and rqw) only touch
# jobs still `started`. rq 2.x has no ready registry.
python_needs_3_0 = pytest.mark.skipif(
    WORKER_KIND == "python" and RQ_VERSION < (3, 0, 0), reason="rq 3.0 behaviour (see the comment above)"
)

INTERMEDIATE = "rq:queue:default:intermediate"


def _fetch(job):
    return Job.fetch(job.id, connection=job.connection)


def test_abandoned_job_without_retries_is_failed(queue, worker, conn):
    job = queue.enqueue(ECHO, "never")
    abandon(conn, queue, job)
    worker.run_burst("default", "--name", "w-clean")

    job = _fetch(job)
    assert job.get_status() == JobStatus.FAILED
    assert conn.zcard("rq:wip:default") == 0
    assert [m.decode() for m in conn.zrange("rq:failed:default", 0, -1)] == [job.id]
    assert job.exc_info.startswith("Moved to FailedJobRegistry, due to AbandonedJobError, at ")
    if not PYTHON_2_0:
        fields = latest_result_fields(conn, job.id)
        assert (fields["type"], fields.get("worker_name", "")) == ("2", "")
        assert job.latest_result().type == job.latest_result().Type.FAILED
        assert len(job.results()) == 1  # it did not run
    assert DEFAULT_FAILURE_TTL - 60 <= conn.ttl(job.key) <= DEFAULT_FAILURE_TTL
    assert worker_counts(conn, "w-clean") == (0, 0)  # nobody's failure: no worker counts it


@pytest.mark.skipif(RQ_VERSION >= (2, 0, 0), reason="rq 2.0.0 cannot fetch a job whose id has a ':' (it cuts "
                    "the id there), 2.12+ refuses such an id")
def test_abandoned_job_with_a_colon_in_its_id_is_failed(queue, worker, conn):
    # rq 1.x accepts any job id, and its registry member is that plain id.
    job = queue.enqueue(ECHO, "colon", job_id="recording:CA1")
    member = abandon(conn, queue, job)
    assert member.startswith("recording:CA1")
    worker.run_burst("default")

    job = _fetch(job)
    assert job.get_status() == JobStatus.FAILED
    assert conn.zcard("rq:wip:default") == 0
    assert [m.decode() for m in conn.zrange("rq:failed:default", 0, -1)] == [job.id]
    assert "AbandonedJobError" in job.exc_info


def test_abandoned_job_with_retries_is_requeued_and_runs(queue, worker, conn):
    job = queue.enqueue(ECHO, "again", retry=Retry(max=2))
    abandon(conn, queue, job)
    worker.run_burst("default")

    job = _fetch(job)
    assert job.get_status() == JobStatus.FINISHED
    assert job.retries_left == 1
    assert job.return_value() == {"args": ["again"], "kwargs": {}}
    assert len(job.results()) == 1
    assert conn.zcard("rq:failed:default") == 0


def test_abandoned_job_with_retry_interval_is_scheduled(queue, worker, conn):
    job = queue.enqueue(ECHO, "later", retry=Retry(max=1, interval=300))
    abandon(conn, queue, job)
    before = int(time.time())
    worker.run_burst("default")

    job = _fetch(job)
    assert job.get_status() == JobStatus.SCHEDULED
    assert job.retries_left == 0
    score = conn.zscore("rq:scheduled:default", job.id)
    assert before + 299 <= score <= int(time.time()) + 300
    assert conn.sismember("rq:queues", "rq:queue:default")


@python_needs_3_0
def test_leftover_entry_of_a_finished_job_is_only_removed(queue, worker, conn):
    job = queue.enqueue(ECHO, "done")
    worker.run_burst("default")
    assert _fetch(job).get_status() == JobStatus.FINISHED
    conn.zadd("rq:wip:default", {f"{job.id}:0123456789abcdef0123456789abcdef": int(time.time()) - 10})
    worker.run_burst("default")

    assert _fetch(job).get_status() == JobStatus.FINISHED
    assert conn.zcard("rq:wip:default") == 0
    assert len(_fetch(job).results()) == 1


def test_stranded_intermediate_id_is_failed_after_a_minute(queue, worker, conn):
    job = queue.enqueue(ECHO, "stranded")
    conn.lrem(queue.key, 1, job.id)
    conn.rpush(INTERMEDIATE, job.id)
    first_seen = f"{INTERMEDIATE}:first_seen:{job.id}"

    worker.run_burst("default")  # first sighting: recorded, nothing else
    assert conn.exists(first_seen)
    assert 86000 <= conn.ttl(first_seen) <= 86400
    assert _fetch(job).get_status() == JobStatus.QUEUED
    assert conn.lrange(INTERMEDIATE, 0, -1) == [job.id.encode()]

    conn.set(first_seen, time.time() - 61, keepttl=True)  # as if a minute had passed
    worker.run_burst("default", "--name", "w-stuck")
    job = _fetch(job)
    assert job.get_status() == JobStatus.FAILED  # RQ fails it; it does not requeue it
    assert conn.llen(INTERMEDIATE) == 0
    assert [m.decode() for m in conn.zrange("rq:failed:default", 0, -1)] == [job.id]
    fields = latest_result_fields(conn, job.id)
    assert fields["type"] == "2"
    assert job.exc_info == "Job was stuck in intermediate queue."
    if RQ_VERSION >= (2, 12, 0):
        assert fields["worker_name"] == "w-stuck"
    assert worker_counts(conn, "w-stuck") == (0, 1)


def test_stranded_job_with_retries_is_requeued(queue, worker, conn):
    job = queue.enqueue(ECHO, "stuck-retry", retry=Retry(max=1))
    conn.lrem(queue.key, 1, job.id)
    conn.rpush(INTERMEDIATE, job.id)
    conn.set(f"{INTERMEDIATE}:first_seen:{job.id}", time.time() - 120, ex=86400)
    worker.run_burst("default")

    job = _fetch(job)
    assert job.get_status() == JobStatus.FINISHED
    assert job.retries_left == 0
    assert conn.llen(INTERMEDIATE) == 0


def test_stranded_id_of_a_deleted_job_is_dropped(queue, worker, conn):
    conn.rpush(INTERMEDIATE, "no-such-job")
    worker.run_burst("default")
    assert conn.llen(INTERMEDIATE) == 0


def test_expired_entries_and_dead_workers_are_pruned(queue, worker, conn):
    now = int(time.time())
    conn.zadd("rq:finished:default", {"gone-f": now - 5, "kept-f": now + 500})
    conn.zadd("rq:failed:default", {"gone-x": now - 5, "kept-x": now + 500})
    conn.sadd("rq:workers", "rq:worker:ghost")
    conn.sadd("rq:workers:default", "rq:worker:ghost")
    worker.run_burst("default", "--name", "w-prune")

    assert conn.zrange("rq:finished:default", 0, -1) == [b"kept-f"]
    assert conn.zrange("rq:failed:default", 0, -1) == [b"kept-x"]
    assert not conn.sismember("rq:workers", "rq:worker:ghost")
    assert not conn.sismember("rq:workers:default", "rq:worker:ghost")
    assert not conn.exists("rq:clean_registries:default")  # the lock is released after the pass


def test_queue_locked_by_another_worker_is_left_alone(queue, worker, conn):
    conn.set("rq:clean_registries:default", 1, ex=60)
    conn.zadd("rq:finished:default", {"gone-f": int(time.time()) - 5})
    worker.run_burst("default")
    assert conn.zrange("rq:finished:default", 0, -1) == [b"gone-f"]
    assert conn.exists("rq:clean_registries:default")


@python_needs_3_0
def test_ready_leftovers_are_enqueued(queue, worker, conn):
    job = queue.enqueue(ECHO, "ready")
    conn.lrem(queue.key, 1, job.id)
    conn.hset(job.key, "status", "ready_to_enqueue")
    conn.zadd("rq:ready:default", {job.id: int(time.time())})
    conn.zadd("rq:ready:default", {"no-such-job": int(time.time())})
    worker.run_burst("default")

    job = _fetch(job)
    assert job.get_status() == JobStatus.FINISHED
    assert job.return_value() == {"args": ["ready"], "kwargs": {}}
    assert conn.zcard("rq:ready:default") == 0


def test_maintenance_runs_again_after_the_interval(queue, worker, conn):
    handle = worker.start("default", "--name", "w-interval", "--maintenance-interval", "1", "--worker-ttl", "16")
    wait_for(lambda: conn.hget("rq:worker:w-interval", "state") in (b"idle", b"busy"), timeout=15,
             message="worker up")
    time.sleep(0.5)  # after the first pass
    conn.zadd("rq:finished:default", {"gone-f": int(time.time()) - 5})
    wait_for(lambda: conn.zcard("rq:finished:default") == 0, timeout=8, message="a later pass pruned it")
    assert handle.stop().returncode == 0
