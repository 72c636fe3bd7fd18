"""A faithful Python implementation of the API's recording-download job, for the benchmarks.

`process_recording_download_job` is what the Python `rq worker` ran before rqw: it follows
/work/shared/context/RECORDING_CONTRACT.md (and the production code it describes) step by
step, with its known weaknesses kept on purpose, so that benches/bench.py compares rqw's native
handler with what it replaces:

1. the file is already there (over 1000 bytes) -> `{"success": True, "call_sid", "cached": True}`;
2. acquire a per-business slot with Python's Lua script (cleanup + acquire, the same Redis keys
   as the API); no slot -> raise (RQ's retry policy burns a retry);
3. download: `<url>.wav?RequestedChannels=2`, `<url>.wav`, `<url>.mp3`, `<url>`; 404 -> next
   (2 s pause after the first 404), 401/403 -> stop, 5xx -> next, a body of 1000 bytes or less
   does not count; 30 s timeout per request; HTTP basic auth; the whole body in memory, then
   written in place (no temp file, no fsync), as `requests.get(...).content` code does;
4. release the slot in `finally` (handing it to the next waiting call), mark the call failed
   when the job will not be retried.

urllib is used instead of `requests` (not installed in the benchmark venvs); like
`requests.get` without a session it opens one connection per request.
"""

import base64
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import redis

logger = logging.getLogger("rq.worker")

MAX_SLOTS_PER_BUSINESS = 5
INFLIGHT_TTL = 900
QUEUED_TTL = 1200
FAILED_TTL = 3600
MIN_VALID_BYTES = 1000
REQUEST_TIMEOUT = 30
NOT_FOUND_DELAY = 2.0

_CLEANUP = """
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', 'rec_inflight:' .. ARGV[1] .. ':' .. m) == 0 then
    redis.call('SREM', KEYS[1], m)
  end
end
"""
ACQUIRE_LUA = _CLEANUP + """
if redis.call('EXISTS', KEYS[2]) == 1 then return 'inflight' end
if redis.call('SISMEMBER', KEYS[3], ARGV[2]) == 1 then return 'already_queued' end
if redis.call('SCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('SADD', KEYS[1], ARGV[2])
  redis.call('SETEX', KEYS[2], ARGV[4], 'processing')
  return 'acquired'
end
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[5])
redis.call('RPUSH', KEYS[4], ARGV[2])
return 'queued'
"""
RELEASE_LUA = """
redis.call('SREM', KEYS[1], ARGV[2])
redis.call('DEL', KEYS[2])
local nxt = redis.call('LPOP', KEYS[3])
if nxt then
  redis.call('SREM', KEYS[4], nxt)
  redis.call('SADD', KEYS[1], nxt)
  redis.call('SETEX', 'rec_inflight:' .. ARGV[1] .. ':' .. nxt, ARGV[3], 'processing')
  return nxt
end
return false
"""

_redis = None
_scripts = {}


def get_redis():
    """One connection pool per worker process (REDIS_URL), as the app's `get_redis()`."""
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
        _scripts["acquire"] = _redis.register_script(ACQUIRE_LUA)
        _scripts["release"] = _redis.register_script(RELEASE_LUA)
    return _redis


def recordings_dir():
    return Path(os.environ.get("RECORDINGS_DIR", "recordings"))


def acquire_slot(business_id, call_sid):
    get_redis()
    b = str(business_id)
    keys = [f"rec_slots:{b}", f"rec_inflight:{b}:{call_sid}", f"rec_queued:{b}", f"rec_queue:{b}"]
    status = _scripts["acquire"](keys=keys, args=[b, call_sid, MAX_SLOTS_PER_BUSINESS, INFLIGHT_TTL, QUEUED_TTL])
    status = status.decode() if isinstance(status, bytes) else status
    return status == "acquired", status


def release_slot(business_id, call_sid):
    get_redis()
    b = str(business_id)
    keys = [f"rec_slots:{b}", f"rec_inflight:{b}:{call_sid}", f"rec_queue:{b}", f"rec_queued:{b}"]
    nxt = _scripts["release"](keys=keys, args=[b, call_sid, INFLIGHT_TTL])
    return nxt.decode() if isinstance(nxt, bytes) else None


def mark_failed(business_id, call_sid, message):
    r = get_redis()
    b = str(business_id)
    pipe = r.pipeline()
    pipe.setex(f"rec_failed:{b}:{call_sid}", FAILED_TTL, message[:500])
    pipe.delete(f"job:download:{b}:{call_sid}")
    pipe.execute()


def _auth_header():
    sid = os.environ.get("TWILIO_ACCOUNT_SID", "")
    token = os.environ.get("TWILIO_AUTH_TOKEN", "")
    return "Basic " + base64.b64encode(f"{sid}:{token}".encode()).decode()


def _base_url(recording_url):
    base = os.environ.get("TWILIO_API_BASE", "https://api.twilio.com")
    url = urllib.parse.urljoin(base + "/", recording_url)
    if url.endswith(".json"):
        url = url[: -len(".json")]
    return url


def download_recording(recording_url, path):
    """Tries the formats in order; returns the number of bytes written, or raises."""
    base = _base_url(recording_url)
    headers = {"Authorization": _auth_header()}
    errors = []
    paused = False
    for url in (f"{base}.wav?RequestedChannels=2", f"{base}.wav", f"{base}.mp3", base):
        request = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
                content = response.read()
        except urllib.error.HTTPError as e:
            if e.code in (401, 403):
                raise RuntimeError(f"Twilio refused the credentials (HTTP {e.code})")
            if e.code == 404 and not paused:
                paused = True
                time.sleep(NOT_FOUND_DELAY)
            errors.append(f"{url}: HTTP {e.code}")
            continue
        except (urllib.error.URLError, OSError) as e:
            errors.append(f"{url}: {e}")
            continue
        if len(content) <= MIN_VALID_BYTES:
            errors.append(f"{url}: body of {len(content)} bytes")
            continue
        with open(path, "wb") as f:
            f.write(content)
        return len(content)
    raise RuntimeError("recording not downloadable: " + "; ".join(errors))


def process_recording_download_job(call_sid, recording_url, business_id=None, from_number="", to_number="",
                                   recording_sid=None):
    logger.info("🎯 [RQ_RECORDING] Download job picked: call_sid=%s business_id=%s", call_sid, business_id)
    folder = recordings_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{call_sid}.mp3"
    if path.exists() and path.stat().st_size > MIN_VALID_BYTES:
        return {"success": True, "call_sid": call_sid, "cached": True}

    acquired, reason = acquire_slot(business_id, call_sid)
    if not acquired:
        raise RuntimeError(f"No download slot for business {business_id}: {reason}")
    logger.info("✅ [RQ_RECORDING] Slot acquired: business_id=%s", business_id)
    started = time.time()
    try:
        download_recording(recording_url, path)
        duration_ms = int((time.time() - started) * 1000)
        logger.info("✅ [RQ_RECORDING] Downloaded: call_sid=%s duration_ms=%s", call_sid, duration_ms)
        return {"success": True, "call_sid": call_sid, "duration_ms": duration_ms}
    except Exception as e:
        from rq import get_current_job

        job = get_current_job()
        if job is None or not job.retries_left:
            mark_failed(business_id, call_sid, str(e))
        raise
    finally:
        release_slot(business_id, call_sid)
        logger.info("🔓 [RQ_RECORDING] Slot released: business_id=%s", business_id)
