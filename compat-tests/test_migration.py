"""Gradual migration: --forward-unknown hands jobs rqw cannot run to a Python worker's queue,
intact; --dequeue-strategy orders queues as rq worker does."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, FinishedJobRegistry

from compat import ECHO, NOOP, PYMOD


@pytest.mark.rqw_only("--forward-unknown is rqw's migration feature")
def test_forward_unknown_moves_the_job_intact_to_the_python_queue(queue, worker, conn, url):
    native = queue.enqueue(ECHO, 1)
    foreign = queue.enqueue("rqw.pyonly.double", 21, job_id="foreign-job", result_ttl=600, meta={"k": "v"})
    worker.run_burst("default", "--forward-unknown", "python")

    assert native.get_status() == JobStatus.FINISHED
    python_q = Queue("python", connection=conn)
    assert python_q.get_job_ids() == ["foreign-job"]
    job = Job.fetch("foreign-job", connection=conn)
    assert job.get_status() == JobStatus.QUEUED
    assert job.origin == "python"
    assert (job.func_name, job.args, job.kwargs, job.meta, job.result_ttl) == ("rqw.pyonly.double", (21,), {}, {"k": "v"}, 600)
    assert FailedJobRegistry(queue=queue).get_job_ids() == []

    # A real Python worker on that queue runs it.
    script = Path(sys.executable).with_name("rq")
    env = dict(os.environ, PYTHONPATH=str(PYMOD))
    subprocess.run([str(script), "worker", "python", "--burst", "--url", url], env=env, check=True,
                   capture_output=True, timeout=60)
    job = Job.fetch("foreign-job", connection=conn)
    assert job.get_status() == JobStatus.FINISHED
    assert job.return_value() == 42
    assert "foreign-job" in FinishedJobRegistry(queue=python_q).get_job_ids()


def _start_order(conn, jobs):
    fetched = [Job.fetch(j.id, connection=conn) for j in jobs]
    return [j.origin for j in sorted(fetched, key=lambda j: j.started_at)]


@pytest.mark.parametrize("strategy, expected", [
    ("default", ["a", "a", "b", "b"]),
    ("round_robin", ["a", "b", "a", "b"]),
])
def test_dequeue_strategy(conn, worker, strategy, expected):
    a, b = Queue("a", connection=conn), Queue("b", connection=conn)
    jobs = [a.enqueue(NOOP), a.enqueue(NOOP), b.enqueue(NOOP), b.enqueue(NOOP)]
    worker.run_burst(["a", "b"], "--dequeue-strategy", strategy)
    assert _start_order(conn, jobs) == expected


def test_random_strategy_runs_everything(conn, worker):
    qs = [Queue(n, connection=conn) for n in ("a", "b", "c")]
    jobs = [q.enqueue(NOOP) for q in qs for _ in range(3)]
    worker.run_burst(["a", "b", "c"], "--dequeue-strategy", "random")
    assert all(j.get_status() == JobStatus.FINISHED for j in jobs)


@pytest.mark.rqw_only("`rqw handlers` lists rqw's native handlers")
def test_handlers_command_lists_native_paths():
    from compat import RQW_BIN

    plain = subprocess.run([str(RQW_BIN), "handlers"], capture_output=True, text=True, check=True).stdout.split()
    assert plain == ["server.jobs.recording_job.process_recording_download_job"]
    testing = subprocess.run([str(RQW_BIN), "handlers", "--enable-testing-handlers"], capture_output=True,
                             text=True, check=True).stdout.split()
    assert set(testing) == set(plain) | {ECHO, NOOP, "rqw.testing.fail", "rqw.testing.sleep", "rqw.testing.panic"}
