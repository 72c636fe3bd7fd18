"""Fixtures of the compat suite: a private redis-server, a clean database per test, and the
worker under test (`WORKER=rqw`, the default, or `WORKER=python` for RQ's own worker).

Markers (see pytest.ini):
- `rqw_only(reason)`: skipped with WORKER=python (behaviour only rqw has or differs in on purpose);
- `python_only(reason)`: skipped with WORKER=rqw;
- `min_rq("2.12.0", reason=...)`: skipped on older rq versions (API the test needs is missing);
- `skip_rq("2.0.0", reason=...)`: skipped on exactly that rq version (one version's own defect);
- `newest_rq_only(reason)`: runs on the newest pinned rq only ([`NEWEST_PINNED_RQ`]): a long
  test of rqw's own behaviour that the rq version does not change (what rq does in it is
  covered on every version by other tests); `RQW_ALL_VERSIONS=1` runs it on every version.
"""

import os
import shutil
import signal as signals
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from rq import Queue

from compat import PYMOD, RQ_VERSION, RQW_BIN, WORKER_KIND, free_port, version_tuple, wait_for

# --------------------------------------------------------------------------- markers


def pytest_report_header(config):
    import rq

    target = f"rqw ({RQW_BIN})" if WORKER_KIND == "rqw" else "python (rq worker of this venv)"
    return f"compat: rq {rq.__version__}, worker under test: {target}"


# The newest rq of compat-tests/setup.sh's pinned list (keep the two in step).
NEWEST_PINNED_RQ = "3.0.0"


def pytest_collection_modifyitems(config, items):
    every_version = os.environ.get("RQW_ALL_VERSIONS") == "1"
    for item in items:
        marker = item.get_closest_marker("newest_rq_only")
        if marker and not every_version and RQ_VERSION != version_tuple(NEWEST_PINNED_RQ):
            item.add_marker(pytest.mark.skip(
                reason=f"runs on rq {NEWEST_PINNED_RQ} only (RQW_ALL_VERSIONS=1 for all): {marker.args[0] if marker.args else ''}"))
        marker = item.get_closest_marker("rqw_only")
        if marker and WORKER_KIND != "rqw":
            item.add_marker(pytest.mark.skip(reason=f"rqw only: {marker.args[0] if marker.args else ''}"))
        marker = item.get_closest_marker("python_only")
        if marker and WORKER_KIND != "python":
            item.add_marker(pytest.mark.skip(reason=f"python worker only: {marker.args[0] if marker.args else ''}"))
        marker = item.get_closest_marker("min_rq")
        if marker and RQ_VERSION < version_tuple(marker.args[0]):
            item.add_marker(pytest.mark.skip(reason=f"needs rq >= {marker.args[0]}: {marker.kwargs.get('reason', '')}"))
        marker = item.get_closest_marker("skip_rq")
        if marker and RQ_VERSION == version_tuple(marker.args[0]):
            item.add_marker(pytest.mark.skip(reason=f"not on rq {marker.args[0]}: {marker.kwargs.get('reason', '')}"))


def pytest_sessionstart(session):
    if WORKER_KIND == "rqw" and not (RQW_BIN.is_file() and os.access(RQW_BIN, os.X_OK)):
        pytest.exit(
            f"rqw binary not found or not executable at {RQW_BIN}: build it (cargo build) or set RQW_BIN",
            returncode=3,
        )


# --------------------------------------------------------------------------- redis


class RedisServer:
    def __init__(self, port, proc, log):
        self.port = port
        self.proc = proc
        self.log = log
        self.url = f"redis://127.0.0.1:{port}/0"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.exit("redis-server not found on PATH: the compat suite spawns its own (apt-get install redis-server)",
                    returncode=3)
    workdir = tmp_path_factory.mktemp("redis")
    last_error = ""
    for _attempt in range(3):
        port = free_port()
        log = workdir / f"redis-{port}.log"
        proc = subprocess.Popen(
            [exe, "--port", str(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1",
             "--dir", str(workdir), "--logfile", str(log), "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
        )
        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            last_error = log.read_text() if log.exists() else "(no log)"
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            continue
        client.close()
        server = RedisServer(port, proc, log)
        yield server
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return
    pytest.exit(f"could not start redis-server:\n{last_error}", returncode=3)


@pytest.fixture
def url(redis_server):
    return redis_server.url


@pytest.fixture
def conn(redis_server):
    """A redis-py connection to the private server, flushed before each test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def queue(conn):
    return Queue("default", connection=conn)


# --------------------------------------------------------------------------- worker


def _split_option(arg):
    return arg.split("=", 1) if arg.startswith("--") and "=" in arg else [arg]


def python_worker_args(extra):
    """Translates rqw's flags into `rq worker` flags."""
    args = [piece for arg in extra for piece in _split_option(arg)]
    out = []
    i = 0
    while i < len(args):
        arg = args[i]
        value = args[i + 1] if i + 1 < len(args) else None
        if arg in ("--serializer", "-S"):
            if value == "json":
                out += ["-S", "rq.serializers.JSONSerializer"]
            elif value != "pickle":
                raise ValueError(f"unknown serializer {value!r}")
            i += 2
        elif arg in ("--logging-level", "-l"):
            out += ["--logging_level", value]
            i += 2
        elif arg == "--log-format":
            i += 2  # rq's --log-format is a logging format string, not text|json: no equivalent
        elif arg in ("--concurrency", "-c"):
            raise ValueError("the python rq worker has no --concurrency: mark the test rqw_only")
        else:
            out.append(arg)
            i += 1
    return out


class WorkerHandle:
    """A worker running in the background (its own session/process group)."""

    def __init__(self, argv, env, logdir, index):
        self.argv = argv
        self.stdout_path = Path(logdir) / f"worker-{index}.out"
        self.stderr_path = Path(logdir) / f"worker-{index}.err"
        self._stdout = open(self.stdout_path, "wb")
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self._stdout, stderr=self._stderr, env=env, start_new_session=True)
        self.result = None

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def output(self):
        out = self.stdout_path.read_text(errors="replace")
        err = self.stderr_path.read_text(errors="replace")
        return out, err

    def describe(self):
        out, err = self.output()
        return f"$ {' '.join(self.argv)}\n[exit {self.proc.returncode}]\n--- stdout\n{out}\n--- stderr\n{err}"

    def _finish(self):
        self._stdout.close()
        self._stderr.close()
        out, err = self.output()
        self.result = subprocess.CompletedProcess(self.argv, self.proc.returncode, out, err)
        print(self.describe())
        return self.result

    def wait(self, timeout=30):
        """Waits for the worker to exit by itself; fails the test with its output if it does not."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"worker did not exit within {timeout}s\n{self.describe()}")
        return self._finish()

    def stop(self, signal=signals.SIGTERM, timeout=30):
        """Sends `signal` to the worker process (not its children, like `kill <pid>`), then waits."""
        if self.alive():
            self.proc.send_signal(signal)
        return self.wait(timeout)

    def kill(self):
        if self.alive():
            try:
                os.killpg(self.proc.pid, signals.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()


class WorkerRunner:
    """Runs the worker under test against the private redis-server."""

    kind = WORKER_KIND

    def __init__(self, url, logdir):
        self.url = url
        self.logdir = logdir
        self.handles = []
        self.count = 0
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PYMOD), os.environ.get("PYTHONPATH")]))
        self.env["PYTHONUNBUFFERED"] = "1"

    def argv(self, queues, extra):
        if isinstance(queues, str):
            queues = [queues]
        queues = list(queues)
        if self.kind == "rqw":
            return [str(RQW_BIN), "worker", *queues, "--url", self.url, "--enable-testing-handlers", *extra]
        script = Path(sys.executable).with_name("rq")
        base = [str(script)] if script.exists() else [sys.executable, "-m", "rq.cli"]
        return [*base, "worker", *queues, "--url", self.url, *python_worker_args(extra)]

    def run_burst(self, queues=("default",), *extra, timeout=60, check=True):
        """Runs a `--burst` worker to completion. Fails the test (with the worker's output) if it
        outlives `timeout`, or exits non-zero while `check` is true."""
        argv = self.argv(queues, ["--burst", *extra])
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env,
                                start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signals.SIGKILL)
            out, err = proc.communicate()
            pytest.fail(f"burst worker still running after {timeout}s\n$ {' '.join(argv)}\n"
                        f"--- stdout\n{out}\n--- stderr\n{err}")
        result = subprocess.CompletedProcess(argv, proc.returncode, out, err)
        print(f"$ {' '.join(argv)}\n[exit {proc.returncode}]\n--- stdout\n{out}\n--- stderr\n{err}")
        if check and proc.returncode != 0:
            pytest.fail(f"burst worker exited with {proc.returncode}\n--- stdout\n{out}\n--- stderr\n{err}")
        return result

    def start(self, queues=("default",), *extra):
        """Starts a worker in the background; it is killed at the end of the test if still alive."""
        self.count += 1
        handle = WorkerHandle(self.argv(queues, list(extra)), self.env, self.logdir, self.count)
        self.handles.append(handle)
        return handle

    def close(self):
        for handle in self.handles:
            if handle.alive():
                handle.kill()
                print("(worker below was still running at teardown: killed)")
            if handle.result is None:
                handle._finish()


@pytest.fixture
def worker(conn, url, tmp_path):
    runner = WorkerRunner(url, tmp_path)
    yield runner
    runner.close()


@pytest.fixture
def wait():
    return wait_for
