#!/usr/bin/env python3
"""What a fleet's idle replicas cost Redis per job at a low rate (issue 15).

    .venvs/rq-2.12.0/bin/python benches/fleet_wakes.py --rqw old=BIN \
        --rqw "tracking=BIN --queue-wait tracking" --rqw blocking=BIN
        [--replicas 8] [--jobs 200] [--rate 20]

For each binary (a `--rqw` value is LABEL=PATH followed by any options of its own): a private
redis-server (loopback, no persistence), R rqw replicas (not burst, default concurrency) on
the production worker's six queues, then J no-op jobs enqueued one at a time at `--rate` per
second on the last queue; every job is checked `finished` through rq. A replica waiting on
client tracking (`--queue-wait tracking`) is woken on every push and on every pop another
replica makes, so most of its pops find nothing; one blocking on each queue (`BLMOVE`, the
default) is woken only when Redis hands it the pushed id. Reported per job: Redis commands
(`INFO commandstats` delta over the enqueue window, those run inside scripts included),
`EVALSHA` calls and redis-server CPU (`INFO cpu`, user + sys), also less that of a window of
the same length just before with no job (the idle fleet's own commands and Redis's timers,
most of the total at this low load): the commands are the firmer figure.
"""

import argparse
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rq import Queue

from redis_cost import Server  # (benches/: the same private redis-server and its counters)

SIX = ["high", "default", "low", "maintenance", "broadcasts", "recordings"]


def run(command, replicas, jobs, rate):
    """(commands per job by name, redis-server CPU µs per job) of one binary's run."""
    server = Server(Path(tempfile.mkdtemp(prefix="rqw-fleet-wakes-")), callgrind=False)
    conn = server.conn
    workers = []
    try:
        binary, *options = command
        workers = [subprocess.Popen([binary, "worker", "--url", server.url, "--enable-testing-handlers", *options, *SIX],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                   for _ in range(replicas)]
        deadline = time.monotonic() + 30
        while conn.scard("rq:workers") < replicas:
            if time.monotonic() > deadline:
                raise SystemExit("the replicas did not register")
            time.sleep(0.1)
        time.sleep(3)  # (their start-up maintenance pass)
        queue = Queue(SIX[-1], connection=conn)
        # The same window with no job: what the idle fleet and Redis's own timers cost.
        idle_before = server.snapshot()
        time.sleep(jobs / rate)
        idle_after = server.snapshot()
        before = server.snapshot()
        enqueued = []
        t_next = time.monotonic()
        for _ in range(jobs):
            t_next += 1 / rate
            enqueued.append(queue.enqueue("rqw.testing.noop"))
            pause = t_next - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        deadline = time.monotonic() + 30
        while any(j.get_status(refresh=True) != "finished" for j in enqueued):
            if time.monotonic() > deadline:
                raise SystemExit("not every job finished within 30 s")
            time.sleep(0.05)
        after = server.snapshot()
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                w.kill()
        server.stop()
    # (Less the harness's own INFO calls: two per snapshot.)
    calls = {k: v - before["calls"].get(k, 0) for k, v in after["calls"].items() if k != "info"}
    cpu = (after["cpu"] - before["cpu"]) * 1e6 / jobs
    idle_cpu = (idle_after["cpu"] - idle_before["cpu"]) * 1e6 / jobs
    return {k: v / jobs for k, v in calls.items() if v}, cpu, idle_cpu


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rqw", action="append", required=True, help="LABEL=PATH [OPTION...] (repeat)")
    p.add_argument("--replicas", type=int, default=8)
    p.add_argument("--jobs", type=int, default=200)
    p.add_argument("--rate", type=float, default=20)
    args = p.parse_args()
    rows = []
    for spec in args.rqw:
        label, _, command = spec.partition("=")
        per_job, cpu, idle_cpu = run(shlex.split(command), args.replicas, args.jobs, args.rate)
        top = ", ".join(f"{k} {v:.2f}" for k, v in sorted(per_job.items(), key=lambda kv: -kv[1])[:5])
        rows.append((label, sum(per_job.values()), per_job.get("evalsha", 0), cpu, cpu - idle_cpu, top))
        print(f"{label}: {rows[-1]}", file=sys.stderr, flush=True)
    print(f"{args.replicas} replicas on six queues, {args.jobs} jobs at {args.rate:g}/s "
          f"(rq producer {sys.modules['rq'].__version__})")
    print("| binary | Redis commands/job | EVALSHA/job | redis-server CPU µs/job | of which above idle | most frequent (per job) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, total, evalsha, cpu, above, top in rows:
        print(f"| {label} | {total:.1f} | {evalsha:.2f} | {cpu:,.0f} | {above:,.0f} | {top} |")


if __name__ == "__main__":
    main()
