"""Benchmark: Python no-op jobs through rqw's Python horses against rq's own workers.

    .venvs/rq-2.12.0/bin/python benches/python_horses.py --rqw target/release/rqw [--jobs N] [--reps R]

Same run, interleaved, against one private redis-server: `bench_jobs.noop` (a Python function
rqw has no native handler for) run by
  - rq `SimpleWorker` (one process, jobs in-process),
  - `rq worker-pool -n 2` (two `rq.Worker`s, a forked work-horse per job),
  - rqw `--python python --python-processes 2 --concurrency 2` (and `--concurrency 4`).
Each run is a burst worker started on a queue of N enqueued jobs; the time is from the start
of the worker process to its exit (start-up included) and the CPU is the whole worker
process tree's (user + system of the worker and every child it reaped: horses, work-horses),
from wait4. Every job is checked FINISHED through rq's API afterwards. Prints a Markdown table.
"""

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus

HERE = Path(__file__).resolve().parent
PYJOBS = HERE / "pyjobs"


def free_port():
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port != 6379:
            return port


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_variant(argv, env, conn, n):
    conn.flushall()
    queue = Queue("default", connection=conn)
    with conn.pipeline() as pipe:
        ids = [queue.enqueue_call("bench_jobs.noop", pipeline=pipe).id for _ in range(n)]
        pipe.execute()
    assert queue.count == n, queue.count
    cpu0 = children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=1800)
    wall = time.perf_counter() - t0
    cpu = children_cpu() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    jobs = Job.fetch_many(ids, connection=conn)
    done = sum(1 for j in jobs if j is not None and j.get_status(refresh=False) == JobStatus.FINISHED)
    if done != n:
        raise SystemExit(f"{' '.join(argv)}: only {done} of {n} jobs finished\n{proc.stderr[-3000:]}")
    # Steady throughput: first job started -> last job ended (start-up and shut-down excluded).
    span = (max(j.ended_at for j in jobs) - min(j.started_at for j in jobs)).total_seconds()
    return wall, cpu, span


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rqw", required=True)
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--out", help="also write the report (Markdown) to this file")
    ap.add_argument("--note", default="", help="a line added to the report (e.g. what else ran on the machine)")
    args = ap.parse_args()
    python = sys.executable
    rq_cli = str(Path(python).with_name("rq"))
    workdir = tempfile.mkdtemp(prefix="rqw-bench-horses-")
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", workdir], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    conn = Redis.from_url(url)
    for _ in range(100):
        try:
            conn.ping()
            break
        except Exception:
            time.sleep(0.05)
    env = dict(os.environ, PYTHONPATH=str(PYJOBS))
    rqw = [args.rqw, "worker", "--url", url, "--burst", "--python", python, "--python-processes", "2",
           "--logging-level", "WARNING"]
    variants = [
        ("rq SimpleWorker", [rq_cli, "worker", "--burst", "-w", "rq.SimpleWorker", "--url", url, "-q"]),
        ("rq worker-pool -n 2", [rq_cli, "worker-pool", "--burst", "-n", "2", "--url", url, "-q"]),
        ("rqw --python-processes 2 --concurrency 2", rqw + ["--concurrency", "2"]),
        ("rqw --python-processes 2 --concurrency 4", rqw + ["--concurrency", "4"]),
    ]
    results = {name: [] for name, _ in variants}
    try:
        for rep in range(args.reps):
            for name, argv in variants:
                wall, cpu, span = run_variant(argv, env, conn, args.jobs)
                results[name].append((wall, cpu, span))
                print(f"rep {rep + 1} {name}: {args.jobs / span:.0f} jobs/s steady, {args.jobs / wall:.0f} jobs/s "
                      f"with start-up, {cpu / args.jobs * 1e6:.0f} µs CPU/job", file=sys.stderr)
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
    import rq

    lines = []

    def emit(text=""):
        print(text)
        lines.append(text)

    def med(name, f):
        return statistics.median(f(*r) for r in results[name])

    base = med("rq SimpleWorker", lambda w, c, s: args.jobs / s)
    base_wall = med("rq SimpleWorker", lambda w, c, s: args.jobs / w)
    emit("# Python no-op jobs: rqw's Python horses against rq's workers\n")
    emit(f"`{' '.join(['benches/python_horses.py', '--jobs', str(args.jobs), '--reps', str(args.reps)])}`, "
         f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. {args.note}\n")
    emit(f"Python no-op jobs (`bench_jobs.noop`), {args.jobs} per run, {args.reps} run(s) each, interleaved; "
          f"rq {rq.__version__}, Python {sys.version.split()[0]}, {os.cpu_count()} cores. *steady*: first job "
          "started to last job ended (the jobs' own timestamps); *with start-up*: worker process start to exit. "
          "Worker CPU: the worker's process tree (horses / work-horses included), user + system, from wait4, "
          "start-up included.\n")
    emit("| worker | jobs/s steady | × SimpleWorker | jobs/s with start-up | × SimpleWorker | worker CPU µs/job |")
    emit("| --- | --- | --- | --- | --- | --- |")
    for name, _ in variants:
        rate = med(name, lambda w, c, s: args.jobs / s)
        wall = med(name, lambda w, c, s: args.jobs / w)
        cpu = med(name, lambda w, c, s: c / args.jobs * 1e6)
        emit(f"| {name} | {rate:.0f} | {rate / base:.2f} | {wall:.0f} | {wall / base_wall:.2f} | {cpu:.0f} |")


    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
