"""A fake Twilio REST API for the recording tests: a threaded `http.server` on loopback.

Each test configures what it answers with a router, `router(request) -> reply`, where
`request` has `.path` (path and query) and `.authorization` (the header or None), and a reply
is one of:

    status(404)                      empty body with that status
    body(200, b"...")                a body with Content-Length
    redirect("http://.../x")         302 to Location
    stream(n, chunk=65536, pause=0)  n bytes in chunks, an optional pause between chunks
    stall(declared, sent)            declares `declared` bytes, sends `sent`, then hangs
    delay(seconds, reply)            waits, then answers `reply`

It records every request and counts requests in progress (`max_in_flight`), so a test can
check that the worker never downloads more than five recordings of one business at once.

    with FakeTwilio(lambda r: body(200, b"x" * 5000)) as twilio:
        ... TWILIO_API_BASE=twilio.base ...
        assert twilio.requests[0].authorization == basic_auth("AC...", "token")
"""

import base64
import contextlib
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Request:
    path: str
    authorization: object  # str or None


@dataclass
class Reply:
    kind: str
    code: int = 200
    data: bytes = b""
    location: str = ""
    length: int = 0
    chunk: int = 65536
    pause: float = 0.0
    sent: int = 0
    inner: object = None


def status(code):
    return Reply("status", code=code)


def body(code, data):
    return Reply("body", code=code, data=data)


def redirect(location, code=302):
    return Reply("redirect", code=code, location=location)


def stream(length, chunk=65536, pause=0.0):
    return Reply("stream", length=length, chunk=chunk, pause=pause)


def stall(declared, sent):
    return Reply("stall", length=declared, sent=sent)


def delay(seconds, reply):
    return Reply("delay", pause=seconds, inner=reply)


def basic_auth(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def worker_env(twilio, recordings, account, token, request_timeout=5):
    """The environment with which the worker under test downloads from `twilio` into `recordings`."""
    return dict(TWILIO_ACCOUNT_SID=account, TWILIO_AUTH_TOKEN=token, RECORDINGS_DIR=str(recordings),
                TWILIO_API_BASE=twilio.base, RECORDING_REQUEST_TIMEOUT_SECS=str(request_timeout))


@contextlib.contextmanager
def twilio_for(worker, tmp_path, account, token, request_timeout=5):
    """A running FakeTwilio and an empty recordings folder, set in `worker`'s environment."""
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    with FakeTwilio() as twilio:
        worker.env.update(worker_env(twilio, recordings, account, token, request_timeout))
        yield twilio, recordings


class FakeTwilio:
    """The server. Use as a context manager, or call start()/stop()."""

    def __init__(self, router=None):
        self.router = router or (lambda request: status(404))
        self.requests = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = None
        self._thread = None

    # -- lifecycle
    def start(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                fake._serve(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def base(self):
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def paths(self):
        with self._lock:
            return [r.path for r in self.requests]

    # -- serving
    def _serve(self, handler):
        request = Request(handler.path, handler.headers.get("Authorization"))
        with self._lock:
            self.requests.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self._answer(handler, self.router(request))
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with self._lock:
                self.in_flight -= 1

    def _head(self, handler, code, headers):
        handler.send_response(code)
        handler.send_header("Connection", "close")
        for name, value in headers:
            handler.send_header(name, value)
        handler.end_headers()
        handler.close_connection = True

    def _answer(self, handler, reply):
        while reply.kind == "delay":
            self._stop.wait(reply.pause)
            reply = reply.inner
        if reply.kind == "status":
            self._head(handler, reply.code, [("Content-Length", "0")])
        elif reply.kind == "body":
            self._head(handler, reply.code, [("Content-Length", str(len(reply.data)))])
            handler.wfile.write(reply.data)
        elif reply.kind == "redirect":
            self._head(handler, reply.code, [("Location", reply.location), ("Content-Length", "0")])
        elif reply.kind == "stream":
            self._head(handler, 200, [("Content-Length", str(reply.length))])
            left = reply.length
            block = b"\x05" * reply.chunk
            while left > 0 and not self._stop.is_set():
                n = min(left, len(block))
                handler.wfile.write(block[:n])
                handler.wfile.flush()
                left -= n
                if reply.pause and left > 0:  # not after the last byte: the client is done then
                    time.sleep(reply.pause)
        elif reply.kind == "stall":
            self._head(handler, 200, [("Content-Length", str(reply.length))])
            handler.wfile.write(b"\x07" * reply.sent)
            handler.wfile.flush()
            self._stop.wait(3600)
        else:
            raise ValueError(f"unknown reply {reply!r}")
