"""Worker exit conditions: --max-jobs, --max-idle-time."""

import json

import pytest
from rq import Worker
from rq.job import JobStatus

from compat import NOOP


def test_max_jobs(queue, worker, conn):
    jobs = [queue.enqueue(NOOP) for _ in range(3)]
    handle = worker.start("default", "--max-jobs", "2", "--name", "w-max")
    exited = handle.wait(timeout=30)

    assert exited.returncode == 0
    assert [j.get_status() for j in jobs] == [JobStatus.FINISHED, JobStatus.FINISHED, JobStatus.QUEUED]
    assert queue.get_job_ids() == [jobs[2].id]
    assert Worker.all(connection=conn) == []


@pytest.mark.rqw_only("rq's worker has no --concurrency")
def test_max_jobs_caps_a_batched_start(queue, worker, conn):
    """With free slots for 8, one start call would take 8 jobs: --max-jobs 3 takes 3."""
    jobs = [queue.enqueue(NOOP) for _ in range(10)]
    handle = worker.start("default", "--max-jobs", "3", "--concurrency", "8", "--name", "w-max-c8")
    exited = handle.wait(timeout=30)

    assert exited.returncode == 0
    assert [j.get_status() for j in jobs] == [JobStatus.FINISHED] * 3 + [JobStatus.QUEUED] * 7
    assert queue.get_job_ids() == [j.id for j in jobs[3:]]


@pytest.mark.rqw_only("rq's worker has no --threads")
@pytest.mark.parametrize("threads", ["1", "3"])
def test_threads_option_runs_jobs(queue, worker, threads):
    """`--threads 1` is a current-thread runtime, other values a multi-threaded one."""
    jobs = [queue.enqueue(NOOP) for _ in range(20)]
    worker.run_burst("default", "--threads", threads, "--concurrency", "4")
    assert [j.get_status() for j in jobs] == [JobStatus.FINISHED] * 20


def test_max_idle_time(queue, worker, conn):
    job = queue.enqueue(NOOP)
    handle = worker.start("default", "--max-idle-time", "1")
    exited = handle.wait(timeout=30)

    assert exited.returncode == 0
    assert job.get_status() == JobStatus.FINISHED
    assert Worker.all(connection=conn) == []


def test_logging_level_option(queue, worker):
    job = queue.enqueue(NOOP)
    worker.run_burst("default", "--logging-level", "WARNING")
    assert job.get_status() == JobStatus.FINISHED


@pytest.mark.rqw_only("rq's --log-format is a logging format string; rqw's is text|json")
def test_json_log_format(queue, worker):
    job = queue.enqueue(NOOP)
    proc = worker.run_burst("default", "--log-format", "json", "--logging-level", "DEBUG")
    assert job.get_status() == JobStatus.FINISHED
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert lines, "expected some log output at DEBUG level"
    for line in lines:
        json.loads(line)  # one JSON object per line, nothing else
