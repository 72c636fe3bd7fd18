#!/usr/bin/env python3
"""Side-by-side benchmarks: rq's `Worker`, rq's `SimpleWorker` and rqw on the same jobs.

Run it with `benches/run.sh` (builds rqw in release mode, prepares the rq 2.12.0 venv), or
directly with a venv's python: `.venvs/rq-2.12.0/bin/python benches/bench.py [--quick]`.

One run starts its own `redis-server` (a free loopback port, never 6379, no persistence) and
a local fake recording server (benches/fake_recording_server.py), then runs every workload
through every worker, interleaved (each repetition rotates the order of the workers), checks
through rq's API that every job finished (status of each job, finished/failed/started registry
counts, empty queue; for downloads also the return values, the files and the semaphore keys)
and writes medians, ranges and rqw / Python ratios to docs/BENCHMARKS.md.

Workloads:
  a  no-op throughput: N jobs enqueued with rq, then one `--burst` worker drains them
  b  recording downloads through the real rqw handler vs the Python implementation
     (benches/pyjobs/server/jobs/recording_job.py): 256 KiB bodies, 100 ms server latency,
     jobs spread over 40 businesses; Python = 4 SimpleWorker processes, rqw = 1 process
  c  pickup latency (started_at - enqueued_at) at one job every 20 ms, one queue and six
  d  memory: idle RSS; peak RSS/PSS during b; rqw with 64 concurrent 50 MB downloads
  e  start-up: launch -> started_at of the first job
  f  Redis commands and client round trips per job (INFO commandstats + a MONITOR sample),
     redis-server CPU per job (INFO cpu)
"""

import argparse
import collections
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import redis
import rq
from rq import Queue, Retry
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PYMOD = REPO / "compat-tests" / "pymod"
PYJOBS = HERE / "pyjobs"
NOOP = "rqw.testing.noop"
REC_FUNC = "server.jobs.recording_job.process_recording_download_job"
ACCOUNT = "AC" + "b" * 32
TOKEN = "bench-token"
PROD_QUEUES = ["high", "default", "low", "maintenance", "broadcasts", "recordings"]
UTC = dt.timezone.utc


class BenchError(Exception):
    """A run whose jobs did not all succeed, or a process that misbehaved."""


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port != 6379:
            return port
    raise BenchError("no free port")


def ts(d):
    if d is None:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return d.timestamp()


def pct(values, p):
    """Nearest-rank percentile."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def proc_mem(pid):
    """(rss_kib, pss_kib) of a live process, from smaps_rollup; None when it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            text = f.read()
    except OSError:
        return None
    rss = int(re.search(r"^Rss:\s+(\d+)", text, re.M).group(1))
    pss = int(re.search(r"^Pss:\s+(\d+)", text, re.M).group(1))
    return rss, pss


def proc_hwm(pid):
    """Peak RSS (KiB) of a live process since its exec (VmHWM); None when it is gone. (wait4's
    ru_maxrss is no use here: Linux carries it across exec, so it reports the forking harness.)"""
    try:
        with open(f"/proc/{pid}/status") as f:
            return int(re.search(r"^VmHWM:\s+(\d+)", f.read(), re.M).group(1))
    except (OSError, AttributeError):
        return None


def proc_cpu(pid):
    """CPU seconds (user+system) of a live process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- servers


class RedisServer:
    def __init__(self, workdir):
        exe = shutil.which("redis-server")
        if not exe:
            raise BenchError("redis-server not found (compat-tests/setup.sh installs it)")
        self.port = free_port()
        self.logfile = workdir / "redis.log"
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(workdir), "--logfile", str(self.logfile), "--maxclients", "10000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.conn = redis.Redis(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.conn.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise BenchError(f"redis-server did not start: {self.logfile.read_text()}")
                time.sleep(0.05)
        self.version = self.conn.info("server")["redis_version"]

    def snapshot(self):
        stats = self.conn.info("commandstats")
        cpu = self.conn.info("cpu")
        calls = {k[len("cmdstat_"):]: v["calls"] for k, v in stats.items()}
        return {"calls": calls, "cpu": cpu["used_cpu_sys"] + cpu["used_cpu_user"]}

    @staticmethod
    def delta(before, after):
        calls = {k: v - before["calls"].get(k, 0) for k, v in after["calls"].items()}
        # The harness's own INFO calls (two per snapshot) are not the worker's.
        calls["info"] = max(0, calls.get("info", 0) - 2)
        calls = {k: v for k, v in calls.items() if v > 0}
        return calls, after["cpu"] - before["cpu"]

    def stop(self):
        self.conn.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class FakeRecordings:
    """benches/fake_recording_server.py in its own process."""

    def __init__(self, workdir, size, latency, name):
        self.port_file = workdir / f"fake-{name}.port"
        auth = "Basic " + __import__("base64").b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "fake_recording_server.py"), "--size", str(size), "--latency",
             str(latency), "--auth", auth, "--port-file", str(self.port_file)],
            stdout=subprocess.DEVNULL, stderr=open(workdir / f"fake-{name}.log", "wb"), start_new_session=True)
        deadline = time.monotonic() + 10
        while not self.port_file.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise BenchError("the fake recording server did not start")
            time.sleep(0.02)
        self.base = f"http://127.0.0.1:{int(self.port_file.read_text())}"
        self.size = size
        self.latency = latency

    def stats(self):
        with urllib.request.urlopen(self.base + "/__stats", timeout=10) as r:
            return json.loads(r.read())

    def reset(self):
        urllib.request.urlopen(self.base + "/__reset", timeout=10).read()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------- workers


class Variant:
    """One way of running the jobs: rq's Worker or SimpleWorker (N processes), or rqw."""

    def __init__(self, label, kind, procs=1, concurrency=1, binary=None, env=None):
        self.label, self.kind, self.procs, self.concurrency = label, kind, procs, concurrency
        self.binary, self.env = binary, env or {}

    def alt(self, bench):
        """The same rqw variant run with `--alt-rqw` / `--alt-env` (label marked with *)."""
        return Variant(self.label.replace("rqw", "rqw*", 1), self.kind, self.procs, self.concurrency,
                       binary=bench.alt_rqw, env=bench.alt_env)

    @property
    def is_rqw(self):
        return self.kind == "rqw"

    def argv(self, bench, queues, burst, extra=()):
        if self.is_rqw:
            cmd = [str(self.binary or bench.rqw), "worker", *queues, "--url", bench.redis.url, "--enable-testing-handlers",
                   "--concurrency", str(self.concurrency)]
        else:
            cls = {"rq-worker": "rq.Worker", "rq-simple": "rq.SimpleWorker"}[self.kind]
            cmd = [str(Path(sys.executable).with_name("rq")), "worker", *queues, "--url", bench.redis.url,
                   "-w", cls]
        if burst:
            cmd.append("--burst")
        return cmd + list(extra)


class Launched:
    """Worker processes started together; reaped with wait4 (exact CPU time); memory sampled."""

    def __init__(self, bench, variant, queues, burst, env_extra=None, sample_memory=False, tag="run"):
        self.variant = variant
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(PYMOD), str(PYJOBS)])
        env["PYTHONUNBUFFERED"] = "1"
        env["REDIS_URL"] = bench.redis.url
        env.update(env_extra or {})
        env.update(variant.env)
        self.procs = []
        self.results = {}
        bench.run_index += 1
        logbase = bench.workdir / "logs" / f"{bench.run_index:04d}-{tag}-{variant.label.replace(' ', '_')}"
        logbase.parent.mkdir(exist_ok=True)
        self.logbase = logbase
        self.t_launch = time.time()
        self.t0 = time.monotonic()
        for i in range(variant.procs):
            out = open(f"{logbase}.{i}.log", "wb")
            p = subprocess.Popen(variant.argv(bench, queues, burst), stdout=out, stderr=subprocess.STDOUT,
                                 env=env, start_new_session=True)
            out.close()
            self.procs.append(p)
        self.peak_pss = 0
        self.peak_rss = 0
        self.hwm = {}
        self._stop_sampler = threading.Event()
        self._sample_memory = sample_memory
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self):
        """Every 20 ms: each process' VmHWM (always), and the sums of RSS and PSS (when asked)."""
        while not self._stop_sampler.is_set():
            rss = pss = 0
            for p in self.procs:
                if p.pid in self.results:
                    continue
                hwm = proc_hwm(p.pid)
                if hwm:
                    self.hwm[p.pid] = max(hwm, self.hwm.get(p.pid, 0))
                if self._sample_memory:
                    m = proc_mem(p.pid)
                    if m:
                        rss += m[0]
                        pss += m[1]
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_pss = max(self.peak_pss, pss)
            self._stop_sampler.wait(0.02)

    def pids(self):
        return [p.pid for p in self.procs]

    def signal(self, sig):
        for p in self.procs:
            if p.pid not in self.results:
                try:
                    os.kill(p.pid, sig)
                except ProcessLookupError:
                    pass

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        while len(self.results) < len(self.procs):
            for p in self.procs:
                if p.pid in self.results:
                    continue
                pid, status, ru = os.wait4(p.pid, os.WNOHANG)
                if pid:
                    p.returncode = os.waitstatus_to_exitcode(status)
                    self.results[p.pid] = {"rc": p.returncode, "maxrss_kib": self.hwm.get(p.pid, 0),
                                           "cpu": ru.ru_utime + ru.ru_stime,
                                           "wall": time.monotonic() - self.t0}
            if len(self.results) == len(self.procs):
                break
            if time.monotonic() > deadline:
                self.kill()
                raise BenchError(f"{self.variant.label}: still running after {timeout:.0f}s (killed); "
                                 f"logs: {self.logbase}.*.log")
            time.sleep(0.005)
        self._stop_sampler.set()
        self._sampler.join()
        bad = [r["rc"] for r in self.results.values() if r["rc"] != 0]
        if bad:
            raise BenchError(f"{self.variant.label}: exit codes {bad}; logs: {self.logbase}.*.log")
        return {"wall": max(r["wall"] for r in self.results.values()),
                "cpu": sum(r["cpu"] for r in self.results.values()),
                "maxrss_kib": [r["maxrss_kib"] for r in self.results.values()],
                "peak_pss_kib": self.peak_pss, "peak_rss_kib": self.peak_rss}

    def kill(self):
        for p in self.procs:
            if p.pid not in self.results:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                os.waitpid(p.pid, 0)
                p.returncode = -9
                self.results[p.pid] = {"rc": -9, "maxrss_kib": 0, "cpu": 0, "wall": 0}
        self._stop_sampler.set()


# --------------------------------------------------------------------------- jobs


def enqueue_noops(conn, queue, n):
    q = Queue(queue, connection=conn)
    ids = []
    for start in range(0, n, 1000):
        jobs = q.enqueue_many([Queue.prepare_data(NOOP) for _ in range(min(1000, n - start))])
        ids += [j.id for j in jobs]
    return ids


def enqueue_recordings(conn, base, n, businesses, run_tag):
    """As the API does: dedup key, then enqueue with its options (pipelined in batches)."""
    q = Queue("recordings", connection=conn)
    ids, sids = [], []
    now_ms = int(time.time() * 1000)
    for start in range(0, n, 500):
        datas = []
        pipe = conn.pipeline()
        for i in range(start, min(n, start + 500)):
            b = 1 + i % businesses
            sid = f"CA{run_tag:08x}{i:024x}"
            rec = f"RE{run_tag:08x}{i:024x}"
            pipe.setex(f"job:download:{b}:{sid}", 120, "queued")
            kwargs = dict(call_sid=sid, recording_url=f"{base}/2010-04-01/Accounts/{ACCOUNT}/Recordings/{rec}.json",
                          business_id=b, from_number="+15550000001", to_number="+15550000002", recording_sid=rec)
            datas.append(Queue.prepare_data(REC_FUNC, kwargs=kwargs, timeout="10m", failure_ttl=3600,
                                            retry=Retry(max=3), job_id=f"recording_download_{sid}_{now_ms}"))
            sids.append((b, sid))
        pipe.execute()
        ids += [j.id for j in q.enqueue_many(datas)]
    return ids, sids


def fetch_jobs(conn, ids):
    jobs = []
    for start in range(0, len(ids), 1000):
        jobs += Job.fetch_many(ids[start:start + 1000], connection=conn)
    return jobs


def verify(conn, ids, queues, expect_return=None):
    """Every job finished, through rq's API; returns the fetched jobs."""
    jobs = fetch_jobs(conn, ids)
    statuses = collections.Counter(
        (j.get_status(refresh=False).value if hasattr(j.get_status(refresh=False), "value")
         else str(j.get_status(refresh=False))) if j else "missing" for j in jobs)
    problems = []
    if statuses.get("finished", 0) != len(ids):
        problems.append(f"statuses {dict(statuses)}")
    finished = sum(FinishedJobRegistry(q, connection=conn).count for q in queues)
    failed = sum(FailedJobRegistry(q, connection=conn).count for q in queues)
    started = sum(StartedJobRegistry(q, connection=conn).count for q in queues)
    left = sum(len(Queue(q, connection=conn)) for q in queues)
    if finished != len(ids) or failed or started or left:
        problems.append(f"registries finished={finished} failed={failed} started={started} queued={left}")
    if expect_return is not None:
        bad = 0
        for j in jobs:
            if j is None or not expect_return(j.return_value()):
                bad += 1
        if bad:
            problems.append(f"{bad} unexpected return values")
    if problems:
        example = next((j for j in jobs if j and str(getattr(j.get_status(refresh=False), "value", "")) != "finished"),
                       None)
        detail = f"; e.g. {example.id}: {example.exc_info}" if example is not None else ""
        raise BenchError("; ".join(problems) + detail)
    return jobs


# --------------------------------------------------------------------------- monitor


def monitor_counts(lines, n_jobs):
    """Client commands, commands run inside scripts, and round trips (a MULTI..EXEC block, sent
    as one pipeline by redis-py, counts as one), per job."""
    client = lua = rtt = 0
    in_multi = set()
    per_cmd = collections.Counter()
    for line in lines:
        m = re.match(r'^\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]+)"', line)
        if not m:
            continue
        who, cmd = m.group(1), m.group(2).upper()
        if who == "lua":
            lua += 1
            continue
        client += 1
        per_cmd[cmd] += 1
        if cmd == "MULTI":
            in_multi.add(who)
            rtt += 1
        elif who in in_multi:
            if cmd in ("EXEC", "DISCARD"):
                in_multi.discard(who)
        else:
            rtt += 1
    return {"client_cmds": client / n_jobs, "lua_cmds": lua / n_jobs, "round_trips": rtt / n_jobs,
            "total_cmds": (client + lua) / n_jobs, "client_by_cmd": dict(per_cmd.most_common(12))}


class Monitor:
    def __init__(self, bench, path):
        self.path = path
        self.out = open(path, "wb")
        self.proc = subprocess.Popen([shutil.which("redis-cli") or "redis-cli", "-p", str(bench.redis.port),
                                      "monitor"], stdout=self.out, stderr=subprocess.DEVNULL)
        time.sleep(0.3)

    def stop(self):
        time.sleep(0.3)
        self.proc.terminate()
        self.proc.wait(10)
        self.out.close()
        with open(self.path, errors="replace") as f:
            return f.read().splitlines()


# --------------------------------------------------------------------------- the bench


class Bench:
    def __init__(self, args):
        self.args = args
        self.rqw = Path(args.rqw).resolve()
        if not os.access(self.rqw, os.X_OK):
            raise BenchError(f"rqw binary not found at {self.rqw} (cargo build --release)")
        self.workdir = Path(tempfile.mkdtemp(prefix="rqw-bench-"))
        shm = Path("/dev/shm")
        rec_root = Path(args.recordings_dir) if args.recordings_dir else (shm if shm.is_dir() else self.workdir)
        self.rec_root = Path(tempfile.mkdtemp(prefix="rqw-bench-rec-", dir=rec_root))
        self.alt_rqw = Path(args.alt_rqw).resolve() if args.alt_rqw else None
        self.alt_env = dict(kv.split("=", 1) for kv in args.alt_env.split()) if args.alt_env else {}
        self.run_index = 0
        self.load_start = open("/proc/loadavg").read().split()[:3]
        self.results = collections.defaultdict(list)  # (workload, variant label) -> [run dicts]
        self.failures = []
        self.redis = RedisServer(self.workdir)
        self.fake = FakeRecordings(self.workdir, args.rec_size, args.rec_latency, "rec")
        self.fake_big = None

    def close(self):
        for s in (self.fake, self.fake_big):
            if s:
                s.stop()
        self.redis.stop()
        shutil.rmtree(self.rec_root, ignore_errors=True)
        if not self.args.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def record(self, workload, variant, data):
        self.results[(workload, variant.label)].append(data)

    def fresh(self):
        self.redis.conn.flushall()

    def rec_env(self, base, folder):
        return {"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_API_BASE": base,
                "RECORDINGS_DIR": str(folder)}

    def guarded(self, workload, variant, fn):
        try:
            fn()
        except BenchError as e:
            log(f"  FAILED {workload} {variant.label}: {e}")
            self.failures.append(f"{workload} / {variant.label}: {e}")

    # -- a: no-op throughput (and f from commandstats)
    def noop_throughput(self, variant, n):
        self.fresh()
        ids = enqueue_noops(self.redis.conn, "default", n)
        before = self.redis.snapshot()
        run = Launched(self, variant, ["default"], burst=True, tag="noop").wait(timeout=max(120, n / 20))
        after = self.redis.snapshot()
        jobs = verify(self.redis.conn, ids, ["default"])
        starts = [ts(j.started_at) for j in jobs]
        ends = [ts(j.ended_at) for j in jobs]
        span = max(ends) - min(starts)
        calls, rcpu = RedisServer.delta(before, after)
        data = {"jobs": n, "span": span, "jobs_per_s": n / span, "wall": run["wall"],
                "cmds_per_job": sum(calls.values()) / n, "redis_cpu_us_per_job": rcpu / n * 1e6,
                "worker_cpu_us_per_job": run["cpu"] / n * 1e6, "calls": calls}
        self.record("a", variant, data)
        log(f"  a {variant.label:28s} {data['jobs_per_s']:9.0f} jobs/s  {data['cmds_per_job']:.1f} cmds/job  "
            f"redis {data['redis_cpu_us_per_job']:.0f} us/job  worker {data['worker_cpu_us_per_job']:.0f} us/job")

    # -- b: recording downloads (and d: peak memory during them)
    def recordings(self, variant, n, fake=None, workload="b", businesses=None):
        fake = fake or self.fake
        businesses = businesses or self.args.rec_businesses
        self.fresh()
        fake.reset()
        folder = self.rec_root / f"run{self.run_index + 1}"
        folder.mkdir()
        ids, sids = enqueue_recordings(self.redis.conn, fake.base, n, businesses, self.run_index + 1)
        before = self.redis.snapshot()
        fake_cpu0 = proc_cpu(fake.proc.pid)
        launched = Launched(self, variant, ["recordings"], burst=True, env_extra=self.rec_env(fake.base, folder),
                            sample_memory=True, tag=f"rec{workload}")
        run = launched.wait(timeout=max(300, n * 2))
        after = self.redis.snapshot()
        fake_cpu = proc_cpu(fake.proc.pid) - fake_cpu0
        fstats = fake.stats()
        jobs = verify(self.redis.conn, ids, ["recordings"],
                      expect_return=lambda v: isinstance(v, dict) and v.get("success") is True)
        files = list(folder.iterdir())
        bad_files = [f for f in files if f.stat().st_size != fake.size]
        if len(files) != n or bad_files:
            raise BenchError(f"{len(files)} files for {n} jobs, {len(bad_files)} of the wrong size")
        conn = self.redis.conn
        leftovers = [k for pattern in ("rec_inflight:*", "rec_queue:*", "rec_queued:*", "rec_handover:*")
                     for k in conn.scan_iter(pattern, count=1000)]
        held = sum(conn.scard(k) for k in conn.scan_iter("rec_slots:*", count=1000))
        if leftovers or held:
            raise BenchError(f"semaphore not clean: {len(leftovers)} keys left, {held} slots held")
        retried = sum(1 for j in jobs if j.retries_left != 3)
        durations = [v.get("duration_ms") for v in (j.return_value() for j in jobs) if isinstance(v, dict)]
        durations = [d for d in durations if isinstance(d, int)]
        starts = [ts(j.started_at) for j in jobs]
        ends = [ts(j.ended_at) for j in jobs]
        span = max(ends) - min(starts)
        calls, rcpu = RedisServer.delta(before, after)
        shutil.rmtree(folder, ignore_errors=True)
        data = {"jobs": n, "span": span, "jobs_per_s": n / span, "wall": run["wall"], "retried_jobs": retried,
                "cmds_per_job": sum(calls.values()) / n, "redis_cpu_us_per_job": rcpu / n * 1e6,
                "worker_cpu_ms_per_job": run["cpu"] / n * 1e3, "peak_pss_mb": run["peak_pss_kib"] / 1024,
                "peak_rss_mb": run["peak_rss_kib"] / 1024, "maxrss_mb": sum(run["maxrss_kib"]) / 1024,
                "fake_requests": fstats["requests"], "fake_max_in_flight": fstats["max_in_flight"],
                "fake_connections": fstats["connections"], "fake_cpu_s": fake_cpu,
                "fake_cpu_busy": fake_cpu / span, "calls": calls,
                "download_ms_p50": pct(durations, 50) if durations else None,
                "download_ms_p95": pct(durations, 95) if durations else None}
        self.record(workload, variant, data)
        log(f"  {workload} {variant.label:28s} {data['jobs_per_s']:8.1f} jobs/s  peak PSS {data['peak_pss_mb']:.1f} MB "
            f"peak RSS {data['maxrss_mb']:.1f} MB  fake server busy {data['fake_cpu_busy']:.0%} "
            f"in flight <= {fstats['max_in_flight']}  retried {retried}  download p50 {data['download_ms_p50']} ms")

    # -- c: pickup latency
    def pickup(self, variant, queues, n, interval, workload):
        self.fresh()
        conn = self.redis.conn
        launched = Launched(self, variant, queues, burst=False, tag=f"pickup{len(queues)}")
        try:
            deadline = time.monotonic() + 30
            while conn.scard("rq:workers") < 1:
                if time.monotonic() > deadline:
                    raise BenchError("worker did not register")
                time.sleep(0.02)
            time.sleep(0.5)
            q = Queue(queues[-1], connection=conn)
            ids = []
            t_next = time.monotonic()
            for _ in range(n):
                t_next += interval
                ids.append(q.enqueue(NOOP).id)
                pause = t_next - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            deadline = time.monotonic() + 60
            while FinishedJobRegistry(queues[-1], connection=conn).get_job_count(cleanup=False) < n:
                if time.monotonic() > deadline:
                    raise BenchError("jobs did not all finish within 60 s")
                time.sleep(0.02)
            launched.signal(signal.SIGTERM)
            launched.wait(timeout=30)
        except BaseException:
            launched.kill()
            raise
        jobs = verify(conn, ids, queues)
        lat = [(ts(j.started_at) - ts(j.enqueued_at)) * 1000 for j in jobs]
        data = {"jobs": n, "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "max_ms": max(lat),
                "mean_ms": statistics.mean(lat)}
        self.record(workload, variant, data)
        log(f"  {workload} {variant.label:28s} p50 {data['p50_ms']:.2f} ms  p99 {data['p99_ms']:.2f} ms  "
            f"max {data['max_ms']:.2f} ms")

    # -- d: idle memory
    def idle_memory(self, variant):
        self.fresh()
        conn = self.redis.conn
        launched = Launched(self, variant, ["default"], burst=False, tag="idle")
        try:
            deadline = time.monotonic() + 30
            while conn.scard("rq:workers") < 1:
                if time.monotonic() > deadline:
                    raise BenchError("worker did not register")
                time.sleep(0.02)
            time.sleep(1.0)
            mem = [proc_mem(pid) for pid in launched.pids()]
            launched.signal(signal.SIGTERM)
            launched.wait(timeout=30)
        except BaseException:
            launched.kill()
            raise
        data = {"rss_mb": sum(m[0] for m in mem) / 1024, "pss_mb": sum(m[1] for m in mem) / 1024}
        self.record("d_idle", variant, data)
        log(f"  d idle {variant.label:28s} RSS {data['rss_mb']:.1f} MB  PSS {data['pss_mb']:.1f} MB")

    # -- e: start-up to first job
    def startup(self, variant):
        self.fresh()
        ids = enqueue_noops(self.redis.conn, "default", 1)
        launched = Launched(self, variant, ["default"], burst=True, tag="startup")
        launched.wait(timeout=60)
        (job,) = verify(self.redis.conn, ids, ["default"])
        data = {"ms": (ts(job.started_at) - launched.t_launch) * 1000}
        self.record("e", variant, data)
        log(f"  e {variant.label:28s} launch -> started_at {data['ms']:.1f} ms")

    # -- f: MONITOR sample
    def monitor_noop(self, variant, n):
        self.fresh()
        self.redis.conn.config_resetstat()
        enqueue_noops(self.redis.conn, "default", n)
        mon = Monitor(self, self.workdir / f"monitor-noop-{self.run_index + 1}.txt")
        try:
            Launched(self, variant, ["default"], burst=True, tag="monitor").wait(timeout=max(120, n / 10))
        finally:
            lines = mon.stop()
        data = monitor_counts(lines, n)
        self.record("f_noop", variant, data)
        log(f"  f noop {variant.label:28s} client {data['client_cmds']:.1f} + lua {data['lua_cmds']:.1f} cmds/job, "
            f"{data['round_trips']:.2f} round trips/job")

    def monitor_recordings(self, variant, n):
        self.fresh()
        folder = self.rec_root / f"mon{self.run_index + 1}"
        folder.mkdir()
        enqueue_recordings(self.redis.conn, self.fake.base, n, self.args.rec_businesses, 9999)
        mon = Monitor(self, self.workdir / f"monitor-rec-{self.run_index + 1}.txt")
        try:
            Launched(self, variant, ["recordings"], burst=True, env_extra=self.rec_env(self.fake.base, folder),
                     tag="monitor-rec").wait(timeout=max(300, n * 2))
        finally:
            lines = mon.stop()
            shutil.rmtree(folder, ignore_errors=True)
        data = monitor_counts(lines, n)
        self.record("f_rec", variant, data)
        log(f"  f rec  {variant.label:28s} client {data['client_cmds']:.1f} + lua {data['lua_cmds']:.1f} cmds/job, "
            f"{data['round_trips']:.2f} round trips/job")


def rotated(items, k):
    k %= len(items)
    return items[k:] + items[:k]


def run_all(bench, args):
    a = args
    worker = Variant("rq Worker", "rq-worker")
    simple = Variant("rq SimpleWorker", "rq-simple")
    rqw_noop = [Variant(f"rqw -c {c}", "rqw", concurrency=c) for c in a.noop_concurrency]
    py4 = Variant(f"rq SimpleWorker x{a.py_procs}", "rq-simple", procs=a.py_procs)
    rqw_rec = [Variant(f"rqw -c {c}", "rqw", concurrency=c) for c in a.rec_concurrency]
    rqw1 = Variant("rqw -c 1", "rqw", concurrency=1)
    big_c = a.big_jobs
    big = [Variant(f"rqw -c {big_c}", "rqw", concurrency=big_c)]
    rqw1s = [rqw1]
    if bench.alt_rqw or bench.alt_env:
        rqw_noop += [x.alt(bench) for x in rqw_noop]
        rqw_rec += [x.alt(bench) for x in rqw_rec]
        rqw1s.append(rqw1.alt(bench))
        big.append(big[0].alt(bench))
    only = set(a.only)

    for rep in range(a.reps):
        log(f"=== repetition {rep + 1}/{a.reps}")
        if "a" in only:
            for v in rotated([worker, simple, *rqw_noop], rep):
                n = a.fork_jobs if v is worker else a.noop_jobs
                bench.guarded("a", v, lambda v=v, n=n: bench.noop_throughput(v, n))
        if "b" in only:
            for v in rotated([py4, *rqw_rec], rep):
                bench.guarded("b", v, lambda v=v: bench.recordings(v, a.rec_jobs))
        if "c" in only:
            for queues, w in ((["default"], "c1"), (PROD_QUEUES, "c6")):
                for v in rotated([worker, simple, *rqw1s], rep):
                    bench.guarded(w, v, lambda v=v, q=queues, w=w: bench.pickup(v, q, a.latency_jobs,
                                                                            a.latency_interval, w))
        if "d" in only:
            for v in rotated([worker, simple, *rqw1s], rep):
                bench.guarded("d_idle", v, lambda v=v: bench.idle_memory(v))
            if bench.fake_big is None:
                bench.fake_big = FakeRecordings(bench.workdir, a.big_size, a.rec_latency, "big")
            big_vars = list(big)
            if not a.skip_python_big:
                big_vars.append(py4)
            for v in rotated(big_vars, rep):
                bench.guarded("d_big", v, lambda v=v: bench.recordings(v, big_c, fake=bench.fake_big,
                                                                      workload="d_big", businesses=big_c))
        if "e" in only:
            for v in rotated([worker, simple, *rqw1s], rep):
                for _ in range(a.startup_runs):
                    bench.guarded("e", v, lambda v=v: bench.startup(v))
    if "f" in only:
        log("=== MONITOR samples (not timed)")
        for v in (worker, simple, *rqw_noop):
            bench.guarded("f_noop", v, lambda v=v: bench.monitor_noop(v, a.monitor_jobs if v is not worker
                                                                      else min(a.monitor_jobs, a.fork_jobs)))
        for v in (py4, *[x for x in rqw_rec if x.concurrency == max(a.rec_concurrency)]):
            bench.guarded("f_rec", v, lambda v=v: bench.monitor_recordings(v, a.monitor_rec_jobs))
    return {"worker": worker, "simple": simple, "rqw_noop": rqw_noop, "py4": py4, "rqw_rec": rqw_rec,
            "rqw1": rqw1, "rqw1s": rqw1s, "big": [x.label for x in big]}


# --------------------------------------------------------------------------- report


def machine_info(bench):
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1))

    def cmd(*argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=20, cwd=REPO).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "unknown"

    commit = cmd("git", "rev-parse", "--short", "HEAD")
    dirty = cmd("git", "status", "--porcelain", "--untracked-files=no")
    return {"date": dt.datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "nproc": os.cpu_count(), "cpu": cpu,
            "mem_gib": mem_kib / 1024 / 1024, "kernel": platform.release(), "rq": rq.__version__,
            "redis": bench.redis.version, "python": platform.python_version(), "rustc": cmd("rustc", "--version"),
            "rqw": f"{commit}{' (with uncommitted changes)' if dirty else ''}", "rqw_bin": str(bench.rqw),
            "load_start": bench.load_start, "load_end": open("/proc/loadavg").read().split()[:3]}


class Stat:
    def __init__(self, values):
        self.values = [v for v in values if v is not None]

    @property
    def ok(self):
        return bool(self.values)

    @property
    def med(self):
        return statistics.median(self.values) if self.values else float("nan")

    def fmt(self, digits=1, unit=""):
        if not self.values:
            return "failed"
        f = f"{{:.{digits}f}}"
        s = f.format(self.med) + unit
        if len(self.values) > 1:
            s += f" ({f.format(min(self.values))}–{f.format(max(self.values))})"
        return s


def stat(bench, workload, label, key):
    return Stat([r[key] for r in bench.results.get((workload, label), [])])


def ratio(a, b, digits=1):
    if not (a.ok and b.ok) or b.med == 0:
        return "–"
    return f"{a.med / b.med:.{digits}f}×"


def goal(ok, text):
    return f"{text}: {'met' if ok else '**not met**'}"


def report(bench, args, v, path):
    m = machine_info(bench)
    L = []
    w = L.append
    w("# Benchmarks: rqw beside the Python worker")
    w("")
    w(f"Generated by `benches/bench.py{' --quick' if args.quick else ''}` (see README, *Benchmarks*) on "
      f"{m['date']}. Do not edit by hand: run `benches/run.sh` again.")
    w("")
    w(f"- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['mem_gib']:.1f} GiB RAM, Linux {m['kernel']}")
    w(f"- Versions: rq {m['rq']} (Python {m['python']}), redis-server {m['redis']}, {m['rustc']}, "
      f"rqw {m['rqw']}")
    w(f"- Load average (1, 5, 15 min) when the run started: {' '.join(m['load_start'])}; when it ended: "
      f"{' '.join(m['load_end'])} (the benchmark itself keeps about 1-2 cores busy).")
    w(f"- Repetitions: {args.reps} per measurement (interleaved: each repetition rotates the order of the "
      f"workers). Figures are **median (min–max)** over the repetitions. Other processes on this machine "
      f"(builds, tests) can disturb single runs; the ranges show how much.")
    w(f"- Every run starts from an empty database (FLUSHALL) of a private redis-server (loopback, "
      f"no persistence). Every job is checked through rq's API after each run: status `finished` for each "
      f"job, finished registry count = jobs, failed/started registries and the queue empty; downloads "
      f"also check the return value, the file size and that the semaphore keys are clean.")
    if bench.alt_rqw or bench.alt_env:
        env = " ".join(f"{k}={val}" for k, val in bench.alt_env.items())
        w(f"- **rqw\\*** rows: the same measurements with `{bench.alt_rqw or bench.rqw}`"
          f"{f' and the environment `{env}`' if env else ''} (an experimental build, for comparison).")
    w("- Workers log at their default level (INFO) to a file. rqw: `rqw worker --burst "
      "--enable-testing-handlers --concurrency N`; Python: `rq worker --burst -w rq.Worker|rq.SimpleWorker`.")
    w("")
    if bench.failures:
        w("**Failed runs (excluded from the figures):**")
        w("")
        for f in bench.failures:
            w(f"- {f}")
        w("")

    # a
    if "a" in args.only:
        w("## (a) No-op throughput")
        w("")
        w(f"`rqw.testing.noop` jobs enqueued with rq (`enqueue_many`), then one burst worker drains them. "
          f"{args.noop_jobs:,} jobs per run; **the forking `rq Worker` runs {args.fork_jobs:,}** (it forks a "
          f"work horse per job). Throughput = jobs / (last `ended_at` − first `started_at`), which leaves out "
          f"process start and exit. Commands per job: all commands executed by Redis during the run "
          f"(`INFO commandstats` delta, including those run inside Lua scripts), divided by jobs.")
        w("")
        w("| worker | jobs/s | × SimpleWorker | Redis commands/job | redis-server CPU µs/job | worker CPU µs/job |")
        w("| --- | --- | --- | --- | --- | --- |")
        base = stat(bench, "a", v["simple"].label, "jobs_per_s")
        for var in [v["worker"], v["simple"], *v["rqw_noop"]]:
            s = stat(bench, "a", var.label, "jobs_per_s")
            w(f"| {var.label} | {s.fmt(0)} | {ratio(s, base, 1)} | "
              f"{stat(bench, 'a', var.label, 'cmds_per_job').fmt(1)} | "
              f"{stat(bench, 'a', var.label, 'redis_cpu_us_per_job').fmt(0)} | "
              f"{stat(bench, 'a', var.label, 'worker_cpu_us_per_job').fmt(0)} |")
        best = max([x for x in v["rqw_noop"] if not x.binary and not x.env], key=lambda x: stat(bench, "a", x.label, "jobs_per_s").med
                   if stat(bench, "a", x.label, "jobs_per_s").ok else -1)
        bs = stat(bench, "a", best.label, "jobs_per_s")
        cmds = stat(bench, "a", best.label, "cmds_per_job")
        w("")
        if bs.ok and base.ok:
            w(f"Goal ≥ 40× SimpleWorker with ≤ 30 commands/job — best rqw ({best.label}): "
              f"{bs.med / base.med:.1f}×, {cmds.med:.1f} commands/job: "
              f"{'met' if bs.med / base.med >= 40 and cmds.med <= 30 else '**not met**'}.")
            w("")

    # b
    if "b" in args.only:
        w("## (b) Recording downloads")
        w("")
        w(f"{args.rec_jobs:,} `{REC_FUNC}` jobs enqueued as the API does (kwargs, `job_timeout='10m'`, "
          f"`Retry(max=3)`, `failure_ttl=3600`, the dedup key), spread round-robin over "
          f"{args.rec_businesses} businesses (at most 5 downloads per business at once, the shared "
          f"semaphore). The fake server answers each request after {args.rec_latency * 1000:.0f} ms with a "
          f"{args.rec_size // 1024} KiB body. Python: {args.py_procs} `SimpleWorker` processes running "
          f"benches/pyjobs/server/jobs/recording_job.py (a faithful port: same Lua semaphore, urllib, file "
          f"written in place); rqw: one process, native handler. Recordings are written to "
          f"{'tmpfs (/dev/shm)' if str(bench.rec_root).startswith('/dev/shm') else bench.rec_root.parent}. "
          f"Memory: PSS summed over the worker processes, sampled every 20 ms (peak of the sum); *peak RSS* = "
          f"sum over the processes of each one's `VmHWM` (kernel high-water mark of its RSS since exec).")
        w("")
        w("| worker | jobs/s | × Python | peak PSS MB | peak RSS MB | worker CPU ms/job | Redis cmds/job | "
          "redis-server CPU µs/job | download ms p50 / p95 | fake server CPU busy | max in flight | jobs retried |")
        w("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        base = stat(bench, "b", v["py4"].label, "jobs_per_s")
        for var in [v["py4"], *v["rqw_rec"]]:
            g = lambda k, d=1: stat(bench, "b", var.label, k).fmt(d)
            s = stat(bench, "b", var.label, "jobs_per_s")
            w(f"| {var.label} | {s.fmt(1)} | {ratio(s, base)} | {g('peak_pss_mb')} | {g('maxrss_mb')} | "
              f"{g('worker_cpu_ms_per_job', 2)} | {g('cmds_per_job')} | {g('redis_cpu_us_per_job', 0)} | "
              f"{g('download_ms_p50', 0)} / {g('download_ms_p95', 0)} | "
              f"{stat(bench, 'b', var.label, 'fake_cpu_busy').fmt(2)} | {g('fake_max_in_flight', 0)} | "
              f"{g('retried_jobs', 0)} |")
        best = max([x for x in v["rqw_rec"] if not x.binary and not x.env], key=lambda x: stat(bench, "b", x.label, "jobs_per_s").med
                   if stat(bench, "b", x.label, "jobs_per_s").ok else -1)
        bs = stat(bench, "b", best.label, "jobs_per_s")
        w("")
        if bs.ok and base.ok:
            w(f"Goal ≥ 15× the {args.py_procs}-process Python run — best rqw ({best.label}): "
              f"{bs.med / base.med:.1f}×: {'met' if bs.med / base.med >= 15 else '**not met**'}. "
              f"Upper bound set by the semaphore: {args.rec_businesses} businesses × 5 slots / "
              f"{args.rec_latency * 1000:.0f} ms = {args.rec_businesses * 5 / args.rec_latency:.0f} jobs/s.")
            w("")
        w("\"fake server CPU busy\" is the fake server's CPU seconds divided by the run's duration (1.00 = "
          "one core saturated); \"download ms\" is the `duration_ms` the jobs return (request to file "
          "written, the server's latency included): close to the configured latency and a server well "
          "below one core mean the fake server was not the bottleneck. \"max in flight\" is the most "
          "requests it served at once.")
        w("")

    # c
    if "c" in args.only:
        w("## (c) Pickup latency")
        w("")
        w(f"A worker waits (not burst) on the queues; {args.latency_jobs} no-op jobs are enqueued one every "
          f"{args.latency_interval * 1000:.0f} ms. Latency = `started_at − enqueued_at` from the job hash "
          f"(both written with the machine's clock; `enqueued_at` is taken by rq just before its enqueue "
          f"transaction is sent, so it includes that round trip). Six queues = "
          f"`{','.join(PROD_QUEUES)}` (production's list), jobs go to the last one.")
        w("")
        w("| queues | worker | p50 ms | p99 ms | max ms |")
        w("| --- | --- | --- | --- | --- |")
        for wl, name in (("c1", "1"), ("c6", "6")):
            for var in (v["worker"], v["simple"], *v["rqw1s"]):
                w(f"| {name} | {var.label} | {stat(bench, wl, var.label, 'p50_ms').fmt(2)} | "
                  f"{stat(bench, wl, var.label, 'p99_ms').fmt(2)} | {stat(bench, wl, var.label, 'max_ms').fmt(2)} |")
        p99s = [stat(bench, wl, v["rqw1"].label, "p99_ms") for wl in ("c1", "c6")]
        if all(p.ok for p in p99s):
            w("")
            w(f"Goal p99 < 5 ms — rqw: one queue {p99s[0].med:.2f} ms, six queues {p99s[1].med:.2f} ms: "
              f"{'met' if max(p.med for p in p99s) < 5 else '**not met**'}.")
        w("")

    # d
    if "d" in args.only:
        w("## (d) Memory")
        w("")
        w("Idle: a worker waiting on an empty queue, 1 s after it registered (RSS and PSS from "
          "`/proc/<pid>/smaps_rollup`).")
        w("")
        w("| worker | idle RSS MB | idle PSS MB |")
        w("| --- | --- | --- |")
        for var in (v["worker"], v["simple"], *v["rqw1s"]):
            w(f"| {var.label} | {stat(bench, 'd_idle', var.label, 'rss_mb').fmt(1)} | "
              f"{stat(bench, 'd_idle', var.label, 'pss_mb').fmt(1)} |")
        w("")
        if "b" in args.only:
            w("During (b): see the peak PSS / peak RSS columns of (b).")
            w("")
        w(f"Large downloads: {args.big_jobs} jobs of {args.big_size / 1e6:.0f} MB bodies, one per business "
          f"(so all {args.big_jobs} download at once), {args.rec_latency * 1000:.0f} ms latency.")
        w("")
        w("| worker | peak RSS (VmHWM) MB | peak PSS MB | jobs/s |")
        w("| --- | --- | --- | --- |")
        for label in v["big"] + ([] if args.skip_python_big else [v["py4"].label]):
            w(f"| {label} | {stat(bench, 'd_big', label, 'maxrss_mb').fmt(1)} | "
              f"{stat(bench, 'd_big', label, 'peak_pss_mb').fmt(1)} | "
              f"{stat(bench, 'd_big', label, 'jobs_per_s').fmt(1)} |")
        idle = stat(bench, "d_idle", v["rqw1"].label, "rss_mb")
        big = stat(bench, "d_big", v["big"][0], "maxrss_mb")
        if idle.ok and big.ok:
            w("")
            w(f"Goals idle < 8 MB, {args.big_jobs}×{args.big_size / 1e6:.0f} MB < 64 MB — rqw idle "
              f"{idle.med:.1f} MB: {'met' if idle.med < 8 else '**not met**'}; large downloads {big.med:.1f} MB: "
              f"{'met' if big.med < 64 else '**not met**'}.")
        w("")

    # e
    if "e" in args.only:
        w("## (e) Start-up to first job")
        w("")
        w(f"One job waits in the queue; the time from launching the burst worker (just before `fork/exec`) "
          f"to the job's `started_at`. {args.startup_runs} launches per repetition.")
        w("")
        w("| worker | ms |")
        w("| --- | --- |")
        for var in (v["worker"], v["simple"], *v["rqw1s"]):
            w(f"| {var.label} | {stat(bench, 'e', var.label, 'ms').fmt(1)} |")
        s = stat(bench, "e", v["rqw1"].label, "ms")
        if s.ok:
            w("")
            w(f"Goal < 20 ms — rqw {s.med:.1f} ms: {'met' if s.med < 20 else '**not met**'}.")
        w("")

    # f
    if "f" in args.only:
        w("## (f) Redis commands and round trips per job")
        w("")
        w(f"From `MONITOR` samples (separate, untimed runs: {args.monitor_jobs} no-op jobs; "
          f"{args.monitor_rec_jobs} downloads). MONITOR prints every command with its origin: a client "
          f"address for commands sent by a client, `lua` for commands run inside a script. *Client commands* "
          f"are the former (an `EVALSHA` counts once); *round trips* count a `MULTI … EXEC` block, which "
          f"redis-py sends as one pipeline, once; *total* adds the commands run inside scripts and agrees "
          f"with the `INFO commandstats` figures of (a) and (b). redis-server CPU per job is in (a) and "
          f"(b) (`INFO cpu` used_cpu_sys + used_cpu_user delta / jobs).")
        w("")
        w("| workload | worker | total cmds/job | client cmds/job | inside scripts/job | round trips/job | "
          "most frequent client commands (per run) |")
        w("| --- | --- | --- | --- | --- | --- | --- |")
        for wl, name, vars_ in (("f_noop", "no-op", (v["worker"], v["simple"], *v["rqw_noop"])),
                                ("f_rec", "download", (v["py4"], *v["rqw_rec"]))):
            for var in vars_:
                rows = bench.results.get((wl, var.label))
                if not rows:
                    continue
                r = rows[0]
                top = ", ".join(f"{k} {c}" for k, c in list(r["client_by_cmd"].items())[:6])
                w(f"| {name} | {var.label} | {r['total_cmds']:.1f} | {r['client_cmds']:.1f} | {r['lua_cmds']:.1f} | "
                  f"{r['round_trips']:.2f} | {top} |")
        w("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(L) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small counts, one repetition (a smoke run)")
    p.add_argument("--reps", type=int, help="repetitions of each measurement (default 3; quick 1)")
    p.add_argument("--only", default="abcdef", help="workloads to run, e.g. 'ab' (default abcdef)")
    p.add_argument("--rqw", default=str(REPO / "target" / "release" / "rqw"), help="rqw binary")
    p.add_argument("--out", default=str(REPO / "docs" / "BENCHMARKS.md"), help="report path")
    p.add_argument("--json", default=str(REPO / "target" / "bench" / "results.json"), help="raw results")
    p.add_argument("--noop-jobs", type=int)
    p.add_argument("--fork-jobs", type=int, help="jobs for the forking rq Worker in (a)")
    p.add_argument("--noop-concurrency", default="1,32,128", help="rqw --concurrency values for (a)")
    p.add_argument("--rec-jobs", type=int)
    p.add_argument("--rec-businesses", type=int, default=40)
    p.add_argument("--rec-size", type=int, default=256 * 1024)
    p.add_argument("--rec-latency", type=float, default=0.1)
    p.add_argument("--rec-concurrency", default="50,100,200", help="rqw --concurrency values for (b)")
    p.add_argument("--recordings-dir", help="where downloads are written (default: a tmpfs folder)")
    p.add_argument("--py-procs", type=int, default=4)
    p.add_argument("--latency-jobs", type=int)
    p.add_argument("--latency-interval", type=float, default=0.02)
    p.add_argument("--big-jobs", type=int, default=64)
    p.add_argument("--big-size", type=int, default=50_000_000)
    p.add_argument("--skip-python-big", action="store_true", help="no Python run of the 50 MB downloads")
    p.add_argument("--startup-runs", type=int, default=3)
    p.add_argument("--monitor-jobs", type=int)
    p.add_argument("--monitor-rec-jobs", type=int)
    p.add_argument("--alt-rqw", help="also run every rqw measurement with this binary (labels 'rqw*')")
    p.add_argument("--alt-env", default="", help="environment for the 'rqw*' runs, e.g. 'A=1 B=2' "
                   "(alone: the same binary with this environment)")
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs, MONITOR captures)")
    args = p.parse_args()
    q = args.quick
    args.reps = args.reps or (1 if q else 3)
    args.noop_jobs = args.noop_jobs or (2000 if q else 20000)
    args.fork_jobs = args.fork_jobs or (200 if q else 2000)
    args.rec_jobs = args.rec_jobs or (400 if q else 2000)
    args.latency_jobs = args.latency_jobs or (100 if q else 500)
    args.monitor_jobs = args.monitor_jobs or (200 if q else 1000)
    args.monitor_rec_jobs = args.monitor_rec_jobs or (100 if q else 400)
    if q:
        args.big_jobs = min(args.big_jobs, 16) if "--big-jobs" not in sys.argv else args.big_jobs
        args.startup_runs = 1 if "--startup-runs" not in sys.argv else args.startup_runs
    args.noop_concurrency = [int(x) for x in args.noop_concurrency.split(",")]
    args.rec_concurrency = [int(x) for x in args.rec_concurrency.split(",")]
    args.only = set(args.only)
    bench = Bench(args)
    log(f"work folder {bench.workdir}; redis-server {bench.redis.version} on port {bench.redis.port}; "
        f"fake recordings at {bench.fake.base}; rqw {bench.rqw}")
    try:
        variants = run_all(bench, args)
        report(bench, args, variants, Path(args.out))
        raw = {f"{k[0]} | {k[1]}": v for k, v in bench.results.items()}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"failures": bench.failures, "results": raw}, indent=1, default=str))
        log(f"report: {args.out}; raw results: {args.json}")
    finally:
        bench.close()
    if bench.failures:
        log(f"{len(bench.failures)} failed run(s):")
        for f in bench.failures:
            log(f"  {f}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
