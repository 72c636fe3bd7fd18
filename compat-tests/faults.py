"""Helpers of the fault, bad-input, security and soak tests: a redis-server a test owns (to stop,
restart or configure it), CPU time of a process, the StartedJobRegistry clock, and the
accounting of every job id.

Imported as `from faults import ...` (this directory is on sys.path, like compat.py).
"""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis
from rq.job import Job

from compat import free_port

CLK_TCK = os.sysconf("SC_CLK_TCK")

#: rq's StartedJobRegistry score of a running job is its last heartbeat + heartbeat TTL, and
#: the TTL is min(timeout, --job-monitoring-interval) + 60 (RQ's get_heartbeat_ttl): with an
#: interval of 1 s an abandoned job is recoverable 61 s after its worker died.
HEARTBEAT_TTL_FLOOR = 61


class OwnRedis:
    """A redis-server owned by one test: stop it, restart it on the same port, configure it.

    `persist=True` keeps an append-only file fsynced at every write, so a restart gets back
    exactly what was written before the stop (as a production Redis with AOF would)."""

    def __init__(self, workdir, persist=False, extra=(), port=None):
        self.exe = shutil.which("redis-server")
        if self.exe is None:
            pytest.skip("redis-server not on PATH")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.extra = list(extra)
        self.persist = persist
        self.proc = None
        self.starts = 0

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def argv(self):
        persistence = (["--appendonly", "yes", "--appendfsync", "always", "--save", ""] if self.persist
                       else ["--appendonly", "no", "--save", ""])
        return [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
                "--logfile", str(self.workdir / "redis.log"), "--daemonize", "no", *persistence, *self.extra]

    def start(self, client_kwargs=None, timeout=10):
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.starts += 1
        deadline = time.monotonic() + timeout
        client = self.client(**(client_kwargs or {}))
        try:
            while True:
                if self.proc.poll() is not None:
                    log = (self.workdir / "redis.log")
                    raise RuntimeError(f"redis-server exited: {log.read_text() if log.exists() else ''}")
                try:
                    client.ping()
                    return self
                except (redis.ConnectionError, redis.exceptions.AuthenticationError,
                        redis.exceptions.ResponseError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    def client(self, **kwargs):
        kwargs.setdefault("host", "127.0.0.1")
        kwargs.setdefault("port", self.port)
        kwargs.setdefault("socket_timeout", 10)
        return redis.Redis(**kwargs)

    def stop(self, timeout=20):
        """Clean shutdown (SIGTERM: with AOF the data is on disk)."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def cpu_seconds(pid):
    """User + system CPU time of a process so far (/proc/<pid>/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def wip_members(conn, queue="default"):
    return [m.decode() for m in conn.zrange(f"rq:wip:{queue}", 0, -1)]


# Moves scores only while no RQ registry cleaning of the queue is under way: RQ's workers hold
# the queue's maintenance lock (rq:clean_registries:<q>, value "1") from their read of the
# expired members to their last write. rqw's lease (value "rqw:<worker>:<token>") is no reason
# to wait: its recovery removes only the members it read, each re-checked in one script, and
# a killed rqw's lease would only stall the caller for its TTL.
# KEYS: 1 registry, 2 lock; ARGV: 1 score, 2.. members.
# Returns -1 (RQ's lock held, nothing written) or the number of scores changed.
_EXPIRE_OUTSIDE_CLEANUPS = """
local holder = redis.call('GET', KEYS[2])
if holder and string.sub(holder, 1, 4) ~= 'rqw:' then return -1 end
local n = 0
for i = 2, #ARGV do n = n + redis.call('ZADD', KEYS[1], 'XX', 'CH', ARGV[1], ARGV[i]) end
return n
"""


# A killed rqw's maintenance lease on the queue's lock ("rqw:<worker>:<token>"), dropped: its
# TTL (at most 60 s, MAX_LEASE_TTL in src/duties/maintenance.rs) has run out by the time its
# heartbeats' 61 s have. KEYS: 1 lock; ARGV: 1 "rqw:<worker>:". Returns 1 when one was dropped.
_EXPIRE_DEAD_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder and string.sub(holder, 1, #ARGV[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def expire_heartbeats(conn, queue="default", members=None, timeout=30, dead=()):
    """Moves StartedJobRegistry scores into the past, as if the heartbeat TTL had run out
    (61 s at least, see HEARTBEAT_TTL_FLOOR) — only for members of workers that are dead.
    The registry entries, job hashes and everything else stay as the crash left them.

    A real expiry only lets the clock pass a score; it never moves a score behind the cutoff
    of a cleanup that has already read the expired members. RQ's `StartedJobRegistry.cleanup`
    reads them, handles each, then removes *every* member up to its cutoff
    (`zremrangebyscore(key, 0, score)`): a score moved into the past in between would be
    removed without its job being failed or retried (the soak's job left `started` in no
    registry, docs/RELIABILITY.md). So all scores move in one atomic call, made only while no
    RQ worker holds the queue's maintenance lock (retried until then, up to `timeout` s).

    `dead`: names of killed rqw workers; a maintenance lease one of them still holds on the
    queue (killed inside its pass) has expired too, as its TTL is shorter than the heartbeats'.
    Without it, a rescuer started at once (a burst) would find the queue's lock taken and skip
    its cleaning, as it should while the lease lives."""
    key = f"rq:wip:{queue}"
    lock = f"rq:clean_registries:{queue}"
    for name in dead:
        conn.eval(_EXPIRE_DEAD_LEASE, 1, lock, f"rqw:{name}:")
    members = list(members) if members is not None else wip_members(conn, queue)
    if not members:
        return
    deadline = time.monotonic() + timeout
    while conn.eval(_EXPIRE_OUTSIDE_CLEANUPS, 2, key, lock, time.time() - 1, *members) < 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"{lock} held by RQ for {timeout} s: no registry cleaning ends")
        time.sleep(0.005)


def fetch_status(conn, job_id):
    try:
        return Job.fetch(job_id, connection=conn).get_status()
    except Exception as e:  # noqa: BLE001 - a broken hash is reported, not raised
        return f"unreadable: {type(e).__name__}"


def pids_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def sigkill(handle):
    """kill -9 of the worker process only (not a graceful anything)."""
    os.kill(handle.pid, signal.SIGKILL)
    handle.proc.wait(10)


# --------------------------------------------------------------------------- lost replies

REPO_SRC = Path(__file__).resolve().parent.parent / "src"


def script_sha(*paths):
    """The SHA1 redis-rs sends in EVALSHA for a script made of these source files (in order)."""
    import hashlib

    body = "".join((REPO_SRC / p).read_text() for p in paths)
    return body, hashlib.sha1(body.encode()).hexdigest()


#: start.lua and finish.lua as rqw builds them (src/store/scripts.rs).
START_SCRIPT = ("store/scripts/start.lua",)
FINISH_SCRIPT = ("store/scripts/lib/enqueue.lua", "store/scripts/lib/dependents.lua",
                 "store/scripts/lib/failure.lua", "store/scripts/finish.lua")


class ReplyDropProxy:
    """A loopback TCP proxy in front of a redis-server that loses one reply on demand: the
    next request containing the armed bytes is forwarded, Redis runs it, and the connection
    is cut before its reply (and anything after it) reaches the client, as a Redis restart
    or a network cut right after the call would. Other connections are untouched."""

    def __init__(self, upstream_port):
        import socket
        import threading

        self.upstream = upstream_port
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.armed = None
        self.forward = True
        self.fired = 0
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def arm(self, pattern: bytes, forward=True):
        """The next request containing `pattern`: forwarded and its reply lost, or, with
        `forward=False`, never sent to Redis (the connection is cut before it)."""
        with self.lock:
            self.armed = pattern
            self.forward = forward

    def _accept(self):
        import socket
        import threading

        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                client.close()
                continue
            state = {"dropping": False}
            threading.Thread(target=self._up, args=(client, server, state), daemon=True).start()
            threading.Thread(target=self._down, args=(client, server, state), daemon=True).start()

    def _up(self, client, server, state):
        import socket

        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                with self.lock:
                    hit = self.armed is not None and self.armed in data
                    forward = self.forward
                    if hit:
                        self.armed = None
                        self.fired += 1
                        state["dropping"] = True
                if hit and not forward:
                    break
                server.sendall(data)
                if hit:
                    time.sleep(0.2)  # Redis runs it; then the cut
                    break
        except OSError:
            pass
        for s in (client, server):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _down(self, client, server, state):
        try:
            while True:
                data = server.recv(65536)
                if not data:
                    break
                if not state["dropping"]:
                    client.sendall(data)
        except OSError:
            pass

    def close(self):
        self.closed = True
        self.listener.close()
