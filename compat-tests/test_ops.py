"""Operations: `rqw info` against a Redis populated by real rq (with a live rqw worker and a
live Python worker), `/metrics` and `/healthz` on --metrics-addr, `rqw healthcheck`, and the
JSON log lines of a job."""

import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from rq import Queue, Retry
from rq.job import Job, JobStatus
from rq.registry import (DeferredJobRegistry, FailedJobRegistry, FinishedJobRegistry, ScheduledJobRegistry,
                         StartedJobRegistry)

from compat import FAIL, NOOP, PYMOD, RQW_BIN, SLEEP, free_port, wait_for
from fake_twilio import FakeTwilio, body, status, worker_env

pytestmark = pytest.mark.rqw_only("rqw's own operator commands and endpoints")

RECORDING = "server.jobs.recording_job.process_recording_download_job"


# --------------------------------------------------------------------------- helpers


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(port, path):
    """(status, content type, body) of GET http://127.0.0.1:<port><path>; status 0 if nobody answers."""
    try:
        with _NO_PROXY.open(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.headers.get("Content-Type"), response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()
    except (urllib.error.URLError, ConnectionError, socket.timeout):
        return 0, None, ""


def metric(text, name, **labels):
    """The value of one sample of the OpenMetrics text, or None."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        if found == {k: str(v) for k, v in labels.items()}:
            return float(match.group(4))
    return None


def scrape_when(port, name, **labels):
    """/metrics once the sample `name{labels}` is there."""
    return wait_for(lambda: (lambda text: text if metric(text, name, **labels) is not None else None)(
        http_get(port, "/metrics")[2]), timeout=10, message=f"metric {name} {labels}")


def rqw(*args, timeout=30):
    proc = subprocess.run([str(RQW_BIN), *args], capture_output=True, text=True, timeout=timeout)
    print(f"$ rqw {' '.join(args)}\n[exit {proc.returncode}]\n{proc.stdout}\n{proc.stderr}")
    return proc


def start_python_worker(url, queue, name, logdir):
    script = Path(sys.executable).with_name("rq")
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "rq.cli"]
    env = dict(os.environ, PYTHONPATH=str(PYMOD))
    log = open(Path(logdir) / f"python-{name}.log", "wb")
    proc = subprocess.Popen([*argv, "worker", queue, "--url", url, "--name", name], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log


def info_rows(text):
    """{first cell: cells} of the table lines of `rqw info` (header and summary lines excluded)."""
    rows = {}
    for line in text.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) >= 7 and cells[0] not in ("QUEUE", "WORKER"):
            rows[cells[0]] = cells
    return rows


# --------------------------------------------------------------------------- rqw info


def test_info_matches_rq_without_side_effects(conn, url, worker, tmp_path):
    default = Queue("default", connection=conn)
    done = default.enqueue(NOOP)
    broken = default.enqueue(FAIL)
    worker.run_burst("default")
    assert done.get_status() == JobStatus.FINISHED and broken.get_status() == JobStatus.FAILED

    waiting = Queue("waiting", connection=conn)
    parent = waiting.enqueue(NOOP)
    waiting.enqueue(NOOP)
    waiting.enqueue(NOOP, depends_on=parent)
    waiting.enqueue_in(dt.timedelta(hours=1), NOOP)

    # What rq's counting would prune first (an expired entry), and what it keeps (a negative
    # failure_ttl score).
    past = int(time.time()) - 30
    conn.zadd("rq:finished:default", {"expired-entry": past})
    conn.zadd("rq:failed:default", {"kept-forever": -1})

    slow = Queue("slow", connection=conn)
    running = slow.enqueue(SLEEP, 30)
    live = worker.start("slow", "--name", "rqw-live")
    wait_for(lambda: running.get_status() == JobStatus.STARTED, timeout=15, message="job started")
    py, log = start_python_worker(url, "pyq", "py-live", tmp_path)
    try:
        wait_for(lambda: conn.hget("rq:worker:py-live", "state") == b"idle", timeout=30,
                 message="python worker registered and idle")
        result = rqw("info", "--url", url)
        assert result.returncode == 0, result.stderr
        rows = info_rows(result.stdout)

        # Read-only: the expired entry is still there (rq info would have removed it).
        assert conn.zscore("rq:finished:default", "expired-entry") == past

        expected = {}
        for name in ("default", "waiting", "slow"):
            q = Queue(name, connection=conn)
            expected[name] = [name] + [str(n) for n in (
                len(q),
                StartedJobRegistry(queue=q).count,
                FinishedJobRegistry(queue=q).count,
                FailedJobRegistry(queue=q).count,
                DeferredJobRegistry(queue=q).count,
                ScheduledJobRegistry(queue=q).count,
            )]
            assert rows[name][:7] == expected[name], result.stdout
        assert expected["default"] == ["default", "0", "0", "1", "2", "0", "0"]
        assert expected["waiting"] == ["waiting", "2", "0", "0", "0", "1", "1"]
        assert expected["slow"] == ["slow", "0", "1", "0", "0", "0", "0"]

        import rq
        r, p = rows["rqw-live"], rows["py-live"]
        assert r[1].startswith("rqw ") and r[2] == "busy" and r[3] == "slow" and r[4] == running.id, r
        assert p[1] == f"rq {rq.__version__}" and p[2] == "idle" and p[3] == "pyq" and p[4] == "-", p
        assert re.search(r"^2 workers: 1 rqw, 1 python$", result.stdout, re.M), result.stdout
        assert f"{url} at " in result.stdout

        # Only some queues: those rows, and only the workers listening on them.
        only = rqw("info", "--url", url, "slow", "nosuchqueue")
        rows = info_rows(only.stdout)
        assert set(rows) == {"slow", "nosuchqueue", "rqw-live"}, only.stdout
        assert rows["nosuchqueue"][1:7] == ["0"] * 6
    finally:
        py.terminate()
        py.wait(30)
        log.close()
        live.kill()


def test_info_interval_redraws_until_ctrl_c(conn, url):
    Queue("default", connection=conn).enqueue(NOOP)
    proc = subprocess.Popen([str(RQW_BIN), "info", "--url", url, "--interval", "0.2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert out.count("1 queue, 1 job queued, 0 started") >= 3, out


def test_info_never_prints_the_password():
    port = free_port()
    result = rqw("info", "--url", f"redis://:s3cret-pw@127.0.0.1:{port}/0")
    assert result.returncode == 1
    assert "s3cret-pw" not in result.stdout + result.stderr
    assert "redis://:***@127.0.0.1" in result.stderr
    assert rqw("info", "--url", "redis://127.0.0.1:1/0", "--interval", "0").returncode != 0


def test_connection_errors_say_each_cause_once():
    for command in ("info", "inspect"):
        result = rqw(command, "--url", "redis://127.0.0.1:1/0")
        assert result.returncode == 1
        line = result.stderr.strip()
        assert line.startswith("rqw: cannot connect to Redis at redis://127.0.0.1:1/0: "), line
        assert line.count("Connection refused") == 1, line


def test_first_contact_errors_are_words_not_traces():
    env = {k: v for k, v in os.environ.items() if k != "RQW_METRICS_ADDR"}
    result = subprocess.run([str(RQW_BIN), "healthcheck"], capture_output=True, text=True, timeout=30, env=env)
    assert result.returncode == 1
    assert "pass --addr ADDR or set RQW_METRICS_ADDR" in result.stderr, result.stderr
    # --concurrency and --threads are both checked by the command line, with the same message shape.
    for flag in ("--concurrency", "--threads"):
        result = rqw("worker", flag, "0", "--url", "redis://127.0.0.1:1/0")
        assert result.returncode == 2
        assert f"invalid value '0' for '{flag}" in result.stderr and "is not in 1..=" in result.stderr, result.stderr


# --------------------------------------------------------------------------- metrics and health


def test_metrics_healthz_and_healthcheck(conn, worker):
    port = free_port()
    addr = f"127.0.0.1:{port}"
    q = Queue("default", connection=conn)
    handle = worker.start("default", "--name", "m1", "--metrics-addr", addr)
    wait_for(lambda: http_get(port, "/healthz")[0] == 200, timeout=15, message="/healthz 200")
    code, ctype, text = http_get(port, "/healthz")
    health = json.loads(text)
    assert ctype == "application/json"
    assert health["status"] == "ok" and health["worker"] == "m1" and health["redis"] is True
    assert 0 <= health["heartbeat_age_seconds"] < 60
    assert rqw("healthcheck", "--addr", addr).returncode == 0

    slow = q.enqueue(SLEEP, 2)
    waiting = [q.enqueue(NOOP) for _ in range(2)]
    wait_for(lambda: slow.get_status() == JobStatus.STARTED, timeout=15, message="sleep job started")
    code, ctype, text = http_get(port, "/metrics")
    assert code == 200 and ctype.startswith("application/openmetrics-text"), ctype
    assert metric(text, "rqw_jobs_in_flight", queue="default") == 1, text
    assert metric(text, "rqw_queue_depth", queue="default") == 2, text
    assert metric(text, "rqw_redis_up") == 1

    failing = q.enqueue(FAIL, retry=Retry(max=1))
    wait_for(lambda: failing.get_status() == JobStatus.FAILED and all(
        j.get_status() == JobStatus.FINISHED for j in [slow, *waiting]), timeout=30, message="all jobs done")
    # The counters move right after the outcome is written: Python may see it a moment earlier.
    text = scrape_when(port, "rqw_jobs_failed_total", queue="default", function=FAIL)
    assert metric(text, "rqw_jobs_started_total", queue="default", function=NOOP) == 2, text
    assert metric(text, "rqw_jobs_finished_total", queue="default", function=NOOP) == 2
    assert metric(text, "rqw_jobs_finished_total", queue="default", function=SLEEP) == 1
    assert metric(text, "rqw_jobs_started_total", queue="default", function=FAIL) == 2
    assert metric(text, "rqw_jobs_retried_total", queue="default", function=FAIL) == 1
    assert metric(text, "rqw_jobs_failed_total", queue="default", function=FAIL) == 1
    assert metric(text, "rqw_job_duration_seconds_count", queue="default", function=SLEEP) == 1
    assert metric(text, "rqw_job_duration_seconds_sum", queue="default", function=SLEEP) >= 2
    assert metric(text, "rqw_jobs_in_flight", queue="default") == 0
    assert metric(text, "rqw_queue_depth", queue="default") == 0
    assert text.endswith("# EOF\n")

    assert http_get(port, "/nope")[0] == 404
    # A worker record that says the worker died is unhealthy.
    conn.hset("rq:worker:m1", "death", "2026-01-01T00:00:00.000000Z")
    code, _, text = http_get(port, "/healthz")
    assert code == 503 and json.loads(text)["status"] == "unhealthy", text
    assert rqw("healthcheck", "--addr", addr).returncode == 1

    assert handle.stop(signal.SIGTERM).returncode == 0
    assert http_get(port, "/healthz")[0] == 0
    assert rqw("healthcheck", "--addr", addr, "--timeout", "2").returncode == 1


def test_metrics_address_taken_stops_the_start(conn, worker):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = worker.run_burst("default", "--metrics-addr", f"127.0.0.1:{port}", check=False)
    assert result.returncode == 1
    assert f"cannot serve metrics on 127.0.0.1:{port}" in result.stderr
    assert not conn.exists("rq:workers") or conn.scard("rq:workers") == 0


# --------------------------------------------------------------------------- JSON logs


def json_lines(text):
    lines = []
    for raw in text.splitlines():
        raw = raw.strip()
        if raw:
            lines.append(json.loads(raw))
    return lines


def test_json_logs_carry_the_job_on_every_line(conn, queue, worker):
    jobs = {queue.enqueue(NOOP).id: NOOP, queue.enqueue(FAIL).id: FAIL}
    result = worker.run_burst("default", "--log-format", "json")
    lines = json_lines(result.stderr)
    for job_id, function in jobs.items():
        mine = [line for line in lines if line.get("span", {}).get("job_id") == job_id]
        assert len(mine) >= 2, lines
        for line in mine:
            assert line["span"]["queue"] == "default" and line["span"]["function"] == function, line
        messages = " | ".join(line["fields"].get("message", "") for line in mine)
        assert f"JOB PICKED queue='default' job_id={job_id}" in messages
    for line in lines:
        message = line["fields"].get("message", "")
        if "JOB PICKED" in message or "job recorded" in message or "job failed" in message:
            assert {"job_id", "queue", "function"} <= set(line.get("span", {})), line


def test_recording_metrics_and_json_logs(conn, worker, tmp_path):
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    audio = bytes(range(256)) * 20
    business, sid, account = 7, "CA" + "1" * 32, "AC" + "a" * 32
    with FakeTwilio(lambda r: body(200, audio) if ".wav" in r.path else status(404)) as twilio:
        worker.env.update(worker_env(twilio, recordings, account, "tok"))
        # Five calls of this business hold every download slot: the job must wait.
        holders = [f"CA{n:032x}" for n in range(5)]
        for holder in holders:
            conn.sadd(f"rec_slots:{business}", holder)
            conn.setex(f"rec_inflight:{business}:{holder}", 300, "processing")
        port = free_port()
        handle = worker.start("recordings", "--metrics-addr", f"127.0.0.1:{port}", "--log-format", "json")
        wait_for(lambda: http_get(port, "/healthz")[0] == 200, timeout=15, message="/healthz 200")
        job = Queue("recordings", connection=conn).enqueue(
            RECORDING, call_sid=sid, recording_url=f"{twilio.base}/2010-04-01/Accounts/{account}/Recordings/RE{'1' * 32}.json",
            business_id=business, job_timeout="10m", retry=Retry(max=3))
        wait_for(lambda: metric(http_get(port, "/metrics")[2], "rqw_recording_semaphore_waits_total") == 1,
                 timeout=15, message="the job waits for a slot")
        # The API releases a slot as Python does: the waiting call gets it.
        conn.srem(f"rec_slots:{business}", holders[0])
        conn.delete(f"rec_inflight:{business}:{holders[0]}")
        nxt = conn.lpop(f"rec_queue:{business}").decode()
        assert nxt == sid
        conn.srem(f"rec_queued:{business}", nxt)
        conn.sadd(f"rec_slots:{business}", nxt)
        conn.setex(f"rec_inflight:{business}:{nxt}", 900, "processing")
        wait_for(lambda: job.get_status() == JobStatus.FINISHED, timeout=30, message="recording downloaded")
        text = scrape_when(port, "rqw_jobs_finished_total", queue="recordings", function=RECORDING)
        assert metric(text, "rqw_recording_downloaded_bytes_total") == len(audio), text
        assert metric(text, "rqw_recording_slot_wait_seconds_count") == 1
        assert metric(text, "rqw_recording_slot_wait_seconds_sum") > 0
        assert metric(text, "rqw_jobs_finished_total", queue="recordings", function=RECORDING) == 1
        assert handle.stop(signal.SIGTERM).returncode == 0

    lines = json_lines(handle.result.stderr)
    ops_lines = [line for line in lines if "[RQ_RECORDING]" in line["fields"].get("message", "")]
    assert len(ops_lines) >= 4, lines
    for line in ops_lines:
        span = line.get("span", {})
        assert (span.get("job_id"), span.get("queue"), span.get("function")) == (job.id, "recordings", RECORDING), line
    assert (recordings / f"{sid}.mp3").read_bytes() == audio
