"""Demo: Python enqueues with rq, rqw runs the jobs, Python reads the outcome with rq's API.

One rqw runs both kinds of job: the recording download and the diagnostic handlers natively,
and a plain Python function (compat-tests/pymod/horsejobs.py, not ported) in a Python horse
(`--python`), with the app's own rq.

Run through compat-tests/demo.sh. Everything runs on loopback: a private redis-server on a
free port, and the rqw binary given as argv[1].
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

from redis import Redis
from rq import Queue, Retry, Worker
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compat import free_port  # noqa: E402
from fake_twilio import FakeTwilio, body, status  # noqa: E402  (a local fake Twilio API)

RECORDING_JOB = "server.jobs.recording_job.process_recording_download_job"
ACCOUNT = "AC" + "0" * 32


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

        recordings = os.path.join(workdir, "recordings")
        os.makedirs(recordings)
        call_sid = "CA" + "ab12" * 8
        recording_url = f"/2010-04-01/Accounts/{ACCOUNT}/Recordings/RE{'cd34' * 8}.json"
        # Twilio serves the .mp3 (the .wav formats are "not there yet": 404).
        twilio = FakeTwilio(lambda r: body(200, b"ID3" + b"\x00" * 48_000) if ".mp3" in r.path else status(404))
        twilio.start()

        # Exactly as the Python API enqueues it.
        recordings_q = Queue("recordings", connection=redis)
        download = recordings_q.enqueue(
            RECORDING_JOB, call_sid=call_sid, recording_url=recording_url, business_id=42,
            from_number="+15550001", to_number="+15550002",
            job_id=f"recording_download_{call_sid}_{int(time.time() * 1000)}",
            job_timeout="10m", retry=Retry(max=3), failure_ttl=3600,
        )
        print(f"[RQ] Recording download job enqueued: call_sid={call_sid} -> RQ job {download.id}")
        q = Queue("default", connection=redis)
        echo = q.enqueue("rqw.testing.echo", 42, "hello", amount=2**70, tags=("a", "b"))
        boom = q.enqueue("rqw.testing.fail", message="boom", retry=Retry(max=1))
        python_job = q.enqueue("horsejobs.rich_values")  # no native handler: runs in Python
        unknown = q.enqueue("myapp.jobs.not_ported_yet", 1)  # not importable: RQ's own import error
        print(f"== enqueued with rq from Python: {len(recordings_q)} on 'recordings', {len(q)} on 'default'")

        print(f"== running: rqw worker --burst --python {sys.executable} recordings default")
        print("   (the download takes about 2 s: the fake Twilio answers 404 for the .wav formats, a")
        print("    recording not ready yet, and the handler waits 2 s after the first 404, as Python did)")
        pymod = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pymod")
        env = dict(os.environ, TWILIO_ACCOUNT_SID=ACCOUNT, TWILIO_AUTH_TOKEN="demo-token-never-logged",
                   RECORDINGS_DIR=recordings, TWILIO_API_BASE=twilio.base, PYTHONPATH=pymod)
        run = subprocess.run(
            [rqw_bin, "worker", "--url", url, "--burst", "--enable-testing-handlers", "--name", "demo-worker",
             "--python", sys.executable, "--python-processes", "1", "recordings", "default"],
            capture_output=True, text=True, timeout=120, env=env,
        )
        twilio.stop()
        for line in run.stderr.splitlines():
            print("   rqw |", line)
        print(f"== rqw exited with {run.returncode}")

        print("== what Python sees through rq's API:")
        sys.path.insert(0, pymod)  # to unpickle the Python job's custom class
        in_python = {line.split("job_id=")[1].split()[0] for line in run.stderr.splitlines() if "(Python horse)" in line}
        for job in (download, echo, boom, python_job, unknown):
            job = Job.fetch(job.id, connection=redis)
            runtime = "Python horse" if job.id in in_python else "native"
            print(f"   {job.func_name} [{runtime}]: status={job.get_status().value}")
            if job.get_status().value == "finished":
                print(f"      return_value() = {job.return_value()!r}")
            else:
                last = (job.exc_info or "").strip().splitlines()[-1]
                print(f"      exc_info (last line) = {last}")
        path = os.path.join(recordings, f"{call_sid}.mp3")
        size = os.path.getsize(path) if os.path.exists(path) else 0
        print(f"   the API would now stream <recordings>/{call_sid}.mp3 ({size} bytes;"
              " the demo's temporary folder is removed when it exits)")
        print(f"   semaphore slots of business 42: {redis.scard('rec_slots:42')} (all released)")
        print(f"   finished registry (default): {FinishedJobRegistry(queue=q).get_job_ids()}")
        print(f"   failed registry (default):   {FailedJobRegistry(queue=q).get_job_ids()}")
        print(f"   workers still registered: {[w.name for w in Worker.all(connection=redis)]}")
        ok = (Job.fetch(download.id, connection=redis).get_status().value == "finished" and size > 1000
              and Job.fetch(echo.id, connection=redis).get_status().value == "finished"
              and Job.fetch(python_job.id, connection=redis).get_status().value == "finished"
              and python_job.id in in_python and download.id not in in_python)
        print("== demo OK" if ok and run.returncode == 0 else "== demo FAILED")
        return 0 if ok and run.returncode == 0 else 1
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
