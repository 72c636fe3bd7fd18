"""Python horses (`--python`): functions without a native handler run in Python processes
that rqw starts and supervises, with RQ's semantics, checked through RQ's own API.

The job functions are plain app code in pymod/horsejobs.py.
"""

import datetime
import decimal
import signal
import subprocess
import sys
import time

import pytest
from rq import Queue, Retry
from rq.command import send_kill_horse_command, send_stop_job_command
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from compat import NOOP, PYMOD, RQW_BIN, last_line, utc, wait_for

sys.path.insert(0, str(PYMOD))  # the workers get it on PYTHONPATH; this process unpickles Money
import horsejobs  # noqa: E402

pytestmark = pytest.mark.rqw_only("Python horses are rqw's (--python)")

PY = ["--python", sys.executable]


def horse_pid(queue, worker, *extra):
    """The pid of the horse that runs the next Python job."""
    job = queue.enqueue(horsejobs.pid)
    worker.run_burst("default", *PY, "--python-processes", "1", *extra)
    assert job.get_status() == JobStatus.FINISHED, job.exc_info
    return job.return_value()


def test_plain_function_with_args_and_kwargs(queue, worker):
    job = queue.enqueue(horsejobs.add, 2, 3, scale=10)
    native = queue.enqueue(NOOP)
    result = worker.run_burst("default", *PY)
    assert job.get_status() == JobStatus.FINISHED, job.exc_info
    assert job.return_value() == 50
    assert job.latest_result().return_value == 50
    assert job.id in queue.finished_job_registry.get_job_ids()
    assert native.get_status() == JobStatus.FINISHED
    assert "Python horse ready" in result.stderr


def test_rich_return_values_come_back_intact(queue, worker):
    job = queue.enqueue(horsejobs.rich_values)
    worker.run_burst("default", *PY)
    value = job.return_value()
    assert value["when"] == datetime.datetime(2026, 12, 1, 12, 30, 5, 123456, tzinfo=datetime.timezone.utc)
    assert type(value["price"]) is decimal.Decimal and value["price"] == decimal.Decimal("19.99")
    assert value["money"] == horsejobs.Money(decimal.Decimal("5.00"), "EUR")


def test_get_current_job_and_save_meta(queue, worker):
    job = queue.enqueue(horsejobs.uses_current_job, "downloaded")
    worker.run_burst("default", *PY)
    assert job.get_status() == JobStatus.FINISHED, job.exc_info
    assert job.return_value() == job.id
    job.refresh()
    assert job.meta["step"] == "downloaded"
    assert isinstance(job.meta["pid"], int)


def test_async_def(queue, worker):
    job = queue.enqueue(horsejobs.async_add, 20, 22)
    worker.run_burst("default", *PY)
    assert job.get_status() == JobStatus.FINISHED, job.exc_info
    assert job.return_value() == 42


def test_exception_has_the_real_traceback(queue, worker):
    job = queue.enqueue(horsejobs.raises, "no such call")
    worker.run_burst("default", *PY)
    assert job.get_status() == JobStatus.FAILED
    assert job.id in queue.failed_job_registry.get_job_ids()
    text = job.latest_result().exc_string
    assert last_line(text) == "ValueError: no such call"
    source = (PYMOD / "horsejobs.py").read_text().splitlines()
    line = next(i for i, l in enumerate(source, 1) if "raise ValueError(message)" in l)
    assert f'File "{PYMOD / "horsejobs.py"}", line {line}, in raises' in text
    assert last_line(job.exc_info) == "ValueError: no such call"


def test_prints_go_to_the_log_not_the_protocol(queue, worker):
    job = queue.enqueue(horsejobs.chatty, "hello")
    result = worker.run_burst("default", *PY)
    assert job.return_value() == "hello"
    for where in ("stdout", "fd1", "stderr"):
        assert f"{where} says hello" in result.stderr


def test_timeout_kills_the_horse_and_replaces_it(queue, worker):
    before = queue.enqueue(horsejobs.pid)
    job = queue.enqueue(horsejobs.sleep, 60, job_timeout=1)
    after = queue.enqueue(horsejobs.pid)
    worker.run_burst("default", *PY, "--python-processes", "1", timeout=40)
    assert job.get_status() == JobStatus.FAILED
    assert last_line(job.latest_result().exc_string) == (
        "rq.timeouts.JobTimeoutException: Task exceeded maximum timeout value (1 seconds)"
    )
    job.refresh()
    assert (utc(job.ended_at) - utc(job.started_at)).total_seconds() < 3
    assert before.return_value() != after.return_value(), "the timed-out horse was not replaced"
    assert after.get_status() == JobStatus.FINISHED


def test_segfault_fails_only_its_job(queue, worker):
    crash = queue.enqueue(horsejobs.segfault)
    exit_job = queue.enqueue(horsejobs.exit_now, 3)
    fine = queue.enqueue(horsejobs.add, 1, 1)
    worker.run_burst("default", *PY, "--python-processes", "1")
    assert crash.get_status() == JobStatus.FAILED
    assert crash.latest_result().exc_string.startswith(
        "Work-horse terminated unexpectedly; waitpid returned 11 (signal 11); ")
    assert exit_job.get_status() == JobStatus.FAILED
    assert exit_job.latest_result().exc_string == "Work-horse terminated unexpectedly; waitpid returned 768; "
    assert fine.return_value() == 2


def test_a_dead_horse_is_retried(queue, worker):
    job = queue.enqueue(horsejobs.exit_now, 1, retry=Retry(max=1))
    worker.run_burst("default", *PY, "--python-processes", "1")
    assert job.get_status() == JobStatus.FAILED
    job.refresh()
    assert job.retries_left == 0
    results = job.results()
    assert len(results) == 1 and "Work-horse terminated unexpectedly" in results[0].exc_string


def running_in_horse(job):
    """Waits until the job runs in a horse (it wrote its pid to meta); returns the pid."""
    return wait_for(lambda: (job.refresh() or job.meta.get("pid")), timeout=20, message="job running in a horse")


def test_kill_horse_command(conn, queue, worker):
    job = queue.enqueue(horsejobs.sleep_with_pid, 60)
    handle = worker.start("default", *PY, "--name", "horsekill", "--python-processes", "1")
    running_in_horse(job)
    send_kill_horse_command(conn, "horsekill")
    wait_for(lambda: job.get_status() == JobStatus.FAILED, timeout=10, message="job failed")
    assert job.latest_result().exc_string == "Work-horse terminated unexpectedly; waitpid returned 9 (signal 9); "
    after = queue.enqueue(horsejobs.add, 2, 2)
    wait_for(lambda: after.get_status() == JobStatus.FINISHED, timeout=20, message="next job ran")
    handle.stop()


def test_stop_job_command(conn, queue, worker):
    job = queue.enqueue(horsejobs.sleep_with_pid, 60, on_stopped=horsejobs.on_stopped_records)
    handle = worker.start("default", *PY, "--python-processes", "1")
    running_in_horse(job)
    send_stop_job_command(conn, job.id)
    wait_for(lambda: job.get_status() == JobStatus.STOPPED, timeout=10, message="job stopped")
    assert job.id in queue.failed_job_registry.get_job_ids()
    assert last_line(job.latest_result().exc_string) == "Job stopped by user, work-horse terminated."
    wait_for(lambda: conn.get(f"cb:stopped:{job.id}") == b"1", timeout=10, message="stopped callback ran")
    handle.stop()


def test_max_memory_recycles_the_horse(queue, worker):
    first = queue.enqueue(horsejobs.leak, 200)
    second = queue.enqueue(horsejobs.pid)
    worker.run_burst("default", *PY, "--python-processes", "1", "--python-max-memory", "150")
    assert first.get_status() == JobStatus.FINISHED, first.exc_info
    assert first.return_value() != second.return_value(), "the horse over --python-max-memory was kept"


def test_max_jobs_recycles_the_horse(queue, worker):
    jobs = [queue.enqueue(horsejobs.pid) for _ in range(4)]
    worker.run_burst("default", *PY, "--python-processes", "1", "--python-max-jobs", "2")
    pids = [j.return_value() for j in jobs]
    assert pids[0] == pids[1] and pids[2] == pids[3] and pids[1] != pids[2], pids


def test_retry_with_intervals(queue, worker):
    job = queue.enqueue(horsejobs.fail_until, f"attempts:{time.time()}", 3, retry=Retry(max=3, interval=[1, 1]))
    worker.run_burst("default", *PY, "--with-scheduler", timeout=40)
    # A burst worker quits while the retry waits in the scheduled registry: run until done.
    deadline = time.monotonic() + 30
    while job.get_status() != JobStatus.FINISHED and time.monotonic() < deadline:
        time.sleep(1.1)
        worker.run_burst("default", *PY, "--with-scheduler", timeout=40)
    assert job.get_status() == JobStatus.FINISHED, job.exc_info
    assert job.return_value() == 3


def test_failing_failure_callback_replaces_the_error(queue, worker):
    job = queue.enqueue(horsejobs.raises, "original", on_failure=horsejobs.on_failure_raises)
    worker.run_burst("default", *PY)
    assert job.get_status() == JobStatus.FAILED
    text = job.latest_result().exc_string
    assert last_line(text) == "KeyError: 'the failure callback broke'"


def test_python_callbacks_run_in_the_horse(conn, queue, worker):
    ok = queue.enqueue(horsejobs.add, 1, 2, on_success=horsejobs.on_success_records)
    bad = queue.enqueue(horsejobs.raises, "x", on_failure=horsejobs.on_failure_records)
    worker.run_burst("default", *PY)
    assert ok.get_status() == JobStatus.FINISHED
    assert conn.get(f"cb:success:{ok.id}") == b"3"
    assert bad.get_status() == JobStatus.FAILED
    assert conn.get(f"cb:failure:{bad.id}") == b"ValueError: x"
    assert last_line(bad.latest_result().exc_string) == "ValueError: x"


def test_timeout_runs_the_failure_callback_with_rqs_exception(conn, queue, worker):
    job = queue.enqueue(horsejobs.sleep, 60, job_timeout=1, on_failure=horsejobs.on_failure_records)
    worker.run_burst("default", *PY, "--python-processes", "1", timeout=40)
    assert job.get_status() == JobStatus.FAILED
    assert conn.get(f"cb:failure:{job.id}") == (
        b"JobTimeoutException: Task exceeded maximum timeout value (1 seconds)")


def test_json_serializer(conn, worker):
    queue = Queue("default", connection=conn, serializer=JSONSerializer)
    job = queue.enqueue(horsejobs.add, 1, 2, scale=3)
    listy = queue.enqueue(horsejobs.uses_current_job, "json")
    worker.run_burst("default", *PY, "-S", "json")
    job = Job.fetch(job.id, connection=conn, serializer=JSONSerializer)
    assert job.get_status() == JobStatus.FINISHED, job.exc_info
    assert job.return_value() == 9
    listy = Job.fetch(listy.id, connection=conn, serializer=JSONSerializer)
    assert listy.meta["step"] == "json"


def test_setup_hook_runs_once_and_wraps_jobs(queue, worker):
    jobs = [queue.enqueue(horsejobs.in_app_context) for _ in range(3)]
    result = worker.run_burst("default", *PY, "--python-processes", "1", "--python-setup", "horsejobs:setup_app")
    for job in jobs:
        assert job.return_value() == {"ready": True, "in_context": True}, job.exc_info
    assert result.stderr.count("Flask app initialized") == 1


def test_failing_setup_is_reported_once_and_native_jobs_continue(queue, worker):
    python_job = queue.enqueue(horsejobs.add, 1, 1)
    native = queue.enqueue(NOOP)
    result = worker.run_burst("default", *PY, "--python-setup", "horsejobs:setup_fails", timeout=60)
    assert native.get_status() == JobStatus.FINISHED
    assert python_job.get_status() == JobStatus.FAILED
    text = python_job.latest_result().exc_string
    assert "rqw.errors.HorseStartError: Python horses cannot start" in text
    assert "RuntimeError: setup exploded" in text
    assert result.stderr.count("retrying with backoff") == 1  # reported once


def test_bad_command_is_reported_and_jobs_are_not_lost(queue, worker):
    python_job = queue.enqueue(horsejobs.add, 1, 1)
    native = queue.enqueue(NOOP)
    result = worker.run_burst("default", "--python", "/nonexistent/python3", timeout=60)
    assert native.get_status() == JobStatus.FINISHED
    assert python_job.get_status() == JobStatus.FAILED
    assert "cannot run the Python command" in python_job.latest_result().exc_string
    assert python_job.id in queue.failed_job_registry.get_job_ids()
    assert result.stderr.count("retrying with backoff") == 1  # reported once


def test_a_horse_answering_garbage_is_killed_and_its_job_failed(queue, worker):
    job = queue.enqueue(horsejobs.add, 1, 1)
    worker.run_burst("default", "--python", f"{sys.executable} {PYMOD / 'garbage_horse.py'}",
                     "--python-processes", "1", timeout=60)
    assert job.get_status() == JobStatus.FAILED
    assert "rqw.errors.HorseProtocolError: the Python horse answered garbage" in job.latest_result().exc_string


def test_mixed_run_on_the_production_queues(conn, worker):
    names = ["high", "default", "low", "maintenance", "broadcasts", "recordings"]
    queues = {n: Queue(n, connection=conn) for n in names}
    jobs = []
    for i in range(8):
        for n in names:
            if i % 2:
                jobs.append(queues[n].enqueue(horsejobs.add, i, 1, job_id=f"{n}-py-{i}"))
            else:
                jobs.append(queues[n].enqueue(NOOP, job_id=f"{n}-native-{i}"))
    worker.run_burst(names, *PY, "--python-processes", "3", "--concurrency", "4", timeout=120)
    for job in jobs:
        assert job.get_status() == JobStatus.FINISHED, (job.id, job.exc_info)
        assert len(job.results()) == 1, job.id
    for n in names:
        assert sorted(queues[n].finished_job_registry.get_job_ids()) == sorted(j.id for j in jobs if j.origin == n)
        assert queues[n].count == 0
    # Priority order: every high job started before any recordings job.
    started = {j.id: utc(Job.fetch(j.id, connection=conn).started_at) for j in jobs}
    assert max(v for k, v in started.items() if k.startswith("high")) <= min(
        v for k, v in started.items() if k.startswith("recordings"))


def test_warm_shutdown_lets_a_python_job_finish(queue, worker):
    job = queue.enqueue(horsejobs.sleep_with_pid, 2)
    later = queue.enqueue(horsejobs.add, 1, 1)
    handle = worker.start("default", *PY, "--python-processes", "1")
    running_in_horse(job)
    handle.proc.send_signal(signal.SIGINT)  # as a Ctrl-C: the horse has its own process group
    result = handle.wait(timeout=30)
    assert result.returncode == 0
    assert job.get_status() == JobStatus.FINISHED, job.exc_info
    assert later.get_status() == JobStatus.QUEUED


def test_shutdown_grace_kills_the_horse(queue, worker):
    job = queue.enqueue(horsejobs.sleep_with_pid, 60, job_timeout=120)
    handle = worker.start("default", *PY, "--python-processes", "1", "--shutdown-grace", "1")
    running_in_horse(job)
    signalled = time.monotonic()
    handle.proc.send_signal(signal.SIGTERM)
    result = handle.wait(timeout=30)
    assert result.returncode == 0
    assert time.monotonic() - signalled < 10
    assert job.get_status() == JobStatus.FAILED
    assert "rqw.errors.WorkerShutdown" in last_line(job.latest_result().exc_string)


def test_cold_shutdown_kills_the_horse(queue, worker):
    job = queue.enqueue(horsejobs.sleep_with_pid, 60, job_timeout=120)
    handle = worker.start("default", *PY, "--python-processes", "1")
    running_in_horse(job)
    handle.proc.send_signal(signal.SIGTERM)
    time.sleep(1.5)  # beyond RQ's 1 s duplicate-signal window
    assert job.get_status() == JobStatus.STARTED, "a warm shutdown waits for the job"
    handle.proc.send_signal(signal.SIGTERM)
    result = handle.wait(timeout=20)
    assert result.returncode == 0
    assert job.get_status() == JobStatus.FAILED
    assert "rqw.errors.WorkerShutdown" in last_line(job.latest_result().exc_string)


@pytest.mark.min_rq("3.0.0", reason="send_stop_execution_command appeared in rq 3.0")
def test_stop_execution_command(conn, queue, worker):
    from rq.command import send_stop_execution_command

    job = queue.enqueue(horsejobs.sleep_with_pid, 60)
    handle = worker.start("default", *PY, "--python-processes", "1")
    running_in_horse(job)
    execution = wait_for(lambda: job.get_executions(), timeout=10, message="an execution")[0]
    send_stop_execution_command(conn, job.id, execution.id)
    wait_for(lambda: job.get_status() == JobStatus.STOPPED, timeout=10, message="job stopped")
    handle.stop()


def test_handlers_and_inspect_say_native_or_python(conn, url, queue):
    queue.enqueue(horsejobs.add, 1, 2)
    queue.enqueue(NOOP)
    handlers = subprocess.run([str(RQW_BIN), "handlers", "--enable-testing-handlers", "--python", sys.executable],
                              capture_output=True, text=True, check=True).stdout.splitlines()
    assert f"{NOOP}\tnative" in handlers and handlers[-1] == "*\tpython"
    text = subprocess.run([str(RQW_BIN), "inspect", "--url", url, "--enable-testing-handlers", "--python",
                           sys.executable], capture_output=True, text=True, check=True).stdout
    print(text)
    assert "1  horsejobs.add  [python]" in text
    assert f"1  {NOOP}  [native]" in text
    assert "summary: 2 job(s) read: 1 native, 1 python, 0 missing" in text


def test_metrics_by_runtime_restarts_and_rss(queue, worker):
    from compat import free_port
    from test_ops import metric, scrape_when

    port = free_port()
    handle = worker.start("default", *PY, "--python-processes", "1", "--metrics-addr", f"127.0.0.1:{port}")
    jobs = [queue.enqueue(horsejobs.add, 1, 1), queue.enqueue(NOOP), queue.enqueue(horsejobs.exit_now, 1),
            queue.enqueue(horsejobs.pid)]
    wait_for(lambda: all(j.get_status() in (JobStatus.FINISHED, JobStatus.FAILED) for j in jobs), timeout=30,
             message="jobs done")
    text = scrape_when(port, "rqw_horse_restarts_total", cause="died")
    assert metric(text, "rqw_jobs_by_runtime_total", runtime="python") == 3
    assert metric(text, "rqw_jobs_by_runtime_total", runtime="native") == 1
    assert metric(text, "rqw_horse_restarts_total", cause="died") == 1
    pid = jobs[3].return_value()
    assert metric(text, "rqw_horse_rss_bytes", pid=pid) > 1_000_000
    handle.stop()


def test_payloads_rqw_refuses_run_in_python(queue, worker):
    """Class instances in the arguments: rqw's own decoder refuses them; the horse unpickles."""
    job = queue.enqueue(horsejobs.echo, horsejobs.Money(decimal.Decimal("1.50"), "USD"))
    worker.run_burst("default", *PY)
    assert job.get_status() == JobStatus.FINISHED, job.exc_info
    assert job.return_value() == horsejobs.Money(decimal.Decimal("1.50"), "USD")


def test_horses_die_with_rqw(queue, worker):
    import os

    job = queue.enqueue(horsejobs.sleep_with_pid, 60)
    handle = worker.start("default", *PY, "--python-processes", "1")
    pid = running_in_horse(job)
    handle.kill()  # SIGKILL to rqw's process group; the horse has its own

    def gone():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(gone, timeout=10, message=f"horse {pid} gone after rqw was killed")


def test_the_redis_url_is_not_left_in_the_apps_environment(queue, worker):
    job = queue.enqueue(horsejobs.horse_environ)
    worker.run_burst("default", *PY)
    assert job.get_status() == JobStatus.FINISHED, job.exc_info
    assert job.return_value() == []


def test_dependents_and_result_ttl_of_python_jobs(conn, queue, worker):
    parent = queue.enqueue(horsejobs.add, 1, 2)
    child = queue.enqueue(horsejobs.add, 3, 4, depends_on=parent)
    gone = queue.enqueue(horsejobs.add, 0, 0, result_ttl=0)
    worker.run_burst("default", *PY)
    assert parent.return_value() == 3
    assert child.get_status() == JobStatus.FINISHED and child.return_value() == 7
    assert not conn.exists(gone.key), "result_ttl=0 deletes the job, as RQ does"


@pytest.mark.min_rq("2.3.0", reason="Repeat appeared in rq 2.3")
def test_repeat_of_a_python_job(conn, queue, worker):
    from rq import Repeat

    job = queue.enqueue(horsejobs.add, 2, 2, repeat=Repeat(times=2))
    worker.run_burst("default", *PY)
    job = Job.fetch(job.id, connection=conn)
    assert job.get_status() == JobStatus.FINISHED
    assert job.repeats_left == 0
    assert len(job.results()) == 3
    assert job.return_value() == 4


def test_a_horse_that_dies_while_idle_fails_no_job(queue, worker):
    import os

    first = queue.enqueue(horsejobs.pid)
    handle = worker.start("default", *PY, "--python-processes", "1")
    wait_for(lambda: first.get_status() == JobStatus.FINISHED, timeout=20, message="first job")
    os.kill(first.return_value(), signal.SIGKILL)  # as the OOM killer would, between jobs
    time.sleep(0.3)
    job = queue.enqueue(horsejobs.pid)
    wait_for(lambda: job.get_status() in (JobStatus.FINISHED, JobStatus.FAILED), timeout=20, message="next job")
    assert job.get_status() == JobStatus.FINISHED, job.exc_info
    assert job.return_value() != first.return_value()
    handle.stop()


def test_a_payload_over_rqws_size_limit_runs_in_python(queue, worker):
    """rqw leaves a `data` field over --max-payload-bytes in Redis; the horse reads the job itself."""
    import secrets

    text = secrets.token_hex(150_000)  # ~150 kB even zlib-compressed
    refused = queue.enqueue(horsejobs.echo, text)
    worker.run_burst("default", "--max-payload-bytes", "100000")  # without --python: over the limit
    assert "--max-payload-bytes" in refused.latest_result().exc_string
    job = queue.enqueue(horsejobs.echo, text)
    worker.run_burst("default", *PY, "--max-payload-bytes", "100000")
    assert job.get_status() == JobStatus.FINISHED, job.exc_info
    assert job.return_value() == text
