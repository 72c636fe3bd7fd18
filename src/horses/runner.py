"""rqw's horse runner: runs RQ jobs for the rqw process that started it.

Shipped inside the rqw binary and started as `<python> -c <this file>`. It speaks a framed
protocol on the stdin/stdout it was started with (each frame: 4-byte big-endian length, then
one JSON object); the app's own output (print, logging, even C code writing to fd 1) goes to
stderr, which rqw logs line by line. It uses the app's own `rq` to run each job the way RQ's
worker does (`Job.restore` from the hash rqw read, `Job.perform`, the success and failure
callbacks under their timeouts); rqw keeps every piece of Redis bookkeeping.

Messages (protocol 1):
  horse -> rqw  {"type": "hello", "protocol": 1, "rq_version": ..., "python": ..., "pid": ...}
                {"type": "fatal", "error": <traceback text>}          (cannot start; then exit)
  rqw -> horse  {"type": "job", "id": ..., "hash": {field: base64}, "success_callback": bool,
                 "failure_callback": bool, "refetch": bool}
                {"type": "callback", "kind": "stopped" | "timeout", "id": ..., "hash": ...,
                 "exc_message": ...}   (after rqw killed the job's horse)
  horse -> rqw  {"type": "result", "ok": true, "return_value": base64 | null, "func_name": ...}
                {"type": "result", "ok": false, "exc_string": ..., "func_name": ...}
"""

import base64
import json
import os
import struct
import sys
import traceback

PROTOCOL = 1


def _read_exact(stream, n):
    chunks = []
    while n:
        chunk = stream.read(n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_frame(stream):
    head = _read_exact(stream, 4)
    if head is None:
        return None
    (length,) = struct.unpack(">I", head)
    body = _read_exact(stream, length)
    if body is None:
        return None
    return json.loads(body)


def _write_frame(stream, message):
    body = json.dumps(message).encode()
    stream.write(struct.pack(">I", len(body)) + body)
    stream.flush()


def _take_protocol_fds():
    """Keeps the original fds 0/1 for the protocol; fd 0 becomes /dev/null, fd 1 stderr."""
    sys.stdout.flush()
    proto_in = os.fdopen(os.dup(0), "rb", buffering=0)
    proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    sys.stdin = open(os.devnull)
    try:
        sys.stdout.reconfigure(line_buffering=True)
        sys.stderr.reconfigure(line_buffering=True)
    except Exception:
        pass
    return proto_in, proto_out


def _die_with_parent():
    """Linux: the kernel kills this horse when rqw dies (PR_SET_PDEATHSIG = SIGKILL)."""
    parent = os.getppid()
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, 9, 0, 0, 0)
    except Exception:
        pass
    if os.getppid() != parent:
        os._exit(1)


class Horse:
    def __init__(self, proto_out):
        from redis import Redis
        from rq.job import Job
        from rq import serializers
        from rq.timeouts import JobTimeoutException, UnixSignalDeathPenalty

        self.out = proto_out
        self.Job = Job
        self.timeout_exc = JobTimeoutException
        self.death_penalty = UnixSignalDeathPenalty
        url = os.environ.pop("RQW_HORSE_REDIS_URL")
        ca = os.environ.pop("RQW_HORSE_CA_CERT", "")
        sentinel = os.environ.pop("RQW_HORSE_SENTINEL", "")
        if sentinel:
            self.connection = self._through_sentinels(json.loads(sentinel), ca)
        else:
            options = {"ssl_ca_certs": ca} if ca and url.startswith("rediss://") else {}
            self.connection = Redis.from_url(url, **options)
        kind = os.environ.pop("RQW_HORSE_SERIALIZER", "pickle")
        self.serializer = serializers.JSONSerializer if kind == "json" else serializers.DefaultSerializer
        self.job_context = None
        setup = os.environ.pop("RQW_HORSE_SETUP", "")
        if setup:
            self.job_context = self._setup(setup)

    @staticmethod
    def _through_sentinels(s, ca):
        """The master as rqw's --sentinel settings name it: redis-py's Sentinel.master_for,
        whose connections find the master again after a failover, as an RQ worker's do."""
        from redis.sentinel import Sentinel

        def tls(enabled):
            return {"ssl": True, **({"ssl_ca_certs": ca} if ca else {})} if enabled else {}

        def auth(username, password):
            return {k: v for k, v in (("username", username), ("password", password)) if v}

        timeout = {"socket_timeout": s["socket_timeout"]} if s["socket_timeout"] else {}
        sentinel = Sentinel(
            [tuple(address) for address in s["sentinels"]],
            sentinel_kwargs={**auth(s["sentinels_username"], s["sentinels_password"]), **tls(s["sentinels_tls"]),
                             **timeout},
            **timeout,
        )
        return sentinel.master_for(s["master_name"], db=s["db"], **auth(s["username"], s["password"]),
                                   **tls(s["tls"]))

    @staticmethod
    def _setup(spec):
        """`module:callable`, called once; a callable result is a per-job context factory."""
        import importlib

        module_name, _, attr = spec.partition(":")
        if not module_name or not attr:
            raise ValueError(f"--python-setup must be 'module:callable', not {spec!r}")
        target = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
        result = target()
        return result if callable(result) else None

    def _job(self, message):
        if message.get("refetch") or "data" not in message["hash"]:
            # rqw left a field in Redis for its size: read the job as RQ's worker would.
            return self.Job.fetch(message["id"], connection=self.connection, serializer=self.serializer)
        raw = {k.encode(): base64.b64decode(v) for k, v in message["hash"].items()}
        job = self.Job(message["id"], connection=self.connection, serializer=self.serializer)
        job.restore(raw)
        return job

    def _func_name(self, job):
        try:
            return job.func_name
        except BaseException:
            return None

    def _perform(self, job):
        """`Job.perform` without its `PERSIST` of the job key (rq < 3.0), a round trip that
        rqw's start script already made: the job is the current job (`get_current_job()`)
        while `Job._execute` runs it (`async def` included), as in each rq version."""
        import rq.job as rq_job

        current = getattr(rq_job, "_current_job", None)  # rq 3.0: a ContextVar
        stack = getattr(rq_job, "_job_stack", None)  # rq 1.x / 2.x: a LocalStack
        if current is not None and hasattr(current, "set"):
            token = current.set(job)
            try:
                job._result = job._execute()
            finally:
                current.reset(token)
        elif stack is not None:
            stack.push(job)
            try:
                job._result = job._execute()
            finally:
                stack.pop()
        else:
            return job.perform()
        return job._result

    def _callback(self, job, name, timeout, *args):
        callback = getattr(job, name)
        if callback is None:
            return
        with self.death_penalty(timeout, self.timeout_exc, job_id=job.id):
            callback(job, self.connection, *args)

    def run_job(self, message):
        job = None
        try:
            job = self._job(message)
            if self.job_context is not None:
                with self.job_context():
                    value = self._perform(job)
            else:
                value = self._perform(job)
            if message.get("success_callback"):
                self._callback(job, "success_callback", job.success_callback_timeout, value)
        except BaseException:
            exc_info = sys.exc_info()
            if job is not None and message.get("failure_callback"):
                try:
                    self._callback(job, "failure_callback", job.failure_callback_timeout, *exc_info)
                except BaseException:
                    exc_info = sys.exc_info()
            return {
                "type": "result",
                "ok": False,
                "exc_string": "".join(traceback.format_exception(*exc_info)),
                "func_name": self._func_name(job) if job is not None else None,
            }
        return {
            "type": "result",
            "ok": True,
            "return_value": self._serialize(value),
            "func_name": self._func_name(job),
        }

    def run_callback(self, message):
        """A callback run after the job's own horse was killed (stopped, timed out)."""
        job = None
        try:
            job = self._job(message)
            if message["kind"] == "stopped":
                self._callback(job, "stopped_callback", job.stopped_callback_timeout)
            else:
                exc = self.timeout_exc(message.get("exc_message", ""))
                self._callback(job, "failure_callback", job.failure_callback_timeout, type(exc), exc, None)
        except BaseException:
            exc_info = sys.exc_info()
            return {"type": "result", "ok": False, "exc_string": "".join(traceback.format_exception(*exc_info)),
                    "func_name": None}
        return {"type": "result", "ok": True, "return_value": None, "func_name": None}

    def _serialize(self, value):
        if value is None:
            return None
        try:
            data = self.serializer.dumps(value)
        except Exception:
            from rq.defaults import UNSERIALIZABLE_RETURN_VALUE_PAYLOAD

            data = self.serializer.dumps(UNSERIALIZABLE_RETURN_VALUE_PAYLOAD)
        return base64.b64encode(data).decode()


def main():
    _die_with_parent()
    proto_in, proto_out = _take_protocol_fds()
    try:
        import platform

        import rq

        horse = Horse(proto_out)
    except BaseException:
        _write_frame(proto_out, {"type": "fatal", "error": traceback.format_exc()})
        sys.stderr.flush()
        os._exit(1)
    _write_frame(proto_out, {
        "type": "hello",
        "protocol": PROTOCOL,
        "rq_version": rq.__version__,
        "python": platform.python_version(),
        "pid": os.getpid(),
    })
    while True:
        message = _read_frame(proto_in)
        if message is None:
            break
        if message.get("type") == "job":
            reply = horse.run_job(message)
        elif message.get("type") == "callback":
            reply = horse.run_callback(message)
        else:
            reply = {"type": "result", "ok": False, "exc_string": f"unknown message {message.get('type')!r}\n",
                     "func_name": None}
        sys.stdout.flush()
        sys.stderr.flush()
        _write_frame(proto_out, reply)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


main()
