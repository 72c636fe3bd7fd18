#!/usr/bin/env python3
"""Redis's cost per job, for two (or more) rqw binaries side by side, in one run (issue 15).

    .venvs/rq-2.12.0/bin/python benches/redis_cost.py --rqw old=/tmp/old/rqw --rqw new=target/release/rqw
        [--jobs 20000] [--concurrency 128] [--reps 3] [--callgrind] [--monitor 2000]

Each repetition rotates the binaries; every run starts from an empty database of one private
redis-server (loopback, no persistence), enqueues N `rqw.testing.noop` jobs with rq
(`enqueue_many`), runs `rqw worker --burst -c C` and checks that every job finished (status,
finished registry = N, nothing left started, failed or queued). Reported per job:

- commands: `INFO commandstats` calls delta (those run inside scripts included), by command;
- redis-server CPU: `INFO cpu` (user + sys) delta: depends on the machine's load;
- commandstats usec: time Redis measured in each command (an EVALSHA's includes the
  commands it ran; "the scripts' own" = EVALSHA usec minus the usec of all other commands,
  nearly all of them run inside scripts: Lua, and the cost of each redis.call around the
  command itself);
- with `--callgrind`: redis-server runs under `valgrind --tool=callgrind` and the instructions
  it executed during the worker's run (Ir) are counted: independent of the machine's load,
  but the slower Redis makes batches larger, so compare binaries within one such run only;
- worker CPU (user + sys of the rqw process) and jobs/s (N / (last ended_at - first
  started_at)).
With `--monitor N`, one more untimed run per binary under MONITOR prints the commands of a few
jobs (what one job costs, command by command).
"""

import argparse
import collections
import datetime as dt
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry

NOOP = "rqw.testing.noop"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, workdir, callgrind):
        self.port = free_port()
        self.callgrind = callgrind
        self.workdir = workdir
        argv = [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(workdir), "--maxclients", "10000"]
        if callgrind:
            argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                    f"--callgrind-out-file={workdir}/callgrind.out.%p"] + argv
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.conn = redis.Redis(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.conn.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit("redis-server did not start")
                time.sleep(0.1)

    def snapshot(self):
        stats = self.conn.info("commandstats")
        cpu = self.conn.info("cpu")
        return {"calls": {k[8:]: v["calls"] for k, v in stats.items()},
                "usec": {k[8:]: v["usec"] for k, v in stats.items()},
                "cpu": cpu["used_cpu_sys"] + cpu["used_cpu_user"]}

    def callgrind_ctl(self, *args):
        out = subprocess.run(["callgrind_control", *args, str(self.proc.pid)], capture_output=True, text=True)
        if os.environ.get("RQW_COST_DEBUG"):
            print(args, out.stdout, out.stderr)
        return out.stdout

    def instructions(self, label):
        """Dumps the counters gathered since the last zeroing; returns Ir."""
        before = set(self.workdir.glob("callgrind.out.*"))
        self.callgrind_ctl(f"--dump={label}")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            new = set(self.workdir.glob("callgrind.out.*")) - before
            for path in new:
                text = path.read_text(errors="replace")
                m = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
                if m:
                    return int(m.group(1)), path
            time.sleep(0.2)
        raise SystemExit("no callgrind dump")

    def stop(self):
        self.conn.close()
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def enqueue(conn, n):
    q = Queue("default", connection=conn)
    ids = []
    for start in range(0, n, 1000):
        ids += [j.id for j in q.enqueue_many([Queue.prepare_data(NOOP) for _ in range(min(1000, n - start))])]
    return ids


def verify(conn, ids):
    jobs = []
    for start in range(0, len(ids), 1000):
        jobs += Job.fetch_many(ids[start:start + 1000], connection=conn)
    bad = [j for j in jobs if j is None or str(getattr(j.get_status(refresh=False), "value",
                                                         j.get_status(refresh=False))) != "finished"]
    counts = (FinishedJobRegistry("default", connection=conn).count, FailedJobRegistry("default", connection=conn).count,
              StartedJobRegistry("default", connection=conn).count, len(Queue("default", connection=conn)))
    if bad or counts != (len(ids), 0, 0, 0):
        raise SystemExit(f"not every job finished: {len(bad)} bad, registries {counts}")
    ts = lambda d: d.replace(tzinfo=dt.timezone.utc).timestamp() if d.tzinfo is None else d.timestamp()
    return len(ids) / (max(ts(j.ended_at) for j in jobs) - min(ts(j.started_at) for j in jobs))


def run_worker(binary, server, concurrency, log):
    argv = [binary, "worker", "default", "--url", server.url, "--enable-testing-handlers", "--burst",
            "--concurrency", str(concurrency)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"{binary} exited {status}; see {log}")
    return usage.ru_utime + usage.ru_stime


def one_run(server, label, binary, args, workdir, index):
    server.conn.flushall()
    ids = enqueue(server.conn, args.jobs)
    if server.callgrind:
        server.callgrind_ctl("-i", "on")
        server.callgrind_ctl("-z")
    before = server.snapshot()
    worker_cpu = run_worker(binary, server, args.concurrency, workdir / f"worker-{index}-{label}.log")
    after = server.snapshot()
    ir = None
    if server.callgrind:
        # Dumped while instrumented: callgrind reads its commands only in instrumented code.
        ir, path = server.instructions(f"{index}-{label}")
        server.callgrind_ctl("-i", "off")
        print(f"  callgrind dump of {label}: {path}")
    n = args.jobs
    calls = {k: v - before["calls"].get(k, 0) for k, v in after["calls"].items()}
    calls["info"] = max(0, calls.get("info", 0) - 2)
    usec = {k: v - before["usec"].get(k, 0) for k, v in after["usec"].items()}
    usec.pop("info", None)
    calls = {k: v for k, v in calls.items() if v > 0}
    jobs_per_s = verify(server.conn, ids)
    evalsha = usec.get("evalsha", 0)
    inside = sum(v for k, v in usec.items() if k not in ("evalsha", "eval", "info", "flushall", "script|load",
                                                        "script"))
    return {
        "cmds": sum(calls.values()) / n,
        "by_cmd": {k: v / n for k, v in sorted(calls.items(), key=lambda kv: -kv[1])},
        "cpu_us": (after["cpu"] - before["cpu"]) / n * 1e6,
        # EVALSHA's usec includes the commands it ran; the others are almost all run inside.
        "usec_own": (evalsha - inside) / n,
        "usec_evalsha": evalsha / n,
        "usec_inside": inside / n,
        "ir": ir / n if ir else None,
        "worker_cpu_us": worker_cpu / n * 1e6,
        "jobs_per_s": jobs_per_s,
        "evalsha_calls": calls.get("evalsha", 0),
    }


def monitor(server, label, binary, args, workdir):
    server.conn.flushall()
    enqueue(server.conn, args.monitor)
    path = workdir / f"monitor-{label}.txt"
    with open(path, "wb") as out:
        mon = subprocess.Popen(["redis-cli", "-p", str(server.port), "monitor"], stdout=out,
                               stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        run_worker(binary, server, args.concurrency, workdir / f"worker-monitor-{label}.log")
        time.sleep(0.3)
        mon.terminate()
        mon.wait()
    lines = path.read_text(errors="replace").splitlines()
    per = collections.Counter()
    for line in lines:
        m = re.match(r'^\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]+)"', line)
        if m:
            per[(m.group(1) == "lua", m.group(2).upper())] += 1
    n = args.monitor
    print(f"\nMONITOR {label}: {n} jobs, {sum(per.values()) / n:.2f} commands/job")
    for (lua, cmd), count in per.most_common():
        print(f"  {'lua ' if lua else 'client'} {cmd:14s} {count / n:7.3f}/job")
    print(f"  (sample: {path})")


def med(values):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rqw", action="append", required=True, help="LABEL=PATH (repeat)")
    p.add_argument("--jobs", type=int, default=20000)
    p.add_argument("--concurrency", type=int, default=128)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--callgrind", action="store_true")
    p.add_argument("--monitor", type=int, default=0, help="jobs of one MONITOR sample per binary (0: none)")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    binaries = [tuple(spec.split("=", 1)) for spec in args.rqw]
    workdir = Path(tempfile.mkdtemp(prefix="rqw-redis-cost-"))
    load_before = open("/proc/loadavg").read().split()[:3]
    server = Server(workdir, args.callgrind)
    results = collections.defaultdict(list)
    try:
        for rep in range(args.reps):
            order = binaries[rep % len(binaries):] + binaries[:rep % len(binaries)]
            for label, binary in order:
                r = one_run(server, label, binary, args, workdir, len(results[label]) + rep * 10)
                results[label].append(r)
                print(f"rep {rep + 1} {label:6s} {r['cmds']:.2f} cmds/job  cpu {r['cpu_us']:.1f} us/job  "
                      f"usec: evalsha {r['usec_evalsha']:.1f} = commands {r['usec_inside']:.1f} + own {r['usec_own']:.1f}  "
                      + (f"Ir {r['ir']:.0f}/job  " if r["ir"] else "")
                      + f"worker {r['worker_cpu_us']:.1f} us/job  {r['jobs_per_s']:.0f} jobs/s  "
                      f"evalsha calls {r['evalsha_calls']}", flush=True)
        for label, binary in binaries:
            if args.monitor:
                monitor(server, label, binary, args, workdir)
    finally:
        server.stop()
    load_after = open("/proc/loadavg").read().split()[:3]
    print(f"\n{args.jobs} no-op jobs, -c {args.concurrency}, {args.reps} reps"
          f"{', redis-server under callgrind' if args.callgrind else ''}; load {' '.join(load_before)} -> "
          f"{' '.join(load_after)}")
    print("| binary | cmds/job | redis CPU us/job | EVALSHA usec/job | of which commands | of which the scripts' own | Ir/job | worker CPU us/job | jobs/s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, _ in binaries:
        rs = results[label]
        print(f"| {label} | {med([r['cmds'] for r in rs])} | {med([r['cpu_us'] for r in rs])} | "
              f"{med([r['usec_evalsha'] for r in rs])} | {med([r['usec_inside'] for r in rs])} | "
              f"{med([r['usec_own'] for r in rs])} | "
              f"{med([r['ir'] for r in rs])} | {med([r['worker_cpu_us'] for r in rs])} | "
              f"{med([r['jobs_per_s'] for r in rs])} |")
    for label, _ in binaries:
        by = collections.defaultdict(list)
        for r in results[label]:
            for k, v in r["by_cmd"].items():
                by[k].append(v)
        print(f"{label}: " + ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in
                                      sorted(by.items(), key=lambda kv: -statistics.median(kv[1]))))
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"kept {workdir}")


if __name__ == "__main__":
    sys.exit(main())
