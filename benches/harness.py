"""Shared harness of the benchmarks: the private redis-server, the fake recording server,
worker variants and their launch (CPU from wait4, memory sampling), enqueue and verify
helpers, MONITOR capture, the Bench state (results, failures) and report helpers.

Each workload lives in benches/workloads/<name>.py; benches/bench.py runs them."""

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
    """One benchmark run: its servers, work folder and results."""

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


def rotated(items, k):
    k %= len(items)
    return items[k:] + items[:k]



def standard_variants(bench, args):
    """The worker variants the workloads share (rqw* copies with --alt-rqw / --alt-env)."""
    a = args
    worker = Variant("rq Worker", "rq-worker")
    simple = Variant("rq SimpleWorker", "rq-simple")
    rqw_noop = [Variant(f"rqw -c {c}", "rqw", concurrency=c) for c in a.noop_concurrency]
    py4 = Variant(f"rq SimpleWorker x{a.py_procs}", "rq-simple", procs=a.py_procs)
    rqw_rec = [Variant(f"rqw -c {c}", "rqw", concurrency=c) for c in a.rec_concurrency]
    rqw1 = Variant("rqw -c 1", "rqw", concurrency=1)
    big = [Variant(f"rqw -c {a.big_jobs}", "rqw", concurrency=a.big_jobs)]
    rqw1s = [rqw1]
    if bench.alt_rqw or bench.alt_env:
        rqw_noop += [x.alt(bench) for x in rqw_noop]
        rqw_rec += [x.alt(bench) for x in rqw_rec]
        rqw1s.append(rqw1.alt(bench))
        big.append(big[0].alt(bench))
    return {"worker": worker, "simple": simple, "rqw_noop": rqw_noop, "py4": py4, "rqw_rec": rqw_rec,
            "rqw1": rqw1, "rqw1s": rqw1s, "big": big}


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
