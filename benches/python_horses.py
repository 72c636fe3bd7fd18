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
    statuses = [Job.fetch(i, connection=conn).get_status() for i in ids]
    done = sum(1 for s in statuses if s == JobStatus.FINISHED)
    if done != n:
        raise SystemExit(f"{' '.join(argv)}: only {done} of {n} jobs finished\n{proc.stderr[-3000:]}")
    return wall, cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rqw", required=True)
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=1)
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
                wall, cpu = run_variant(argv, env, conn, args.jobs)
                results[name].append((wall, cpu))
                print(f"rep {rep + 1} {name}: {args.jobs / wall:.0f} jobs/s, {cpu / args.jobs * 1e6:.0f} µs CPU/job",
                      file=sys.stderr)
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
    import rq

    base = statistics.median(args.jobs / w for w, _ in results["rq SimpleWorker"])
    print(f"Python no-op jobs (`bench_jobs.noop`), {args.jobs} per run, {args.reps} run(s) each, interleaved; "
          f"rq {rq.__version__}, Python {sys.version.split()[0]}, {os.cpu_count()} cores. "
          "Start-up and shut-down of each burst worker included.\n")
    print("| worker | jobs/s (median) | × SimpleWorker | worker CPU µs/job (median) |")
    print("| --- | --- | --- | --- |")
    for name, _ in variants:
        rate = statistics.median(args.jobs / w for w, _ in results[name])
        cpu = statistics.median(c / args.jobs * 1e6 for _, c in results[name])
        print(f"| {name} | {rate:.0f} | {rate / base:.2f} | {cpu:.0f} |")


if __name__ == "__main__":
    main()
