"""End to end: the API's recording-download job, enqueued from Python exactly as the API does,
run by the real rqw binary against a fake Twilio (fake_twilio.py).

Checks what the Python side sees: the job's status and return value, the file the API serves,
the semaphore keys its status endpoint reads, and the operators' log lines. rqw only: the
Python worker has no `server.jobs.recording_job` module here.
"""

import threading
import time
from pathlib import Path

import pytest
from rq import Queue, Retry
from rq.job import Job, JobStatus

from compat import last_line
from fake_twilio import FakeTwilio, basic_auth, body, stall, status, stream, worker_env

pytestmark = pytest.mark.rqw_only("native recording handler")

FUNC = "server.jobs.recording_job.process_recording_download_job"
ACCOUNT = "AC" + "a" * 32
TOKEN = "compat-secret-token"
BUSINESS = 42


def call_sid(n):
    return f"CA{n:032x}"


def rec_path(n=1):
    return f"/2010-04-01/Accounts/{ACCOUNT}/Recordings/RE{n:032x}"


def enqueue(conn, sid, recording_url, business_id=BUSINESS, job_timeout="10m", retry=True, job_id=None, **extra):
    """As the API does (RQ enqueue of the recording download)."""
    kwargs = dict(call_sid=sid, recording_url=recording_url, **extra)
    if business_id is not None:
        kwargs["business_id"] = business_id
    options = dict(job_timeout=job_timeout, failure_ttl=3600, job_id=job_id or f"recording_download_{sid}_{int(time.time() * 1000)}")
    if retry:
        options["retry"] = Retry(max=3)
    return Queue("recordings", connection=conn).enqueue(FUNC, **kwargs, **options)


def api_status(conn, recordings_dir, business_id, sid):
    """What the API's status endpoint reports, from the same keys and file."""
    path = Path(recordings_dir) / f"{sid}.mp3"
    if path.exists() and path.stat().st_size > 1000:
        return ("ready", None)
    if conn.exists(f"rec_failed:{business_id}:{sid}"):
        return ("failed", conn.get(f"rec_failed:{business_id}:{sid}").decode())
    if conn.exists(f"rec_inflight:{business_id}:{sid}"):
        return ("processing", None)
    queue = [s.decode() for s in conn.lrange(f"rec_queue:{business_id}", 0, -1)]
    if sid in queue:
        return ("queued", queue.index(sid) + 1)
    return ("unknown", None)


# Python's semaphore scripts (the API's side), to hold slots and release them as the API would.
PY_ACQUIRE = """
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', 'rec_inflight:' .. ARGV[1] .. ':' .. m) == 0 then redis.call('SREM', KEYS[1], m) end
end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'inflight' end
if redis.call('SISMEMBER', KEYS[3], ARGV[2]) == 1 then return 'already_queued' end
if redis.call('SCARD', KEYS[1]) < 5 then
  redis.call('SADD', KEYS[1], ARGV[2]); redis.call('SETEX', KEYS[2], 900, 'processing'); return 'acquired'
end
redis.call('SADD', KEYS[3], ARGV[2]); redis.call('EXPIRE', KEYS[3], 1200); redis.call('RPUSH', KEYS[4], ARGV[2])
return 'queued'
"""
PY_RELEASE = """
redis.call('SREM', KEYS[1], ARGV[2]); redis.call('DEL', KEYS[2])
local nxt = redis.call('LPOP', KEYS[3])
if nxt then
  redis.call('SREM', KEYS[4], nxt); redis.call('SADD', KEYS[1], nxt)
  redis.call('SETEX', 'rec_inflight:' .. ARGV[1] .. ':' .. nxt, 900, 'processing')
  return nxt
end
return false
"""


def py_acquire(conn, b, sid):
    keys = [f"rec_slots:{b}", f"rec_inflight:{b}:{sid}", f"rec_queued:{b}", f"rec_queue:{b}"]
    return conn.eval(PY_ACQUIRE, 4, *keys, b, sid).decode()


def py_release(conn, b, sid):
    keys = [f"rec_slots:{b}", f"rec_inflight:{b}:{sid}", f"rec_queue:{b}", f"rec_queued:{b}"]
    nxt = conn.eval(PY_RELEASE, 4, *keys, b, sid)
    return nxt.decode() if nxt else None


@pytest.fixture
def recordings(tmp_path):
    path = tmp_path / "recordings"
    path.mkdir()
    return path


@pytest.fixture
def twilio():
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def env(worker, twilio, recordings):
    worker.env.update(worker_env(twilio, recordings, ACCOUNT, TOKEN))
    return worker.env


def in_order(text, lines):
    at = 0
    for line in lines:
        found = text.find(line, at)
        assert found >= 0, f"missing (in order) {line!r} in:\n{text}"
        at = found + len(line)


def slot_keys_clean(conn, b, sid):
    assert conn.sismember(f"rec_slots:{b}", sid) == 0
    assert not conn.exists(f"rec_inflight:{b}:{sid}")
    assert conn.sismember(f"rec_queued:{b}", sid) == 0
    assert sid.encode() not in conn.lrange(f"rec_queue:{b}", 0, -1)


def test_download_end_to_end(conn, worker, env, twilio, recordings):
    sid = call_sid(1)
    audio = bytes(range(256)) * 40
    twilio.router = lambda r: body(200, audio) if r.path.endswith(".wav?RequestedChannels=2") else status(404)
    conn.setex(f"job:download:{BUSINESS}:{sid}", 120, "queued")
    job = enqueue(conn, sid, f"{twilio.base}{rec_path()}.json")
    assert len(Queue("recordings", connection=conn)) == 1

    result = worker.run_burst("recordings")

    job = Job.fetch(job.id, connection=conn)
    assert job.get_status() == JobStatus.FINISHED, job.exc_info
    value = job.return_value()
    assert set(value) == {"success", "call_sid", "duration_ms"}
    assert value["success"] is True and value["call_sid"] == sid
    assert type(value["duration_ms"]) is int and value["duration_ms"] >= 0
    assert (recordings / f"{sid}.mp3").read_bytes() == audio
    assert sorted(p.name for p in recordings.iterdir()) == [f"{sid}.mp3"]
    assert api_status(conn, recordings, BUSINESS, sid) == ("ready", None)
    slot_keys_clean(conn, BUSINESS, sid)
    assert len(Queue("recordings", connection=conn)) == 0
    assert twilio.paths == [f"{rec_path()}.wav?RequestedChannels=2"]
    assert twilio.requests[0].authorization == basic_auth(ACCOUNT, TOKEN)

    logs = result.stdout + result.stderr
    in_order(logs, [
        f"🔨 JOB PICKED queue='recordings' job_id={job.id} function=process_recording_download_job",
        f"🎯 [RQ_RECORDING] Download job picked: call_sid={sid} business_id={BUSINESS}",
        f"✅ [RQ_RECORDING] Slot acquired: business_id={BUSINESS}",
        f"✅ [RQ_RECORDING] Downloaded: call_sid={sid} duration_ms=",
        f"🔓 [RQ_RECORDING] Slot released: business_id={BUSINESS}",
    ])
    assert TOKEN not in logs


def test_existing_file_is_cached(conn, worker, env, twilio, recordings):
    sid = call_sid(2)
    (recordings / f"{sid}.mp3").write_bytes(b"\x01" * 1500)
    job = enqueue(conn, sid, rec_path())
    worker.run_burst("recordings")
    job = Job.fetch(job.id, connection=conn)
    assert job.get_status() == JobStatus.FINISHED, job.exc_info
    assert job.return_value() == {"success": True, "call_sid": sid, "cached": True}
    assert twilio.requests == []


def test_refused_credentials_fail_without_retry_and_mark_the_call(conn, worker, env, twilio, recordings):
    sid = call_sid(3)
    twilio.router = lambda r: status(401)
    conn.setex(f"job:download:{BUSINESS}:{sid}", 120, "queued")
    job = enqueue(conn, sid, rec_path())
    worker.run_burst("recordings")

    job = Job.fetch(job.id, connection=conn)
    assert job.get_status() == JobStatus.FAILED
    assert job.retries_left == 3, "a permanent failure must not consume or schedule retries"
    assert "401" in last_line(job.exc_info)
    assert len(twilio.requests) == 1
    state, message = api_status(conn, recordings, BUSINESS, sid)
    assert state == "failed" and "401" in message
    assert 3500 < conn.ttl(f"rec_failed:{BUSINESS}:{sid}") <= 3600
    assert not conn.exists(f"job:download:{BUSINESS}:{sid}")
    slot_keys_clean(conn, BUSINESS, sid)
    assert list(recordings.iterdir()) == []


def test_foreign_host_is_refused_without_a_request(conn, worker, env, twilio, recordings):
    sid = call_sid(4)
    with FakeTwilio(lambda r: body(200, b"x" * 5000)) as other:
        job = enqueue(conn, sid, f"{other.base}{rec_path()}")
        worker.run_burst("recordings")
        assert other.requests == []
    job = Job.fetch(job.id, connection=conn)
    assert job.get_status() == JobStatus.FAILED
    assert last_line(job.exc_info).startswith("ValueError:")
    assert twilio.requests == []


def test_path_traversal_call_sid_is_refused(conn, worker, env, twilio, recordings):
    job = enqueue(conn, "../../etc/passwd", rec_path(), job_id="recording_download_traversal")
    worker.run_burst("recordings")
    job = Job.fetch(job.id, connection=conn)
    assert job.get_status() == JobStatus.FAILED
    assert "call_sid" in last_line(job.exc_info)
    assert twilio.requests == []


def test_waits_for_a_slot_reported_queued_then_takes_the_handed_over_slot(conn, worker, env, twilio, recordings):
    busy = [call_sid(100 + i) for i in range(5)]
    for other in busy:
        assert py_acquire(conn, BUSINESS, other) == "acquired"
    twilio.router = lambda r: body(200, b"\x02" * 4000)
    sid = call_sid(5)
    job = enqueue(conn, sid, rec_path())
    handle = worker.start("recordings")

    def queued():
        return api_status(conn, recordings, BUSINESS, sid) == ("queued", 1)

    deadline = time.monotonic() + 15
    while not queued():
        assert time.monotonic() < deadline, f"never reported queued\n{handle.describe()}"
        time.sleep(0.05)
    time.sleep(1.0)
    assert Job.fetch(job.id, connection=conn).get_status() == JobStatus.STARTED, "it must wait, not fail"
    assert twilio.requests == []

    assert py_release(conn, BUSINESS, busy[0]) == sid  # the API's release hands the slot over
    deadline = time.monotonic() + 15
    while Job.fetch(job.id, connection=conn).get_status() != JobStatus.FINISHED:
        assert time.monotonic() < deadline, f"job did not finish\n{handle.describe()}"
        time.sleep(0.05)
    handle.stop()
    assert api_status(conn, recordings, BUSINESS, sid) == ("ready", None)
    slot_keys_clean(conn, BUSINESS, sid)
    assert sorted(m.decode() for m in conn.smembers(f"rec_slots:{BUSINESS}")) == sorted(busy[1:])
    assert Job.fetch(job.id, connection=conn).retries_left == 3


def test_timeout_releases_the_slot_and_leaves_no_partial_file(conn, worker, env, twilio, recordings):
    sid = call_sid(6)
    twilio.router = lambda r: stall(1_000_000, 20_000)
    env["RECORDING_REQUEST_TIMEOUT_SECS"] = "120"
    job = enqueue(conn, sid, rec_path(), job_timeout=2, retry=False)
    worker.run_burst("recordings", timeout=60)
    job = Job.fetch(job.id, connection=conn)
    assert job.get_status() == JobStatus.FAILED
    assert "JobTimeoutException" in last_line(job.exc_info)
    slot_keys_clean(conn, BUSINESS, sid)
    assert list(recordings.iterdir()) == []
    assert api_status(conn, recordings, BUSINESS, sid)[0] == "failed"


def test_missing_business_id_uses_pythons_none_keys(conn, worker, env, twilio, recordings):
    sid = call_sid(7)
    twilio.router = lambda r: body(200, b"\x03" * 2000)
    seen = []
    original = twilio.router

    def router(request):
        seen.append(conn.sismember("rec_slots:None", sid))
        return original(request)

    twilio.router = router
    job = enqueue(conn, sid, rec_path(), business_id=None)
    worker.run_burst("recordings")
    assert Job.fetch(job.id, connection=conn).get_status() == JobStatus.FINISHED
    assert seen == [1], "the download held a slot in rec_slots:None while it ran"
    slot_keys_clean(conn, "None", sid)


def test_many_jobs_of_one_business_never_exceed_five_downloads(conn, worker, env, twilio, recordings):
    twilio.router = lambda r: stream(20_000, chunk=2_000, pause=0.05)
    jobs = [enqueue(conn, call_sid(200 + i), rec_path(200 + i)) for i in range(9)]
    # Sample the semaphore the API shares while the downloads run. (The fake server's own
    # in-flight count can briefly include a request whose last byte the client already has,
    # when the machine is loaded; the slots are what the contract limits.)
    slots_seen, done = [], threading.Event()

    def sample():
        while not done.is_set():
            slots_seen.append(conn.scard(f"rec_slots:{BUSINESS}"))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        worker.run_burst("recordings", "--concurrency", "9", timeout=120)
    finally:
        done.set()
        sampler.join()
    assert 1 <= max(slots_seen) <= 5
    for job in jobs:
        job = Job.fetch(job.id, connection=conn)
        assert job.get_status() == JobStatus.FINISHED, job.exc_info
        assert job.retries_left == 3, "waiting for a slot must not burn retries"
    assert twilio.max_in_flight >= 1
    assert len(list(recordings.iterdir())) == 9
    assert conn.scard(f"rec_slots:{BUSINESS}") == 0
    assert conn.llen(f"rec_queue:{BUSINESS}") == 0
