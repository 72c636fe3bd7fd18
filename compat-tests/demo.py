"""Demo: Python enqueues with rq, rqw runs the jobs, Python reads the outcome with rq's API.

Run through compat-tests/demo.sh. Everything runs on loopback: a private redis-server on a
free port, and the rqw binary given as argv[1].
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from redis import Redis
from rq import Queue, Retry, Worker
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(rqw_bin):
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="rqw-demo-")
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
    )
    try:
        redis = Redis(port=port)
        for _ in range(100):
            try:
                redis.ping()
                break
            except Exception:
                time.sleep(0.05)
        url = f"redis://127.0.0.1:{port}/0"
        print(f"== redis-server on {url}")

        q = Queue("default", connection=redis)
        echo = q.enqueue("rqw.testing.echo", 42, "hello", amount=2**70, tags=("a", "b"))
        boom = q.enqueue("rqw.testing.fail", message="boom", retry=Retry(max=1))
        unknown = q.enqueue("myapp.jobs.not_ported_yet", 1)
        print(f"== enqueued 3 jobs with rq from Python: {len(q)} waiting")

        print("== running: rqw worker --burst default")
        run = subprocess.run(
            [rqw_bin, "worker", "--url", url, "--burst", "--enable-testing-handlers", "--name", "demo-worker", "default"],
            capture_output=True, text=True, timeout=60,
        )
        for line in run.stderr.splitlines():
            print("   rqw |", line)
        print(f"== rqw exited with {run.returncode}")

        print("== what Python sees through rq's API:")
        for job in (echo, boom, unknown):
            job = Job.fetch(job.id, connection=redis)
            print(f"   {job.func_name}: status={job.get_status().value}")
            if job.get_status().value == "finished":
                print(f"      return_value() = {job.return_value()!r}")
            else:
                last = (job.exc_info or "").strip().splitlines()[-1]
                print(f"      exc_info (last line) = {last}")
        print(f"   finished registry: {FinishedJobRegistry(queue=q).get_job_ids()}")
        print(f"   failed registry:   {FailedJobRegistry(queue=q).get_job_ids()}")
        print(f"   workers still registered: {[w.name for w in Worker.all(connection=redis)]}")
        ok = Job.fetch(echo.id, connection=redis).get_status().value == "finished"
        return 0 if ok and run.returncode == 0 else 1
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
