"""Security: rqw talks to a Redis that requires a password (ACL user) or TLS, and never shows a
secret: neither the Redis password from the URL nor TWILIO_AUTH_TOKEN appears in its output
(at DEBUG level too, on success and on every error path) nor anywhere in Redis. The
recording download sends credentials only to the configured Twilio origin (never to a
redirect's other origin) and caps what it writes.

What rqw trusts and refuses, and why pickle content cannot execute in it: docs/SECURITY.md.
"""

import shutil
import subprocess
import time

import pytest
import redis
from rq import Queue, Retry
from rq.job import JobStatus

from compat import ECHO, RQW_BIN, last_line, wait_for
from conftest import WorkerRunner
from fake_twilio import FakeTwilio, basic_auth, body, redirect, status, twilio_for
from faults import OwnRedis, free_port

pytestmark = pytest.mark.rqw_only("rqw's own connection, logging and download code")

REDIS_PASSWORD = "acl-pw-7c1e5b"
TOKEN = "twilio-token-9f8e7d"
ACCOUNT = "AC" + "b" * 32
FUNC = "server.jobs.recording_job.process_recording_download_job"


def run_rqw(*args, env=None, timeout=60):
    proc = subprocess.run([str(RQW_BIN), "worker", *args], capture_output=True, text=True, timeout=timeout,
                          env=env)
    print(f"$ rqw worker {' '.join(args)}\n[exit {proc.returncode}]\n{proc.stdout}{proc.stderr}")
    return proc


def redis_contents(conn):
    """Every key and value in the database, as bytes (strings, hashes, lists, sets, zsets, streams)."""
    out = []
    for key in conn.scan_iter(count=1000):
        out.append(key)
        kind = conn.type(key)
        if kind == b"string":
            out.append(conn.get(key) or b"")
        elif kind == b"hash":
            for k, v in conn.hgetall(key).items():
                out += [k, v]
        elif kind == b"list":
            out += conn.lrange(key, 0, -1)
        elif kind == b"set":
            out += list(conn.smembers(key))
        elif kind == b"zset":
            out += [m for m, _ in conn.zrange(key, 0, -1, withscores=True)]
        elif kind == b"stream":
            for _, fields in conn.xrange(key):
                for k, v in fields.items():
                    out += [k, v]
    return b"\n".join(out)


# --------------------------------------------------------------------------- ACL user + password


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("acl-redis")
    acl = workdir / "users.acl"
    acl.write_text(f"user default off\nuser rqw on >{REDIS_PASSWORD} ~* &* +@all\n")
    server = OwnRedis(workdir, extra=["--aclfile", str(acl)])
    server.start(client_kwargs=dict(username="rqw", password=REDIS_PASSWORD))
    yield server
    server.close()


def test_acl_user_and_password(acl_redis, tmp_path):
    conn = acl_redis.client(username="rqw", password=REDIS_PASSWORD)
    conn.flushall()
    url = f"redis://rqw:{REDIS_PASSWORD}@127.0.0.1:{acl_redis.port}/0"
    job = Queue("default", connection=conn).enqueue(ECHO, "over ACL")
    runner = WorkerRunner(url, tmp_path)
    result = runner.run_burst("default", "-l", "DEBUG", "--name", "w-acl")
    assert job.get_status(refresh=True) == JobStatus.FINISHED
    assert job.return_value() == {"args": ["over ACL"], "kwargs": {}}
    output = result.stdout + result.stderr
    assert REDIS_PASSWORD not in output
    assert f"redis://rqw:***@127.0.0.1:{acl_redis.port}/0" in output
    assert REDIS_PASSWORD.encode() not in redis_contents(conn)

    # The default user is off: no password, no service.
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(port=acl_redis.port).ping()
    conn.close()


def test_an_acl_without_client_tracking_still_serves_several_queues(acl_redis, tmp_path):
    """A multi-queue worker blocks on each queue (`BLMOVE`) or else is woken through
    `CLIENT TRACKING`; a user denied both polls instead, and says why."""
    conn = acl_redis.client(username="rqw", password=REDIS_PASSWORD)
    conn.flushall()
    conn.acl_setuser("notrack", enabled=True, reset=True, passwords=[f"+{REDIS_PASSWORD}"], keys=["*"],
                     channels=["*"], commands=["+@all", "-client|tracking", "-blmove"])
    runner = WorkerRunner(f"redis://notrack:{REDIS_PASSWORD}@127.0.0.1:{acl_redis.port}/0", tmp_path)
    handle = runner.start(["high", "low"], "--name", "w-notrack")
    try:
        wait_for(lambda: conn.exists("rq:worker:w-notrack"), message="the worker registered")
        job = Queue("low", connection=conn).enqueue(ECHO, "polled")
        wait_for(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, message="the job finished")
    finally:
        result = handle.stop()
    assert result.returncode == 0
    output = result.stdout + result.stderr
    assert "cannot block on several queues" in output
    assert "cannot watch the queues with client tracking" in output
    assert "noperm" in output.lower()
    assert REDIS_PASSWORD not in output
    conn.acl_deluser("notrack")
    conn.close()


@pytest.mark.parametrize("userinfo", ["rqw:wrong-pw-4d2a", ":wrong-pw-4d2a", "nobody:wrong-pw-4d2a"])
def test_refused_password_exits_at_once_without_showing_it(acl_redis, userinfo):
    started = time.monotonic()
    proc = run_rqw("--url", f"redis://{userinfo}@127.0.0.1:{acl_redis.port}/0", "-l", "DEBUG",
                   "--startup-timeout", "20")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert time.monotonic() - started < 10, "a refused password is not retried like an absent Redis"
    assert "wrong-pw-4d2a" not in output
    assert "auth" in output.lower()


def test_password_never_shown_when_redis_is_unreachable():
    port = free_port()
    proc = run_rqw("--url", f"redis://rqw:{REDIS_PASSWORD}@127.0.0.1:{port}/0", "-l", "DEBUG",
                   "--startup-timeout", "1")
    assert proc.returncode == 1
    assert REDIS_PASSWORD not in proc.stdout + proc.stderr


def test_password_never_shown_for_an_invalid_url():
    proc = run_rqw("--url", f"redis://rqw:{REDIS_PASSWORD}@127.0.0.1:notaport/0")
    assert proc.returncode == 2
    assert REDIS_PASSWORD not in proc.stdout + proc.stderr


# --------------------------------------------------------------------------- TLS


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl not on PATH (needed to make the test certificates)")
    d = tmp_path_factory.mktemp("tls-redis")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=rqw test CA",
             cwd=d)
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                               "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    port = free_port()
    server = OwnRedis(d, port=free_port(), extra=[
        "--tls-port", str(port), "--tls-cert-file", str(d / "server.crt"), "--tls-key-file", str(d / "server.key"),
        "--tls-ca-cert-file", str(d / "ca.crt"), "--tls-auth-clients", "no", "--requirepass", REDIS_PASSWORD])
    server.tls_port = port
    server.ca = d / "ca.crt"
    try:
        server.start(client_kwargs=dict(port=port, ssl=True, ssl_ca_certs=str(d / "ca.crt"),
                                        password=REDIS_PASSWORD))
    except RuntimeError as e:
        if "tls" in str(e).lower():
            pytest.skip(f"this redis-server has no TLS support: {e}")
        raise
    yield server
    server.close()


def _tls_client(server):
    return server.client(port=server.tls_port, ssl=True, ssl_ca_certs=str(server.ca), password=REDIS_PASSWORD)


def test_tls_server_with_an_untrusted_certificate_is_refused_clearly(tls_redis):
    proc = run_rqw("--url", f"rediss://:{REDIS_PASSWORD}@127.0.0.1:{tls_redis.tls_port}/0", "--startup-timeout", "2",
                   "-l", "DEBUG")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert "certificate" in output.lower() or "UnknownIssuer" in output, output
    assert REDIS_PASSWORD not in output


def test_tls_with_a_private_ca_runs_a_job(tls_redis, tmp_path):
    """`--tls-ca-cert` trusts the private CA (the public roots alone refuse it, above)."""
    conn = _tls_client(tls_redis)
    conn.flushall()
    job = Queue("default", connection=conn).enqueue(ECHO, "over TLS")
    runner = WorkerRunner(f"rediss://:{REDIS_PASSWORD}@127.0.0.1:{tls_redis.tls_port}/0", tmp_path)
    result = runner.run_burst("default", "--tls-ca-cert", str(tls_redis.ca), "-l", "DEBUG", "--name", "w-tls")
    assert job.get_status(refresh=True) == JobStatus.FINISHED
    assert REDIS_PASSWORD not in result.stdout + result.stderr
    assert f"rediss://:***@127.0.0.1:{tls_redis.tls_port}/0" in result.stdout + result.stderr
    conn.close()


def test_tls_ca_from_the_environment_and_a_wrong_ca_is_refused(tls_redis, tmp_path):
    """REDIS_TLS_CA_CERT works like the flag; a CA that did not sign the server is refused."""
    conn = _tls_client(tls_redis)
    conn.flushall()
    job = Queue("default", connection=conn).enqueue(ECHO, "env CA")
    runner = WorkerRunner(f"rediss://:{REDIS_PASSWORD}@127.0.0.1:{tls_redis.tls_port}/0", tmp_path)
    runner.env["REDIS_TLS_CA_CERT"] = str(tls_redis.ca)
    runner.run_burst("default")
    assert job.get_status(refresh=True) == JobStatus.FINISHED
    other = tmp_path / "other-ca"
    other.mkdir()
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=another CA", cwd=other)
    proc = run_rqw("--url", f"rediss://:{REDIS_PASSWORD}@127.0.0.1:{tls_redis.tls_port}/0",
                   "--tls-ca-cert", str(other / "ca.crt"), "--startup-timeout", "1")
    assert proc.returncode == 1
    assert "certificate" in (proc.stdout + proc.stderr).lower()
    assert REDIS_PASSWORD not in proc.stdout + proc.stderr
    conn.close()


# --------------------------------------------------------------------------- Twilio credentials


@pytest.fixture
def twilio_env(worker, tmp_path):
    with twilio_for(worker, tmp_path, ACCOUNT, TOKEN) as env:
        yield env


def _enqueue(conn, n, **options):
    sid = f"CA{n:032x}"
    return Queue("recordings", connection=conn).enqueue(
        FUNC, call_sid=sid, recording_url=f"/2010-04-01/Accounts/{ACCOUNT}/Recordings/RE{n:032x}",
        business_id=5, job_timeout=60, failure_ttl=3600, **options)


def test_twilio_token_never_shown_on_any_path(conn, worker, twilio_env):
    twilio, _ = twilio_env
    routes = {1: status(401), 2: status(500), 3: body(200, b"\x01" * 3000), 4: redirect("http://127.0.0.1:9/x")}
    twilio.router = lambda r: next((reply for n, reply in routes.items() if f"RE{n:032x}" in r.path), status(404))
    jobs = {n: _enqueue(conn, n) for n in routes}
    result = worker.run_burst("recordings", "-l", "DEBUG", "--name", "w-token")
    # An unreachable Twilio too (connection refused).
    worker.env["TWILIO_API_BASE"] = f"http://127.0.0.1:{free_port()}"
    refused = _enqueue(conn, 9)
    result2 = worker.run_burst("recordings", "-l", "DEBUG", "--name", "w-token2")

    assert jobs[3].get_status(refresh=True) == JobStatus.FINISHED
    for job in [jobs[1], jobs[2], jobs[4], refused]:
        assert job.get_status(refresh=True) == JobStatus.FAILED
        assert TOKEN not in (job.latest_result().exc_string or "")
    for output in (result.stdout + result.stderr, result2.stdout + result2.stderr):
        assert TOKEN not in output
        assert basic_auth(ACCOUNT, TOKEN).split()[1] not in output  # nor its base64 form
    contents = redis_contents(conn)
    assert TOKEN.encode() not in contents
    assert basic_auth(ACCOUNT, TOKEN).split()[1].encode() not in contents


def test_credentials_never_follow_a_redirect_to_another_origin(conn, worker, twilio_env):
    twilio, recordings = twilio_env
    with FakeTwilio(lambda r: body(200, b"\x02" * 4000)) as storage:
        twilio.router = lambda r: redirect(f"{storage.base}/media/{r.path.rsplit('/', 1)[-1]}")
        job = _enqueue(conn, 20)
        worker.run_burst("recordings")
        assert job.get_status(refresh=True) == JobStatus.FINISHED, job.latest_result().exc_string
        assert twilio.requests[0].authorization == basic_auth(ACCOUNT, TOKEN)
        assert storage.requests and all(r.authorization is None for r in storage.requests)
    assert (recordings / f"CA{20:032x}.mp3").read_bytes() == b"\x02" * 4000


def test_size_cap_refuses_and_leaves_nothing(conn, worker, twilio_env):
    twilio, recordings = twilio_env
    worker.env["RECORDING_MAX_BYTES"] = "10000"
    twilio.router = lambda r: body(200, b"\x03" * 50_000)
    job = _enqueue(conn, 30, retry=Retry(max=3))
    worker.run_burst("recordings")
    job.refresh()
    assert job.get_status() == JobStatus.FAILED
    assert job.retries_left == 3, "over the cap is permanent: no retry"
    assert "10000" in last_line(job.latest_result().exc_string)
    assert list(recordings.iterdir()) == []
