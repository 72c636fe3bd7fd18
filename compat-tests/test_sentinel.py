"""High availability: rqw finds the master through Redis Sentinel and follows it when it moves.

Every test owns its Redis setup (`sentinels.SentinelCluster`: real redis-servers and real
sentinels on loopback, free ports, a failover in seconds). The rqw workers get the sentinels
(`--sentinel`, `--sentinel-master`) and a `--url` on which nothing listens, so that everything
they do goes through the master the sentinels name. Producers are real rq on a
`redis.sentinel.Sentinel(...).master_for(...)` connection, as an API behind Sentinel enqueues.

- `test_failover_under_load_loses_nothing`: two rqw (`-c 32`) under a steady load of sleeps,
  retries, failures and dependents; the master is SIGKILLed and the replica promoted, then the
  old master comes back as a replica and the new master is killed in turn. Every job is
  accounted for through rq's API; the time from each kill to the first job finished on the
  new master is printed (always, and appended to `$RQW_FAILOVER_REPORT` when set).
- `test_demoted_master_answering_readonly_is_left_for_the_new_master`: the master is demoted
  under running workers (`REPLICAOF`, no connection is closed) and answers READONLY; the
  workers move to the master the sentinel names and lose nothing.
"""

import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter

import pytest
import redis
from redis.sentinel import Sentinel
from rq import Queue, Retry, Worker
from rq.command import send_shutdown_command
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.results import Result

from compat import ECHO, FAIL, NOOP, RQW_BIN, SLEEP, free_port, last_line, wait_for
from conftest import WorkerRunner
from faults import OwnRedis
from sentinels import MASTER_NAME, SentinelCluster, SentinelProcess

pytestmark = pytest.mark.rqw_only("Sentinel support is rqw's command line")

PICK = re.compile(r"JOB PICKED queue='[^']*' job_id=(ha-\d+) ")
QUEUES = ("high", "default", "low")
#: `ha-w1` serves two queues (a blocking BLMOVE on each), `ha-w2` one (BLMOVE).
W1_QUEUES = ("high", "default")
W2_QUEUES = ("low",)
#: Short timings so that recovery by maintenance happens within the test.
TIMINGS = ["--job-monitoring-interval", "1", "--maintenance-interval", "2", "--worker-ttl", "16"]


def kind_of(i):
    r = i % 10
    if r < 5:
        return "sleep"
    return {5: "sleep-retry", 6: "fail", 7: "parent", 8: "child", 9: "echo"}[r]


def master_conn(cluster):
    """rq's connection behind Sentinel, as an API would hold it."""
    sentinel = Sentinel(cluster.addresses, socket_timeout=2, password=cluster.password,
                        sentinel_kwargs={"password": cluster.sentinels_password})
    return sentinel.master_for(MASTER_NAME, socket_timeout=5)


class Producer(threading.Thread):
    """Enqueues through Sentinel until stopped. An enqueue that raised (the master was gone) is
    uncertain: it may or may not have been written. Nothing is retried automatically: a
    repeated enqueue after a lost reply would push the id twice."""

    def __init__(self, cluster, pause=0.012):
        super().__init__(daemon=True)
        self.conn = master_conn(cluster)
        self.queues = {q: Queue(q, connection=self.conn) for q in QUEUES}
        self.pause = pause
        self.enqueued = {}
        self.uncertain = {}
        self.errors = Counter()
        self.halt = threading.Event()
        self.count = 0

    def enqueue(self, i):
        kind = kind_of(i)
        job_id = f"ha-{i}"
        q = self.queues[QUEUES[i % 3]]
        if kind == "child":
            parent = f"ha-{i - 1}"
            if parent not in self.enqueued:
                return
            q.enqueue(NOOP, job_id=job_id, depends_on=parent)
        elif kind == "fail":
            q.enqueue(FAIL, job_id=job_id, message="boom", retry=Retry(max=1))
        elif kind == "sleep-retry":
            q.enqueue(SLEEP, job_id=job_id, seconds=0.3, retry=Retry(max=2))
        elif kind == "echo":
            q.enqueue(ECHO, i, job_id=job_id)
        else:
            q.enqueue(SLEEP, job_id=job_id, seconds=0.3 if kind == "sleep" else 0.2)
        self.enqueued[job_id] = kind

    def run(self):
        i = 0
        while not self.halt.is_set():
            try:
                self.enqueue(i)
            except (redis.exceptions.RedisError, OSError) as e:
                self.uncertain[f"ha-{i}"] = kind_of(i)
                self.errors[type(e).__name__] += 1
                time.sleep(0.1)
            i += 1
            self.count = i
            time.sleep(self.pause)

    def stop(self):
        self.halt.set()
        self.join(30)


def read(conn, f, default=None):
    """`f(conn)`, or `default` while the master is unreachable (during a failover)."""
    try:
        return f(conn)
    except (redis.exceptions.RedisError, OSError):
        return default


def finished_total(conn):
    pipe = conn.pipeline(transaction=False)
    for q in QUEUES:
        pipe.zcard(f"rq:finished:{q}")
    return sum(pipe.execute())


def busy(conn):
    """Jobs still waiting, running or between BLMOVE and start."""
    pipe = conn.pipeline(transaction=False)
    for q in QUEUES:
        pipe.llen(f"rq:queue:{q}")
        pipe.zcard(f"rq:wip:{q}")
        pipe.llen(f"rq:queue:{q}:intermediate")
    return sum(pipe.execute())


def running(conn):
    pipe = conn.pipeline(transaction=False)
    for q in QUEUES:
        pipe.zcard(f"rq:wip:{q}")
    return sum(pipe.execute())


def scrape(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def watch_failover(cluster, survivor, old_port, killed_at, metrics_port, timeout=30):
    """After the master's kill: the port every sentinel names now, and the seconds from the
    kill until the sentinels agree on it and until the first job finished on it (its finished
    registries grow; reads work on a replica, so the wait starts before the promotion).
    Before the switch (down-after is 1 s) a worker's scrape and health check cannot read Redis."""
    time.sleep(0.05)  # what the dead master had sent has landed
    _, metrics = scrape(metrics_port, "/metrics")
    health = scrape(metrics_port, "/healthz")
    assert re.search(r"^rqw_redis_up 0$", metrics, re.M), metrics
    assert health[0] == 503 and '"redis":false' in health[1], health
    deadline = time.monotonic() + timeout
    new_port = switch = first = None
    with survivor.client() as c:
        before = finished_total(c)
        while switch is None or first is None:
            assert time.monotonic() < deadline, f"no failover within {timeout}s\n{cluster.logs()}"
            now = time.time()
            if first is None and finished_total(c) > before:
                first = now - killed_at
            if switch is None:
                ports = {cluster.master_port(i) for i in range(len(cluster.sentinels))}
                if len(ports) == 1 and None not in ports and old_port not in ports:
                    new_port, switch = ports.pop(), now - killed_at
            time.sleep(0.01)
    assert new_port == survivor.port
    return new_port, switch, first


def start_workers(runner, cluster, concurrency, flags=(None, None)):
    """`ha-w1` and `ha-w2`; each gets its sentinel flags from `flags` (None: `--sentinel`
    flags for every sentinel; []: none, the environment has them)."""
    ports = (free_port(), free_port())
    handles = []
    for name, queues, port, own in zip(("ha-w1", "ha-w2"), (W1_QUEUES, W2_QUEUES), ports, flags):
        sentinel = cluster.rqw_flags() if own is None else own
        handles.append(runner.start(queues, *sentinel, "-c", str(concurrency), *TIMINGS, "--name", name,
                                    "--metrics-addr", f"127.0.0.1:{port}"))
    return tuple(handles), ports


def rqw(*args, timeout=30):
    proc = subprocess.run([str(RQW_BIN), *args], capture_output=True, text=True, timeout=timeout)
    print(f"$ rqw {' '.join(args)}\n[exit {proc.returncode}]\n{proc.stdout}\n{proc.stderr}")
    return proc


def account(conn, ids):
    """Each id's end as rq reads it: (status, in finished registry, in failed registry,
    successful results, last line of the failure)."""
    out = {}
    for job_id in ids:
        try:
            job = Job.fetch(job_id, connection=conn)
        except NoSuchJobError:
            out[job_id] = ("missing", False, False, 0, None, None)
            continue
        status = job.get_status()
        q = job.origin
        fin = conn.zscore(f"rq:finished:{q}", job_id) is not None
        fail = conn.zscore(f"rq:failed:{q}", job_id) is not None
        results = job.results()
        successes = sum(1 for r in results if r.type == Result.Type.SUCCESSFUL)
        failure = None
        if status == "failed":
            latest = job.latest_result()
            text = latest.exc_string if latest is not None and latest.exc_string else job.exc_info
            failure = last_line(text)
        out[job_id] = (status, fin, fail, successes, failure, job.ended_at)
    return out


@pytest.mark.newest_rq_only("30 s of failovers; the rq version only enqueues and reads")
def test_failover_under_load_loses_nothing(tmp_path, capsys):
    cluster = SentinelCluster(tmp_path / "ha", replicas=1, sentinels=3)
    # Nothing listens on --url: every connection must come from the sentinels.
    runner = WorkerRunner(f"redis://127.0.0.1:{free_port()}/0", tmp_path)
    # ha-w2 reads the three sentinels from RQW_SENTINELS (comma-separated), ha-w1 from flags.
    runner.env["RQW_SENTINELS"] = ",".join(f"{h}:{p}" for h, p in cluster.addresses)
    producer = None
    try:
        (w1, w2), metrics_ports = start_workers(runner, cluster, 32, flags=(None, []))
        conn = master_conn(cluster)
        wait_for(lambda: {"ha-w1", "ha-w2"} <= {w.name for w in read(conn, Worker.all, [])}, timeout=20,
                 message="both workers registered")
        producer = Producer(cluster)
        producer.start()

        failovers = []
        for round_ in range(2):
            base = read(conn, finished_total, 0)
            wait_for(lambda: read(conn, finished_total, 0) >= base + 150 and read(conn, running, 0) >= 5,
                     timeout=60, message="load on the master")
            old_port = cluster.master_port()
            survivor = next(s for s in cluster.servers if s.port != old_port)
            killed, killed_at = cluster.kill_master()
            new_port, switch, first = watch_failover(cluster, survivor, old_port, killed_at, metrics_ports[0])
            after = read(conn, finished_total, 0)
            wait_for(lambda: (read(conn, finished_total, 0) or 0) >= after + 150, timeout=60,
                     message="jobs finishing on the new master")
            failovers.append({"old": old_port, "new": new_port, "switch": switch, "first": first})
            assert w1.alive() and w2.alive(), w1.describe() + w2.describe()
            if round_ == 0:
                # The old master comes back as a replica of the new one, then that one dies.
                cluster.restart_as_replica(killed, new_port)
                cluster.wait_ready(new_port, 1)
        producer.stop()

        # Drain: everything ends, by a worker or by maintenance (an execution nobody runs is
        # abandoned 61 s after its last heartbeat, RQ's floor).
        ids = [*producer.enqueued, *producer.uncertain]

        def statuses(c):
            pipe = c.pipeline(transaction=False)
            for job_id in ids:
                pipe.hget(f"rq:job:{job_id}", "status")
            return pipe.execute()

        def drained():
            if read(conn, busy, 1) != 0:
                return False
            found = read(conn, statuses, None)
            return found is not None and all(s in (None, b"finished", b"failed", b"deferred") for s in found)

        wait_for(drained, timeout=150, interval=0.5, message="every job in a final state")
        final_rows = account(conn, ids)
        for job_id, kind in list(producer.enqueued.items())[:400]:
            if kind == "echo" and final_rows[job_id][0] == "finished":
                i = int(job_id.split("-")[1])
                assert Job.fetch(job_id, connection=conn).return_value() == {"args": [i], "kwargs": {}}

        # Both workers are registered, healthy, answer commands, and work (each serves a
        # queue the other does not).
        assert {"ha-w1", "ha-w2"} <= {w.name for w in Worker.all(connection=conn)}
        for port in metrics_ports:
            wait_for(lambda p=port: rqw("healthcheck", "--addr", f"127.0.0.1:{p}").returncode == 0,
                     timeout=15, interval=0.5, message=f"healthcheck on {port}")
            _, metrics = scrape(port, "/metrics")
            changes = re.search(r"^rqw_redis_master_changes (\d+)$", metrics, re.M)
            assert changes and int(changes.group(1)) >= 2, metrics
            assert re.search(r"^rqw_redis_up 1$", metrics, re.M), metrics
        info = rqw("info", *cluster.rqw_flags())
        assert info.returncode == 0 and "ha-w1" in info.stdout and "ha-w2" in info.stdout, info.stdout
        assert f"127.0.0.1:{cluster.sentinels[0].port}" in info.stdout
        inspect = rqw("inspect", *cluster.rqw_flags(), "--enable-testing-handlers")
        assert inspect.returncode == 0, inspect.stderr
        last = {q: [Queue(q, connection=conn).enqueue(NOOP, job_id=f"last-{q}-{n}") for n in range(5)]
                for q in ("high", "low")}
        wait_for(lambda: all(j.get_status() == "finished" for js in last.values() for j in js), timeout=30,
                 message="jobs after both failovers")
        for name, handle in (("ha-w1", w1), ("ha-w2", w2)):
            send_shutdown_command(conn, name)
            assert handle.wait(timeout=30).returncode == 0
    finally:
        if producer is not None and producer.is_alive():
            producer.stop()
        runner.close()
        print(cluster.logs())
        cluster.close()

    # ------------------------------------------------------------------ accounting
    outputs = [h.output() for h in runner.handles]
    picks = Counter()
    for out, err in outputs:
        picks.update(PICK.findall(out + err))
        assert "panicked" not in out + err
    for failover in failovers:
        for (out, err), name in zip(outputs, ("ha-w1", "ha-w2")):
            assert f"connected to the Redis master at 127.0.0.1:{failover['new']}" in out + err, name

    problems, outcomes, extra_runs = [], Counter(), Counter()
    rows = final_rows
    for job_id, kind in sorted({**producer.enqueued, **producer.uncertain}.items()):
        status, fin, fail, successes, failure, _ = rows[job_id]
        if status == "missing" and job_id in producer.uncertain:
            continue  # the enqueue raised and nothing was written
        attempts = 2 if kind == "fail" else 1
        runs = picks[job_id]
        if status == "finished":
            ok = fin and not fail and successes == 1 and kind != "fail"
            outcome = "finished"
        elif status == "failed":
            # RQ's maintenance words: an execution nobody runs (AbandonedJobError), or an id
            # left between BLMOVE and its start ("stuck in intermediate queue").
            abandoned = failure is not None and ("AbandonedJobError" in failure
                                                 or "stuck in intermediate queue" in failure)
            expected = kind == "fail" and failure == "RuntimeError: boom"
            ok = fail and (expected or abandoned)
            outcome = ("failed (its own error)" if expected
                       else f"failed by maintenance ({'stuck' if 'stuck' in (failure or '') else 'abandoned'})")
        elif status == "deferred":
            parent = f"ha-{int(job_id.split('-')[1]) - 1}"
            ok = kind == "child" and rows.get(parent, ("?",))[0] == "failed"
            outcome = "deferred (parent failed)"
        elif status == "missing":
            # Acknowledged by the old master, never replicated: lost with it (reported below).
            ok = True
            outcome = "enqueue lost with the old master"
        else:
            ok = False
            outcome = status
        outcomes[(kind, outcome)] += 1
        if runs > attempts:
            extra_runs[kind] += runs - attempts
        if runs > attempts + len(failovers):
            ok = False
        if not ok:
            problems.append(f"{job_id} kind={kind} status={status} finished={fin} failed={fail} "
                            f"successes={successes} runs={runs} failure={failure!r}")
    missing = [j for j in producer.enqueued if rows[j][0] == "missing"]

    report = [f"{len(producer.enqueued)} jobs enqueued through Sentinel "
              f"({len(producer.uncertain)} enqueues raised during the failovers: {dict(producer.errors)})"]
    for n, failover in enumerate(failovers, 1):
        report.append(f"failover {n}: master :{failover['old']} SIGKILLed; all sentinels named :{failover['new']} "
                      f"{failover['switch']:.2f} s later; first job finished on the new master "
                      f"{failover['first']:.2f} s after the kill")
    report.append(f"outcomes: {dict(sorted(outcomes.items()))}")
    report.append(f"runs beyond the expected attempts (lost starts or finishes): {dict(extra_runs)}; "
                  f"acknowledged enqueues missing on the final master: {len(missing)}")
    # Shown in every run (pytest captures a passing test's output otherwise).
    with capsys.disabled():
        print("\n" + "\n".join(report))
    if os.environ.get("RQW_FAILOVER_REPORT"):
        with open(os.environ["RQW_FAILOVER_REPORT"], "a") as f:
            f.write("\n".join(report) + "\n\n")
    assert not problems, f"{len(problems)} jobs not accounted for:\n" + "\n".join(problems[:30])


def test_demoted_master_answering_readonly_is_left_for_the_new_master(tmp_path):
    """A master demoted under running workers (a manual `REPLICAOF`, as an operator or a
    managed service may do it) keeps their connections open and answers their writes with
    READONLY. The workers ask the sentinel again, move to the master it
    names, and every job finishes exactly once: writes are paused on the old master until the
    replica has everything, so nothing is lost and the outcome is deterministic. The servers
    and the sentinel require passwords, given to rqw through the environment (`RQW_SENTINELS`,
    `RQW_SENTINEL_PASSWORD`, `RQW_SENTINELS_PASSWORD`); neither appears in rqw's output."""
    cluster = SentinelCluster(tmp_path / "ro", replicas=1, sentinels=1, password="m4ster-secret",
                              sentinels_password="s3ntinel-secret")
    runner = WorkerRunner(f"redis://127.0.0.1:{free_port()}/0", tmp_path)
    runner.env.update(RQW_SENTINELS=",".join(f"{h}:{p}" for h, p in cluster.addresses),
                      RQW_SENTINEL_PASSWORD=cluster.password, RQW_SENTINELS_PASSWORD=cluster.sentinels_password)
    old, new = cluster.servers
    try:
        (w1, w2), _ = start_workers(runner, cluster, 4, flags=([], []))
        conn = master_conn(cluster)
        wait_for(lambda: {"ha-w1", "ha-w2"} <= {w.name for w in Worker.all(connection=conn)}, timeout=20,
                 message="both workers registered")
        jobs = [Queue(q, connection=conn).enqueue(SLEEP, job_id=f"ha-{i}", seconds=0.5)
                for i, q in enumerate(["high", "low"] * 12)]
        wait_for(lambda: conn.zcard("rq:wip:high") > 0 and conn.zcard("rq:wip:low") > 0, timeout=20,
                 message="jobs running on both workers")

        with cluster.client(old) as a, cluster.client(new) as b, cluster.sentinels[0].client() as s:
            a.execute_command("CLIENT", "PAUSE", "20000", "WRITE")
            offset = a.info("replication")["master_repl_offset"]
            wait_for(lambda: b.info("replication").get("slave_repl_offset", -1) >= offset, timeout=10,
                     message="the replica has every write")
            b.execute_command("REPLICAOF", "NO", "ONE")
            s.sentinel_remove(MASTER_NAME)
            s.sentinel_monitor(MASTER_NAME, "127.0.0.1", new.port, 1)
            a.execute_command("REPLICAOF", "127.0.0.1", str(new.port))
            wait_for(lambda: cluster.in_sync(old), timeout=20, message="the old master replicates the new one")
            a.execute_command("CLIENT", "UNPAUSE")

        conn = master_conn(cluster)
        jobs += [Queue(q, connection=conn).enqueue(SLEEP, job_id=f"ha-{i}", seconds=0.1)
                 for i, q in enumerate(["high", "low"] * 12, start=100)]
        wait_for(lambda: all(j.get_status(refresh=True) == "finished" for j in jobs), timeout=60,
                 message="every job finished")
        assert busy(conn) == 0
        for j in jobs:
            assert sum(1 for r in j.results() if r.type == Result.Type.SUCCESSFUL) == 1, j.id
        for name, handle in (("ha-w1", w1), ("ha-w2", w2)):
            send_shutdown_command(conn, name)
            assert handle.wait(timeout=30).returncode == 0
    finally:
        runner.close()
        cluster.close()

    picks = Counter()
    for handle in runner.handles:
        out, err = handle.output()
        text = out + err
        picks.update(PICK.findall(text))
        assert "READONLY" in text, handle.describe()[-3000:]
        assert f"connected to the Redis master at 127.0.0.1:{new.port}" in text, handle.describe()[-3000:]
        assert "panicked" not in text
        assert "secret" not in text
    assert all(picks[j.id] == 1 for j in jobs), {j.id: picks[j.id] for j in jobs if picks[j.id] != 1}


def test_tls_to_the_sentinels_and_to_the_master(tmp_path):
    """`--sentinels-tls` and `--sentinel-tls` with `--tls-ca-cert`: the sentinel and the master
    listen on TLS only (certificates from a private CA, made here with openssl); rqw finds the
    master through the sentinel and runs a job, both connections verified; without
    `--sentinel-tls` it finds no master it can use."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not on PATH (needed to make the test certificates)")
    d = tmp_path / "tls"
    d.mkdir()

    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=rqw test CA")
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                               "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf")
    tls = [f"tls-cert-file {d / 'server.crt'}", f"tls-key-file {d / 'server.key'}",
           f"tls-ca-cert-file {d / 'ca.crt'}", "tls-auth-clients no"]
    client_tls = dict(ssl=True, ssl_ca_certs=str(d / "ca.crt"))
    master_port = free_port()
    master = OwnRedis(d / "master", extra=["--port", "0", "--tls-port", str(master_port),
                                           *[part for line in tls for part in f"--{line}".split(" ", 1)]])
    sentinel = None
    try:
        try:
            master.start(client_kwargs=dict(port=master_port, **client_tls))
        except RuntimeError as e:
            if "tls" in str(e).lower():
                pytest.skip(f"this redis-server has no TLS support: {e}")
            raise
        sentinel_port = free_port()
        sentinel = SentinelProcess(d / "sentinel", master_port, 1, client_kwargs=dict(port=sentinel_port, **client_tls),
                                   extra_conf=["port 0", f"tls-port {sentinel_port}", "tls-replication yes", *tls])
        with redis.Redis(host="127.0.0.1", port=master_port, **client_tls) as conn:
            conn.flushall()
            job = Queue("default", connection=conn).enqueue(ECHO, "through a TLS sentinel")
            runner = WorkerRunner(f"redis://127.0.0.1:{free_port()}/0", tmp_path)
            result = runner.run_burst("default", "--sentinel", f"127.0.0.1:{sentinel_port}", "--sentinels-tls",
                                      "--sentinel-tls", "--tls-ca-cert", str(d / "ca.crt"), "--name", "w-tls")
            assert job.get_status(refresh=True) == "finished", result.stderr
            assert job.return_value() == {"args": ["through a TLS sentinel"], "kwargs": {}}
            # Plain TCP to the TLS-only master (no --sentinel-tls) finds no usable master.
            plain = rqw("worker", "--burst", "--sentinel", f"127.0.0.1:{sentinel_port}", "--sentinels-tls",
                        "--tls-ca-cert", str(d / "ca.crt"), "--startup-timeout", "2")
            assert plain.returncode == 1, plain.stderr
    finally:
        if sentinel is not None:
            sentinel.close()
        master.close()



def test_python_jobs_reach_the_master_through_sentinel(tmp_path):
    """With --python, a job's own Redis use (`get_current_job().save_meta()`) goes through the
    horse's connection, which finds the master through the same sentinels as rqw (redis-py's
    `Sentinel.master_for`, passed from rqw's --sentinel settings; the worker's --url points
    nowhere). After a failover the same horse runs the next job and saves on the new master."""
    cluster = SentinelCluster(tmp_path / "py", replicas=1, sentinels=3)
    runner = WorkerRunner(f"redis://127.0.0.1:{free_port()}/0", tmp_path)
    try:
        runner.start(("default",), *cluster.rqw_flags(), *TIMINGS, "--name", "ha-py",
                     "--python", sys.executable, "--python-processes", "1")
        conn = master_conn(cluster)

        def run(step):
            for _ in range(100):
                try:
                    job = Queue("default", connection=conn).enqueue("horsejobs.uses_current_job", step)
                    break
                except (redis.ConnectionError, redis.sentinel.MasterNotFoundError):
                    time.sleep(0.2)  # the failover is not over yet
            wait_for(lambda: Job.fetch(job.id, connection=conn).get_status() == "finished", timeout=30,
                     message=f"the Python job of step {step!r} finished")
            job = Job.fetch(job.id, connection=conn)
            assert job.return_value() == job.id
            assert job.meta["step"] == step
            return job.meta["pid"]

        horse = run("before")
        old = cluster.master_port()
        cluster.kill_master()
        wait_for(lambda: cluster.master_port() not in (None, old), timeout=30, message="a new master")
        assert run("after") == horse, "the same horse, its connection moved to the new master"
    finally:
        runner.close()
        cluster.close()
