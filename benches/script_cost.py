#!/usr/bin/env python3
"""Redis instructions per job of rqw's two per-job scripts, measured alone (issue 15).

    .venvs/rq-2.12.0/bin/python benches/script_cost.py [--batch 1 --batch 64] [--rounds 4]

redis-server (loopback, no persistence) runs under `valgrind --tool=callgrind` with counting
off; the scripts are loaded from this checkout's `src/store/scripts/` exactly as rqw builds
them, so an edit to a script is measured without a build. For each batch size B, each round
enqueues max(1, 64 / B) x B no-op jobs with rq (`enqueue_many`), then counts the
instructions (Ir) redis-server executes during `start.lua` calls that start B each (the
arguments rqw sends), then during `finish.lua` calls that record B each as finished
(result_ttl 500, a type-1 result entry as rqw writes it), and checks through rq that every job
is `finished`. Reported: Ir per job
of each script (median over the rounds) and the Redis commands per job each ran (`INFO
commandstats`). Instruction counts do not depend on the machine's load; they cover only the
script calls (no network read of other commands, no heartbeat, no worker), so they isolate
what a change to a script saves. `benches/redis_cost.py` measures the whole worker.
RQW_COST_DEBUG=1 keeps the callgrind dumps (their paths are printed) for callgrind_annotate.

--floor adds two rows per batch size, measured in the same server and rounds: the same
commands with none of the scripts' logic (benches/floor_writes.py), inside one Lua script
each ("floor, Lua") and as plain pipelined commands ("floor, pipeline"). The gap between the
scripts and the Lua floor is what trimming the scripts could still take off; the Lua floor
is what RQ's writes cost through Lua at all.

--idle adds the cost of one start.lua call that finds its queues empty (one and six queues:
the call an idle worker makes on each wake-up by a push another worker took, and every poll
without client tracking), median of 64 calls per round.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis
from rq import Queue
from rq.job import Job

from redis_cost import free_port  # (benches/: the same loopback port picker)
import floor_writes

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "src" / "store" / "scripts"
NOOP = "rqw.testing.noop"
WORKER = "script-cost-worker"


def scripts(directory):
    def read(*names):
        return "".join((directory / n).read_text() for n in names)
    return read("start.lua"), read("lib/enqueue.lua", "lib/dependents.lua", "lib/failure.lua", "finish.lua")


class Server:
    def __init__(self, workdir):
        self.workdir = workdir
        port = free_port()
        argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                f"--callgrind-out-file={workdir}/callgrind.out.%p",
                shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(workdir),
                # Redis's timers run inside a counted window too, as often as the (slow) window
                # lasts: at 1 Hz instead of 10 they weigh little.
                "--hz", "1"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        self.conn = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.conn.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit("redis-server did not start")
                time.sleep(0.1)

    def control(self, *args):
        subprocess.run(["callgrind_control", *args, str(self.proc.pid)], capture_output=True, check=True)

    def count(self, label, call):
        """Runs call() with counting on; returns (its result, the Ir it cost)."""
        before = set(self.workdir.glob("callgrind.out.*"))
        # callgrind reads its commands only in instrumented code: on first, dump before off.
        self.control("--instr=on")
        self.control("--zero")
        result = call()
        self.control(f"--dump={label}")
        self.control("--instr=off")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for path in set(self.workdir.glob("callgrind.out.*")) - before:
                m = re.search(r"^(?:summary|totals): (\d+)", path.read_text(errors="replace"), re.M)
                if m:
                    if os.environ.get("RQW_COST_DEBUG"):
                        print(path, m.group(0))
                    else:
                        path.unlink()
                    return result, int(m.group(1))
            time.sleep(0.1)
        raise SystemExit("no callgrind dump")

    def calls(self):
        return sum(v["calls"] for k, v in self.conn.info("commandstats").items() if k != "cmdstat_evalsha")

    def stop(self):
        self.conn.close()
        self.proc.terminate()
        self.proc.wait(timeout=60)


def rq_now():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z", t


def start_args(xids, old):
    ts, t = rq_now()
    whole = [] if old else ["0"]  # ARGV 13 (issue 15): only the fields the worker reads
    return ["rq:", WORKER, ts, f"{t:.6f}", str(int(t)), "30", "180", "420", "", "", "1",
            str(4 << 20), *whole, "default", *xids]


def result_entry(x, t):
    """A no-op's entry as rqw writes it (a `None` return value is omitted, as RQ omits it)."""
    return ["type", "1", "worker_name", WORKER, "execution_id", x,
            "execution_started_at", f"{t - 0.001:.6f}", "execution_ended_at", f"{t:.6f}"]


def finish_calls(started, old):
    """The argument lists of the finish.lua calls that record `started` as finished."""
    ts, t = rq_now()
    if old:  # ad2bad9: one call per job
        return [["rq:", WORKER, job_id, x, "default", ts, str(int(t)), "finished", "500", "0.001",
                 "successful_job_count", "", "", "180", "", "0", *result_entry(x, t)]
                for job_id, x, _ in started]
    args = ["rq:", WORKER, "180"]
    for job_id, x, member in started:
        # 17 items per job; a None return value has no return_value ('').
        args += [job_id, x, "default", "1" if member == job_id else "", ts, str(int(t)), "finished",
                 "500", "0.001", "", "", "", "0", "1", "", f"{t - 0.001:.6f}", f"{t:.6f}"]
    return [args]


def parse_start(reply):
    started = []
    for i in range(0, len(reply), 5):
        q, job_id, ttl, fields, x = reply[i:i + 5]
        if ttl == 0:
            raise SystemExit(f"start.lua refused {job_id!r}: {fields!r}")
        names = set(fields[0::2])
        member = f"{job_id.decode()}:{x.decode()}" if b"group_id" in names else job_id.decode()
        started.append((job_id.decode(), x.decode(), member))
    return started


def idle_rows(server, start_sha, old, rounds):
    """(queues, Ir per call, commands per call) of start.lua calls that find nothing."""
    conn = server.conn
    rows = []
    for names in (["default"], ["high", "default", "low", "maintenance", "broadcasts", "recordings"]):
        irs, cmds = [], []
        for _ in range(rounds):
            conn.flushall()
            base = start_args([uuid.uuid4().hex for _ in range(4)], old)  # on "default"
            k = 12 if old else 13  # the queue name in the list: ARGV 14 (13 in --old's layout)
            call_args = base[:10] + [str(len(names))] + base[11:k] + names + base[k + 1:]
            c0 = server.calls()
            replies, ir = server.count("idle", lambda: [conn.evalsha(start_sha, 0, *call_args)
                                                        for _ in range(64)])
            if replies != [None] * 64:
                raise SystemExit(f"start.lua on empty queues replied {replies[:2]!r}")
            irs.append(ir / 64)
            cmds.append((server.calls() - c0 - 1) / 64)
        rows.append((len(names), statistics.median(irs), statistics.median(cmds)))
    return rows


def floor_rows(server, batch, rounds):
    """The floor rows (see the module doc) for `batch` jobs per call, as many calls per counted
    window as the scripts' rows (one pipeline per call for the plain commands)."""
    conn = server.conn
    start_sha = conn.script_load(floor_writes.START_SCRIPT)
    finish_sha = conn.script_load(floor_writes.FINISH_SCRIPT)
    calls = max(1, 64 // batch)
    ways = {"floor, Lua": [], "floor, pipeline": []}
    for _ in range(rounds):
        for way, irs in ways.items():
            conn.flushall()
            q = Queue("default", connection=conn)
            jobs = q.enqueue_many([Queue.prepare_data(NOOP, result_ttl=500) for _ in range(calls * batch)])
            ids = [j.id for j in jobs]
            chunks = [(ids[i:i + batch], [uuid.uuid4().hex for _ in range(batch)])
                      for i in range(0, len(ids), batch)]
            ts, t = rq_now()
            if way == "floor, Lua":
                def start():
                    for _, xs in chunks:
                        conn.evalsha(start_sha, 0, ts, f"{t:.6f}", batch, *xs)

                def finish():
                    for chunk, xs in chunks:
                        conn.evalsha(finish_sha, 0, ts, *[v for pair in zip(chunk, xs) for v in pair])
            else:
                def start():
                    for chunk, xs in chunks:
                        pipe = conn.pipeline(transaction=False)
                        floor_writes.pipeline_start(pipe, chunk, xs, ts)
                        pipe.execute()

                def finish():
                    for chunk, xs in chunks:
                        pipe = conn.pipeline(transaction=False)
                        floor_writes.pipeline_finish(pipe, chunk, xs, ts)
                        pipe.execute()
            c0 = server.calls()
            _, start_ir = server.count("floor-start", start)
            c1 = server.calls()
            _, finish_ir = server.count("floor-finish", finish)
            c2 = server.calls()
            statuses = {Job.fetch(i, connection=conn).get_status() for i in ids}
            if statuses != {"finished"}:
                raise SystemExit(f"{way}: jobs ended {statuses}")
            n = len(ids)  # (less the INFO commandstats of each count; EVALSHA is not counted)
            irs.append((start_ir / n, (c1 - c0 - 1) / n, finish_ir / n, (c2 - c1 - 1) / n))
    rows = []
    for way, irs in ways.items():
        rows.append((f"{batch} ({way})", *(statistics.median(c) for c in zip(*irs))))
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, action="append", help="jobs per call (repeat); default 1 and 64")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--old", type=Path, metavar="SCRIPTS_DIR",
                   help="measure ad2bad9's scripts from this directory (one finish call per job)")
    p.add_argument("--scripts", type=Path, default=SCRIPTS, metavar="DIR",
                   help="measure the scripts of this directory (this checkout's layout; a variant)")
    p.add_argument("--idle", action="store_true",
                   help="also measure a start.lua call on empty queues (one and six)")
    p.add_argument("--floor", action="store_true",
                   help="also measure the scripts' writes without their logic (benches/floor_writes.py)")
    args = p.parse_args()
    START, FINISH = scripts(args.old or args.scripts)
    workdir = Path(tempfile.mkdtemp(prefix="rqw-script-cost-"))
    server = Server(workdir)
    conn = server.conn
    start_sha, finish_sha = conn.script_load(START), conn.script_load(FINISH)
    rows = []
    try:
        if args.idle:
            idle = idle_rows(server, start_sha, args.old, args.rounds)
        for batch in args.batch or [1, 64]:
            start_ir, finish_ir, start_cmds, finish_cmds = [], [], [], []
            for _ in range(args.rounds):
                conn.flushall()
                conn.script_load(START), conn.script_load(FINISH)
                ts, _ = rq_now()
                conn.hset(f"rq:worker:{WORKER}", mapping={"birth": ts, "state": "idle", "queues": "default"})
                q = Queue("default", connection=conn)
                # Several calls per counted window, so that Redis's own timers weigh little.
                calls = max(1, 64 // batch)
                jobs = batch * calls
                ids = [j.id for j in q.enqueue_many([Queue.prepare_data(NOOP) for _ in range(jobs)])]
                xids = [[uuid.uuid4().hex for _ in range(batch)] for _ in range(calls)]
                c0 = server.calls()
                replies, ir = server.count("start", lambda: [conn.evalsha(start_sha, 0, *start_args(x, args.old))
                                                            for x in xids])
                started = [parse_start(r) for r in replies]
                if sum(map(len, started)) != jobs:
                    raise SystemExit(f"start.lua started {sum(map(len, started))} of {jobs}")
                c1 = server.calls()
                start_ir.append(ir / jobs)
                start_cmds.append((c1 - c0 - 1) / jobs)  # less the first INFO (commandstats)
                replies, ir = server.count("finish", lambda: [conn.evalsha(finish_sha, 0, *a) for s in started
                                                             for a in finish_calls(s, args.old)])
                codes = replies if args.old else [code for r in replies for code in r[0::2]]
                if codes != [1] * jobs:
                    raise SystemExit(f"finish.lua replied {replies!r}")
                finish_ir.append(ir / jobs)
                finish_cmds.append((server.calls() - c1 - 1) / jobs)
                statuses = {Job.fetch(i, connection=conn).get_status() for i in ids}
                if statuses != {"finished"}:
                    raise SystemExit(f"jobs ended {statuses}")
            rows.append((batch, statistics.median(start_ir), statistics.median(start_cmds),
                         statistics.median(finish_ir), statistics.median(finish_cmds)))
            if args.floor:
                rows += floor_rows(server, batch, args.rounds)
    finally:
        server.stop()
        if not os.environ.get("RQW_COST_DEBUG"):  # keeps the dumps (callgrind_annotate)
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"redis-server Ir per job, median of {args.rounds} rounds (rq producer {sys.modules['rq'].__version__})")
    print("| jobs per call | start.lua Ir/job | start cmds/job | finish.lua Ir/job | finish cmds/job | both Ir/job |")
    print("| --- | --- | --- | --- | --- | --- |")
    for batch, s_ir, s_c, f_ir, f_c in rows:
        print(f"| {batch} | {s_ir:,.0f} | {s_c:.2f} | {f_ir:,.0f} | {f_c:.2f} | {s_ir + f_ir:,.0f} |")
    if args.idle:
        print()
        print("| start.lua call on empty queues | Ir per call | commands per call |")
        print("| --- | --- | --- |")
        for queues, ir, cmds in idle:
            print(f"| {queues} | {ir:,.0f} | {cmds:.2f} |")


if __name__ == "__main__":
    main()
