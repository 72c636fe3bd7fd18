"""A Redis Sentinel setup a test owns: redis-servers (a master and replicas) and sentinel
processes (`redis-server <conf> --sentinel`), all on loopback, on free ports, with short
timings (down after 1 s, failover timeout 3 s) so that a failover takes seconds.

Imported as `from sentinels import ...` (this directory is on sys.path, like compat.py).
"""

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis

from compat import free_port, wait_for
from faults import OwnRedis

MASTER_NAME = "mymaster"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000


class SentinelProcess:
    """One sentinel: its config file is its own (sentinels rewrite it)."""

    def __init__(self, workdir, master_port, quorum, password=None, own_password=None, extra_conf=(),
                 client_kwargs=None):
        self.exe = shutil.which("redis-server")
        if self.exe is None:
            pytest.skip("redis-server not on PATH")
        self.port = free_port()
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "sentinel.conf"
        self.conf.write_text("\n".join([
            f"port {self.port}",
            "bind 127.0.0.1",
            "daemonize no",
            f"dir {self.dir}",
            f"logfile {self.dir / 'sentinel.log'}",
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} {quorum}",
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {MASTER_NAME} 1",
            *([f"sentinel auth-pass {MASTER_NAME} {password}"] if password else []),
            *([f"requirepass {own_password}", f"sentinel sentinel-pass {own_password}"] if own_password else []),
            *extra_conf,
            "",
        ]))
        self.own_password = own_password
        self.client_kwargs = client_kwargs or {}
        self.proc = subprocess.Popen([self.exe, str(self.conf), "--sentinel"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        client = self.client()
        try:
            wait_for(lambda: _pings(client), timeout=10, message=f"sentinel on {self.port}")
        finally:
            client.close()

    def client(self):
        kwargs = dict(host="127.0.0.1", port=self.port, socket_timeout=5, decode_responses=True,
                      password=self.own_password)
        kwargs.update(self.client_kwargs)
        return redis.Redis(**kwargs)

    def log(self):
        path = self.dir / "sentinel.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _pings(client):
    try:
        return client.ping()
    except redis.ConnectionError:
        return False


class SentinelCluster:
    """A master, `replicas` replicas and `sentinels` sentinels (quorum: a majority); with
    `password` the servers require it (and replicas use it), with `sentinels_password` the
    sentinels require theirs."""

    def __init__(self, workdir, replicas=1, sentinels=3, password=None, sentinels_password=None):
        self.workdir = Path(workdir)
        self.password = password
        self.sentinels_password = sentinels_password
        self.auth = ["--requirepass", password, "--masterauth", password] if password else []
        self.servers = []
        self.sentinels = []
        master = self._start(OwnRedis(self.workdir / "redis-0", extra=self.auth))
        self.servers.append(master)
        for i in range(replicas):
            self.servers.append(self._start(OwnRedis(
                self.workdir / f"redis-{i + 1}", extra=[*self.auth, "--replicaof", "127.0.0.1", str(master.port)])))
        for server in self.servers[1:]:
            wait_for(lambda s=server: self.in_sync(s), timeout=20, message=f"replica {server.port} in sync")
        quorum = sentinels // 2 + 1
        for i in range(sentinels):
            self.sentinels.append(SentinelProcess(self.workdir / f"sentinel-{i}", master.port, quorum,
                                                  password, sentinels_password))
        self.wait_ready(master.port, replicas)

    @property
    def addresses(self):
        return [("127.0.0.1", s.port) for s in self.sentinels]

    def _start(self, server):
        return server.start(client_kwargs={"password": self.password})

    def client(self, server, **kwargs):
        return server.client(password=self.password, **kwargs)

    def rqw_flags(self):
        flags = []
        for host, port in self.addresses:
            flags += ["--sentinel", f"{host}:{port}"]
        return flags + ["--sentinel-master", MASTER_NAME]

    def server(self, port):
        return next(s for s in self.servers if s.port == port)

    def master_port(self, sentinel=0):
        """The master's port as one sentinel names it now."""
        with self.sentinels[sentinel].client() as c:
            addr = c.sentinel_get_master_addr_by_name(MASTER_NAME)
        return int(addr[1]) if addr else None

    def in_sync(self, server):
        with self.client(server, decode_responses=True) as c:
            info = c.info("replication")
        return info.get("role") == "slave" and info.get("master_link_status") == "up"

    def wait_ready(self, master_port, replicas, timeout=30):
        """Every sentinel names `master_port`, knows the other sentinels and sees `replicas`
        healthy replicas with a fresh INFO (so that a failover can pick one)."""

        def ready():
            for sentinel in self.sentinels:
                with sentinel.client() as c:
                    master = c.sentinel_master(MASTER_NAME)
                    if int(master["port"]) != master_port or not master.get("is_master"):
                        return False
                    if master.get("is_sdown") or master.get("is_odown"):
                        return False
                    if int(master["num-other-sentinels"]) != len(self.sentinels) - 1:
                        return False
                    healthy = [r for r in c.sentinel_slaves(MASTER_NAME)
                               if not r.get("is_sdown") and not r.get("is_disconnected")
                               and r.get("master-link-status") == "ok" and r.get("role-reported") == "slave"
                               and int(r.get("master-port", 0)) == master_port]
                    if len(healthy) < replicas:
                        return False
            return True

        wait_for(ready, timeout=timeout, interval=0.2, message=f"sentinels ready with master {master_port}")

    def kill_master(self):
        """SIGKILL of the current master; returns it (stopped) and the time of the kill."""
        server = self.server(self.master_port())
        at = time.time()
        server.proc.kill()
        server.proc.wait()
        return server, at

    def restart_as_replica(self, server, master_port):
        server.extra = [*self.auth, "--replicaof", "127.0.0.1", str(master_port)]
        self._start(server)
        wait_for(lambda: self.in_sync(server), timeout=20, message=f"{server.port} in sync with {master_port}")

    def logs(self):
        return "\n".join(f"--- sentinel {s.port}\n{s.log()[-3000:]}" for s in self.sentinels)

    def close(self):
        for sentinel in self.sentinels:
            sentinel.close()
        for server in self.servers:
            server.close()
