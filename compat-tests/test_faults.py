"""Faults: whatever happens to rqw or Redis, every job ends finished, failed or retried as RQ
would have it, read back through rq's own API. None vanishes; none runs twice unless a crash
came in between.

Time is kept short: `--job-monitoring-interval 1` (heartbeat TTL 61 s, RQ's floor), and
where a test needs the 61 s to have passed it asks RQ's own cleanup about a later time
(`StartedJobRegistry.cleanup(timestamp)`) or moves the dead worker's registry scores into the
past (`faults.expire_heartbeats`); everything else is real: real kill -9, real redis-server
stops, real signals.
"""

import os
import signal
import subprocess
import time

import pytest
from rq import Queue, Retry
from rq.command import send_shutdown_command
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, StartedJobRegistry

from compat import ECHO, NOOP, RQ_VERSION, RQW_BIN, SLEEP, last_line, version_tuple, wait_for
from conftest import WorkerRunner
from duty_helpers import python_worker  # noqa: F401  (fixture)
from fake_twilio import body, stall, twilio_for
from faults import HEARTBEAT_TTL_FLOOR, OwnRedis, cpu_seconds, expire_heartbeats, free_port, sigkill, wip_members

pytestmark = pytest.mark.rqw_only("kills, signals and outages of the rqw process")

FAST = ("--job-monitoring-interval", "1")


def statuses(jobs):
    return [job.get_status(refresh=True) for job in jobs]


def all_started(jobs):
    return all(s == JobStatus.STARTED for s in statuses(jobs))


def exc_text(job):
    """The failure text as rq shows it (latest result; 2.0.0 abandoned jobs: exc_info)."""
    result = job.latest_result()
    if result is not None and result.exc_string:
        return result.exc_string
    return job.exc_info or ""


def assert_clean_output(handle):
    out, err = handle.output()
    text = out + err
    assert "panicked" not in text and " panic" not in text.replace("rqw.testing.panic", ""), handle.describe()


# --------------------------------------------------------------------------- kill -9


def _kill_with_four_in_flight(queue, worker, name):
    """Four sleep jobs running in a `--concurrency 4` rqw (two with retries), a fifth queued
    behind them, then kill -9. Returns (with_retry, without_retry, queued)."""
    with_retry = [queue.enqueue(SLEEP, 2, retry=Retry(max=2), job_timeout=60) for _ in range(2)]
    without = [queue.enqueue(SLEEP, 2, job_timeout=60) for _ in range(2)]
    queued = queue.enqueue(NOOP)
    handle = worker.start("default", "--concurrency", "4", "--name", name, *FAST)
    wait_for(lambda: all_started(with_retry + without), timeout=15, message="four jobs running")
    sigkill(handle)
    assert_clean_output(handle)

    # What the crash left: nothing vanished. The four are still `started` and held in the
    # StartedJobRegistry (only a registry reader after the heartbeat TTL may touch them);
    # the fifth never left its queue.
    conn = queue.connection
    assert statuses(with_retry + without) == [JobStatus.STARTED] * 4
    held = sorted(m.split(":")[0] for m in wip_members(conn))
    assert held == sorted(j.id for j in with_retry + without)
    assert queue.job_ids == [queued.id]
    assert conn.llen("rq:queue:default:intermediate") == 0
    return with_retry, without, queued


def _check_recovered(queue, with_retry, without, queued):
    for job in with_retry:
        job.refresh()
        assert job.get_status() == JobStatus.FINISHED, exc_text(job)
        assert job.retries_left == 1, "one retry consumed by the crash"
        assert job.return_value() == 2
    for job in without:
        job.refresh()
        assert job.get_status() == JobStatus.FAILED
        assert job.id in queue.failed_job_registry.get_job_ids()
        assert "AbandonedJobError" in exc_text(job), exc_text(job)
    assert queued.get_status(refresh=True) == JobStatus.FINISHED
    assert wip_members(queue.connection) == []
    assert len(queue) == 0


@pytest.mark.skip_rq("2.0.0", reason="rq 2.0.0's StartedJobRegistry.cleanup cannot parse '<id>:<execution>' "
                     "members (its own format): it drops them without failing the job")
def test_kill9_in_flight_jobs_are_recovered_by_rqs_own_cleanup(queue, worker, conn):
    with_retry, without, queued = _kill_with_four_in_flight(queue, worker, "victim-rq")
    # Any rq reader of the registry after the heartbeat TTL (61 s) runs the abandoned-job
    # handling; ask it about that moment instead of sleeping through it.
    StartedJobRegistry("default", connection=conn).cleanup(time.time() + HEARTBEAT_TTL_FLOOR + 1)
    for job in with_retry:
        assert job.get_status(refresh=True) == JobStatus.QUEUED
    for job in without:
        assert job.get_status(refresh=True) == JobStatus.FAILED
    assert sorted(queue.job_ids) == sorted([queued.id] + [j.id for j in with_retry])

    worker.run_burst("default", "--concurrency", "4")
    _check_recovered(queue, with_retry, without, queued)


def test_kill9_in_flight_jobs_are_recovered_by_another_rqw(queue, worker, conn):
    with_retry, without, queued = _kill_with_four_in_flight(queue, worker, "victim-rqw")
    expire_heartbeats(conn, dead=["victim-rqw"])  # as if 61 s had passed since the last heartbeat
    result = worker.run_burst("default", "--concurrency", "4", "--name", "rescuer")
    assert "cleaning registries for queue: default" in result.stderr + result.stdout
    _check_recovered(queue, with_retry, without, queued)


@pytest.mark.skip_rq("2.0.0", reason="rq 2.0.0's StartedJobRegistry.cleanup cannot parse '<id>:<execution>' "
                     "members (its own format): it drops them without failing the job")
def test_kill9_in_flight_jobs_are_recovered_by_a_python_worker(queue, worker, python_worker, conn):
    # A Python `rq worker` of this venv beside rqw: its maintenance (StartedJobRegistry.cleanup,
    # under RQ's clean_registries lock) fails or retries what the dead rqw left, then runs them.
    with_retry, without, queued = _kill_with_four_in_flight(queue, worker, "victim-py")
    expire_heartbeats(conn, dead=["victim-py"])  # as if 61 s had passed since the last heartbeat
    python_worker.run_burst("default", timeout=90)
    _check_recovered(queue, with_retry, without, queued)


# --------------------------------------------------------------------------- kill -9 mid-download

FUNC = "server.jobs.recording_job.process_recording_download_job"
ACCOUNT = "AC" + "a" * 32
TOKEN = "faults-secret-token"
BUSINESS = 77


@pytest.fixture
def recording_env(worker, tmp_path):
    with twilio_for(worker, tmp_path, ACCOUNT, TOKEN, request_timeout=30) as env:
        yield env


# The API's cleanup (first half of Python's acquire script): frees slots whose marker is gone.
PY_CLEANUP = """
local removed = 0
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', 'rec_inflight:' .. ARGV[1] .. ':' .. m) == 0 then redis.call('SREM', KEYS[1], m); removed = removed + 1 end
end
return removed
"""


def test_kill9_mid_download_the_slot_waits_for_its_marker_then_the_retry_downloads(conn, worker, recording_env):
    twilio, recordings = recording_env
    sid = "CA" + "7" * 32
    twilio.router = lambda r: stall(1_000_000, 20_000)
    job = Queue("recordings", connection=conn).enqueue(
        FUNC, call_sid=sid, recording_url=f"/2010-04-01/Accounts/{ACCOUNT}/Recordings/RE{'7' * 32}",
        business_id=BUSINESS, job_timeout="10m", retry=Retry(max=3), failure_ttl=3600,
        job_id=f"recording_download_{sid}_1")
    handle = worker.start("recordings", "--name", "victim-rec", *FAST)
    wait_for(lambda: len(twilio.requests) == 1 and any(p.name.endswith(".part") for p in recordings.iterdir()),
             timeout=15, message="download in progress")
    sigkill(handle)

    slots, inflight = f"rec_slots:{BUSINESS}", f"rec_inflight:{BUSINESS}:{sid}"
    # The crash left the slot taken and the call "processing", as the Python worker's crash
    # did: the in-flight marker keeps its TTL (900 s, the contract's), and the API's cleanup
    # frees a slot only once that marker is gone.
    assert conn.sismember(slots, sid)
    assert 0 < conn.ttl(inflight) <= 900
    assert conn.eval(PY_CLEANUP, 1, slots, BUSINESS) == 0
    assert conn.sismember(slots, sid)
    # Nothing half-written is visible to the API (only a hidden temporary file remains).
    assert not (recordings / f"{sid}.mp3").exists()
    assert [p.name for p in recordings.iterdir() if not p.name.startswith(".")] == []

    # 900 s later the marker expires (made to happen now) and the API's cleanup frees the slot.
    conn.pexpire(inflight, 1)
    wait_for(lambda: not conn.exists(inflight), timeout=5, message="marker expiry")
    assert conn.eval(PY_CLEANUP, 1, slots, BUSINESS) == 1
    assert not conn.sismember(slots, sid)

    # The job itself is recovered by RQ's abandoned-job handling (61 s heartbeat TTL, made to
    # have passed) and retried; the retry downloads. The killed worker's temporary file, made
    # two hours old, is swept by the first download of the next process.
    leftovers = [p for p in recordings.iterdir() if p.name.endswith(".part")]
    assert len(leftovers) == 1
    two_hours_ago = time.time() - 7200
    os.utime(leftovers[0], (two_hours_ago, two_hours_ago))
    twilio.router = lambda r: body(200, b"\x01" * 5000)
    # (The victim may have been killed inside its first maintenance pass, which runs beside
    # the job: its lease on the queue's lock has expired by now too.)
    expire_heartbeats(conn, "recordings", dead=["victim-rec"])
    result = worker.run_burst("recordings", "--name", "rescuer-rec")
    assert sorted(p.name for p in recordings.iterdir()) == [f"{sid}.mp3"]
    assert "Removed 1 temporary file(s) left by an interrupted download" in result.stderr
    job.refresh()
    assert job.get_status() == JobStatus.FINISHED, exc_text(job)
    assert job.retries_left == 2
    assert job.return_value()["success"] is True
    assert (recordings / f"{sid}.mp3").read_bytes() == b"\x01" * 5000
    assert conn.scard(slots) == 0 and not conn.exists(inflight)


# --------------------------------------------------------------------------- Redis outages


@pytest.fixture
def own_redis(tmp_path):
    server = OwnRedis(tmp_path / "own-redis", persist=True)
    yield server
    server.close()


def test_redis_restart_mid_run_rqw_neither_crashes_nor_spins_and_recovers(own_redis, tmp_path):
    own_redis.start()
    conn = own_redis.client()
    queue = Queue("default", connection=conn)
    runner = WorkerRunner(own_redis.url, tmp_path)
    try:
        in_flight = [queue.enqueue(SLEEP, 2, job_timeout=60) for _ in range(2)]
        handle = runner.start("default", "--concurrency", "2", "--name", "w-outage", *FAST)
        wait_for(lambda: all_started(in_flight), timeout=15, message="jobs running")
        conn.close()

        own_redis.stop()
        time.sleep(0.5)
        cpu_before = cpu_seconds(handle.pid)
        time.sleep(4)  # the jobs end meanwhile: their outcomes wait for Redis
        cpu_used = cpu_seconds(handle.pid) - cpu_before
        print(f"rqw CPU time during 4 s without Redis: {cpu_used:.2f} s")
        assert handle.alive(), handle.describe()
        assert cpu_used < 0.4, f"rqw used {cpu_used:.2f} s of CPU in 4 s without Redis (spinning?)"

        own_redis.start()
        conn = own_redis.client()
        queue = Queue("default", connection=conn)
        wait_for(lambda: statuses(in_flight) == [JobStatus.FINISHED] * 2, timeout=30,
                 message="outcomes recorded after the restart")
        for job in in_flight:
            assert job.return_value() == 2

        after = [queue.enqueue(ECHO, i) for i in range(3)]
        wait_for(lambda: statuses(after) == [JobStatus.FINISHED] * 3, timeout=20, message="jobs after restart")
        assert [j.return_value() for j in after] == [{"args": [i], "kwargs": {}} for i in range(3)]
        assert wip_members(conn) == [] and len(queue) == 0

        # The command channel (pub/sub) is back too (resubscribed with backoff: a command
        # published before that is lost, as with rq's own worker): rq's shutdown command works.
        wait_for(lambda: b"rq:pubsub:w-outage" in conn.pubsub_channels(), timeout=15, message="resubscribed")
        send_shutdown_command(conn, "w-outage")
        result = handle.wait(timeout=20)
        assert result.returncode == 0
        assert_clean_output(handle)
    finally:
        runner.close()
        conn.close()


def test_redis_absent_at_start_gives_up_after_startup_timeout():
    port = free_port()
    secret = "startup-secret-pw"
    started = time.monotonic()
    proc = subprocess.run(
        [str(RQW_BIN), "worker", "--url", f"redis://user:{secret}@127.0.0.1:{port}/0", "--startup-timeout", "2"],
        capture_output=True, text=True, timeout=30)
    elapsed = time.monotonic() - started
    output = proc.stdout + proc.stderr
    print(output)
    assert proc.returncode == 1
    assert elapsed < 15
    assert "Redis is unreachable; retrying" in output
    assert "giving up" in output
    assert secret not in output
    assert "***" in output  # the URL is shown, masked


def test_redis_absent_at_start_rqw_waits_then_serves(tmp_path):
    server = OwnRedis(tmp_path / "late-redis")
    runner = WorkerRunner(server.url, tmp_path)
    try:
        handle = runner.start("default", "--startup-timeout", "0", "--max-jobs", "1", "--name", "w-late")
        time.sleep(1.5)
        assert handle.alive(), handle.describe()
        server.start()
        conn = server.client()
        job = Queue("default", connection=conn).enqueue(ECHO, "late")
        result = handle.wait(timeout=30)
        assert result.returncode == 0
        assert job.get_status(refresh=True) == JobStatus.FINISHED
        assert "Redis is unreachable; retrying" in result.stderr
        conn.close()
    finally:
        runner.close()
        server.close()


# --------------------------------------------------------------------------- SIGTERM


def test_sigterm_with_shutdown_grace(queue, worker, conn):
    short = queue.enqueue(SLEEP, 1, job_timeout=60)
    long_retry = queue.enqueue(SLEEP, 60, retry=Retry(max=1), job_timeout=120)
    long_once = queue.enqueue(SLEEP, 60, job_timeout=120)
    later = [queue.enqueue(NOOP) for _ in range(2)]
    handle = worker.start("default", "--concurrency", "3", "--shutdown-grace", "2", "--name", "w-grace", *FAST)
    wait_for(lambda: all_started([short, long_retry, long_once]), timeout=15, message="three jobs running")

    signalled = time.monotonic()
    handle.proc.send_signal(signal.SIGTERM)
    result = handle.wait(timeout=30)
    elapsed = time.monotonic() - signalled
    assert result.returncode == 0
    assert 1.5 <= elapsed < 12, f"grace 2 s, took {elapsed:.1f} s"

    assert short.get_status(refresh=True) == JobStatus.FINISHED  # ended within the grace
    long_retry.refresh()
    assert long_retry.get_status() == JobStatus.QUEUED and long_retry.retries_left == 0
    long_once.refresh()
    assert long_once.get_status() == JobStatus.FAILED
    assert "rqw.errors.WorkerShutdown" in last_line(exc_text(long_once))
    # No new job after the signal: the two behind stay queued, the retried one joins them.
    assert [j.get_status(refresh=True) for j in later] == [JobStatus.QUEUED] * 2
    assert sorted(queue.job_ids) == sorted([j.id for j in later] + [long_retry.id])
    assert wip_members(conn) == []
    assert_clean_output(handle)


def test_second_sigterm_stops_at_once(queue, worker, conn):
    retry = queue.enqueue(SLEEP, 60, retry=Retry(max=1), job_timeout=120)
    once = queue.enqueue(SLEEP, 60, job_timeout=120)
    handle = worker.start("default", "--concurrency", "2", "--name", "w-cold", *FAST)
    wait_for(lambda: all_started([retry, once]), timeout=15, message="two jobs running")
    handle.proc.send_signal(signal.SIGTERM)
    time.sleep(1.5)  # beyond RQ's 1 s duplicate-signal window
    assert handle.alive(), "a warm shutdown waits for the running jobs"
    assert statuses([retry, once]) == [JobStatus.STARTED] * 2
    signalled = time.monotonic()
    handle.proc.send_signal(signal.SIGTERM)
    result = handle.wait(timeout=20)
    assert time.monotonic() - signalled < 8
    assert result.returncode == 0
    retry.refresh()
    assert retry.get_status() == JobStatus.QUEUED and retry.retries_left == 0
    assert once.get_status(refresh=True) == JobStatus.FAILED
    assert "WorkerShutdown" in last_line(exc_text(once))
    assert wip_members(conn) == []
    assert_clean_output(handle)


# --------------------------------------------------------------------------- recordings folder faults


def _mount_tmpfs(path, options):
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True, text=True)
    return proc.returncode == 0


def _umount(path):
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def folder_fault(tmp_path):
    """Yields a factory: kind 'full' (a 256 KiB tmpfs) or 'readonly' (a read-only tmpfs) as
    the recordings folder. Without mount rights (not root, no CAP_SYS_ADMIN): 'full' is
    skipped, 'readonly' becomes a folder whose parent is a regular file (writes fail as root
    too, unlike chmod)."""
    mounted = []

    def make(kind):
        target = tmp_path / f"mnt-{kind}"
        options = "size=256k" if kind == "full" else "ro,size=64k"
        if _mount_tmpfs(target, options):
            mounted.append(target)
            return target, "mounted tmpfs"
        if kind == "full":
            pytest.skip("cannot mount a small tmpfs here (needs root / CAP_SYS_ADMIN) to fill a disk")
        blocker = tmp_path / "not-a-dir"
        blocker.write_text("a regular file where a folder should be")
        return blocker / "recordings", "parent is a regular file"

    yield make
    for target in mounted:
        _umount(target)


@pytest.mark.parametrize("kind", ["full", "readonly"])
def test_recordings_folder_full_or_read_only(conn, worker, recording_env, folder_fault, kind):
    twilio, _ = recording_env
    folder, how = folder_fault(kind)
    worker.env["RECORDINGS_DIR"] = str(folder)
    big = b"\x09" * (600 * 1024)  # larger than the 256 KiB disk
    twilio.router = lambda r: body(200, big if "RE" + "1" * 32 in r.path else b"\x0a" * 4000)
    q = Queue("recordings", connection=conn)
    common = dict(business_id=BUSINESS, job_timeout=60, failure_ttl=3600)
    bad = q.enqueue(FUNC, call_sid="CA" + "1" * 32, retry=Retry(max=1),
                    recording_url=f"/2010-04-01/Accounts/{ACCOUNT}/Recordings/RE{'1' * 32}", **common)
    result = worker.run_burst("recordings", timeout=60)

    bad.refresh()
    assert bad.get_status() == JobStatus.FAILED, how
    assert bad.retries_left == 0, "a storage error is retryable: the retry ran and failed too"
    text = last_line(exc_text(bad))
    expected = "No space left on device" if kind == "full" else ("Read-only file system" if how.startswith("mounted")
                                                                   else "Not a directory")
    assert "cannot write the recording" in text or expected in text, text
    assert expected in text, text
    assert len(twilio.requests) >= 2
    if folder.is_dir():
        assert list(folder.iterdir()) == [], "no temporary file is left"
    sid = "CA" + "1" * 32
    assert conn.scard(f"rec_slots:{BUSINESS}") == 0
    assert not conn.exists(f"rec_inflight:{BUSINESS}:{sid}")
    assert TOKEN not in result.stdout + result.stderr

    if kind == "full":
        # Space was given back: a recording that fits is downloaded by the same kind of worker.
        ok = q.enqueue(FUNC, call_sid="CA" + "2" * 32,
                       recording_url=f"/2010-04-01/Accounts/{ACCOUNT}/Recordings/RE{'2' * 32}", **common)
        worker.run_burst("recordings")
        assert ok.get_status(refresh=True) == JobStatus.FINISHED, exc_text(ok)
        assert [p.name for p in folder.iterdir()] == ["CA" + "2" * 32 + ".mp3"]
