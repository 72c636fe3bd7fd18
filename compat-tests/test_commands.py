"""Commands on rq:pubsub:<name> (rq.command.send_*) and suspension (rq suspend/resume)."""

import time

from rq import Queue, Retry, Worker
from rq.command import send_kill_horse_command, send_shutdown_command, send_stop_job_command
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry

from compat import NOOP, SLEEP, rq_cli, wait_for


def _busy_with(conn, name, job):
    def check():
        worker = Worker.find_by_key(f"rq:worker:{name}", connection=conn)
        return worker is not None and worker.get_state() == "busy" and job.get_status(refresh=True) == JobStatus.STARTED
    return check


def test_stop_job_command(queue, worker, conn):
    job = queue.enqueue(SLEEP, 30, retry=Retry(max=2))
    handle = worker.start("default", "--name", "w-stop")
    wait_for(_busy_with(conn, "w-stop", job), timeout=20, message="job started")
    send_stop_job_command(conn, job.id)
    wait_for(lambda: job.get_status(refresh=True) == JobStatus.STOPPED, timeout=20, message="job stopped")
    job = Job.fetch(job.id, connection=conn)
    assert job.id in FailedJobRegistry(queue=queue).get_job_ids()
    assert job.latest_result().type.value == 2
    assert "Job stopped by user" in job.latest_result().exc_string
    assert job.retries_left == 2  # a stopped job is never retried
    assert handle.alive()
    handle.stop()


def test_kill_horse_command_fails_the_running_job(queue, worker, conn):
    job = queue.enqueue(SLEEP, 30)
    handle = worker.start("default", "--name", "w-kill")
    wait_for(_busy_with(conn, "w-kill", job), timeout=20, message="job started")
    send_kill_horse_command(conn, "w-kill")
    wait_for(lambda: job.get_status(refresh=True) == JobStatus.FAILED, timeout=20, message="job failed")
    assert "Work-horse terminated unexpectedly" in Job.fetch(job.id, connection=conn).exc_info
    # The worker goes on with the next job.
    nxt = queue.enqueue(NOOP)
    wait_for(lambda: nxt.get_status(refresh=True) == JobStatus.FINISHED, timeout=20, message="next job")
    handle.stop()


def test_shutdown_command(queue, worker, conn):
    handle = worker.start("default", "--name", "w-shut")
    wait_for(lambda: Worker.find_by_key("rq:worker:w-shut", connection=conn) is not None, timeout=20,
             message="worker registered")
    send_shutdown_command(conn, "w-shut")
    result = handle.wait(timeout=30)
    assert result.returncode == 0
    assert Worker.all(connection=conn) == []


def test_suspended_worker_refuses_to_start(queue, worker, conn, url):
    rq_cli(url, "suspend")
    job = queue.enqueue(NOOP)
    proc = worker.run_burst("default", check=False)
    assert proc.returncode != 0
    assert job.get_status() == JobStatus.QUEUED
    rq_cli(url, "resume")
    worker.run_burst("default")
    assert job.get_status() == JobStatus.FINISHED


def test_a_suspended_worker_blocked_on_several_queues_takes_nothing_until_resumed(worker, conn, url):
    """A worker on two queues with a free slot keeps its blocking pops armed between waits;
    once it sees `rq suspend` it ends them, so a job enqueued while it is suspended stays in
    its queue (not in an intermediate list) until `rq resume`."""
    handle = worker.start("high", "low", "--name", "w-susp2", "--concurrency", "2")
    wait_for(lambda: conn.info("clients")["blocked_clients"] == 2, timeout=20, message="a pop per queue")
    rq_cli(url, "suspend")
    wait_for(lambda: Worker.find_by_key("rq:worker:w-susp2", connection=conn).get_state() == "suspended",
             timeout=30, message="worker suspended")
    wait_for(lambda: conn.info("clients")["blocked_clients"] == 0, timeout=10, message="the pops ended")
    low = Queue("low", connection=conn)
    job = low.enqueue(NOOP)
    time.sleep(2)
    assert job.get_status(refresh=True) == JobStatus.QUEUED
    assert low.count == 1 and conn.llen("rq:queue:low:intermediate") == 0
    rq_cli(url, "resume")
    wait_for(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, timeout=30, message="the job ran")
    handle.stop()


def test_suspension_between_jobs(queue, worker, conn, url):
    first = queue.enqueue(SLEEP, 1)
    handle = worker.start("default", "--name", "w-susp")
    wait_for(_busy_with(conn, "w-susp", first), timeout=20, message="job started")
    rq_cli(url, "suspend")
    second = queue.enqueue(NOOP)
    wait_for(lambda: first.get_status(refresh=True) == JobStatus.FINISHED, timeout=20, message="first job")
    wait_for(lambda: Worker.find_by_key("rq:worker:w-susp", connection=conn).get_state() == "suspended",
             timeout=20, message="worker suspended")
    assert second.get_status(refresh=True) == JobStatus.QUEUED
    rq_cli(url, "resume")
    wait_for(lambda: second.get_status(refresh=True) == JobStatus.FINISHED, timeout=20, message="second job")
    handle.stop()
