"""`rqw inspect`: per queue and registry, the function paths waiting (count per path) and
whether rqw runs each natively; read-only, bounded."""

import datetime as dt
import re
import subprocess

import pytest
from rq import Queue
from rq.serializers import JSONSerializer

from compat import ECHO, FAIL, RQW_BIN, now_utc
from duty_helpers import abandon

pytestmark = pytest.mark.rqw_only("rqw inspect is an rqw command")

LINE = re.compile(r"^\s+(\d+)\s+(.+?)\s+\[(.+)\]$")


def inspect(url, *extra):
    proc = subprocess.run([str(RQW_BIN), "inspect", "--url", url, *extra], capture_output=True, text=True,
                          timeout=30)
    print(proc.stdout, proc.stderr)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def sections(text):
    """{queue: {source: (header line, {label: (count, verdict)})}}"""
    out, queue, source = {}, None, None
    for line in text.splitlines():
        if line.startswith("queue "):
            queue = line.split(" ", 1)[1]
            out[queue] = {}
        elif queue and re.match(r"^  \w+: ", line):
            source = line.strip().split(":", 1)[0]
            out[queue][source] = (line.strip(), {})
        elif queue and (m := LINE.match(line)):
            out[queue][source][1][m.group(2)] = (int(m.group(1)), m.group(3))
    return out


def snapshot(conn):
    return {key: (conn.type(key), conn.dump(key), conn.ttl(key) > 0) for key in conn.keys("*")}


def test_inspect_reports_paths_per_registry_without_writing(queue, worker, conn, url):
    failed = queue.enqueue(FAIL, message="x")
    worker.run_burst("default")
    queue.enqueue(ECHO, 1)
    queue.enqueue(ECHO, 2)
    parent = queue.enqueue("app.jobs.other")
    queue.enqueue(ECHO, dt.datetime(2026, 1, 1))  # a datetime argument: undecodable for rqw
    queue.enqueue(ECHO, 3, depends_on=parent)
    queue.enqueue_in(dt.timedelta(hours=1), "app.jobs.later")
    running = queue.enqueue("app.jobs.long")
    abandon(conn, queue, running, seconds_ago=-60)  # a live one: its score is in the future
    conn.rpush(queue.key, "no-such-job")
    assert failed.get_status() == "failed"

    before = snapshot(conn)
    text = inspect(url, "--enable-testing-handlers")
    assert snapshot(conn) == before

    report = sections(text)["default"]
    header, queued = report["queued"]
    assert header == "queued: 5 job(s)"
    assert queued[ECHO] == (2, "native")
    assert queued["app.jobs.other"] == (1, "no native handler")
    assert queued["(no job hash)"] == (1, "job missing")
    count, verdict = queued["(undecodable)"]
    assert count == 1
    assert verdict.startswith("undecodable, never run by rqw: ") and "datetime" in verdict
    assert report["scheduled"][1] == {"app.jobs.later": (1, "no native handler")}
    assert report["deferred"][1] == {ECHO: (1, "native")}
    assert report["failed"][1] == {FAIL: (1, "native")}
    assert report["started"][1] == {"app.jobs.long": (1, "no native handler")}
    assert "summary: 9 job(s) read: 4 native, 3 without a native handler, 1 undecodable, 1 missing" in text
    assert "at most 1000 jobs read per registry" in text

    # Without the testing handlers, echo is not native.
    plain = sections(inspect(url))["default"]
    assert plain["queued"][1][ECHO] == (2, "no native handler")


def test_inspect_caps_each_registry_and_reads_json(conn, url):
    conn.rpush("rq:queue:big", *[f"ghost-{i}" for i in range(1005)])
    conn.sadd("rq:queues", "rq:queue:big")
    Queue("js", connection=conn, serializer=JSONSerializer).enqueue_at(now_utc(), ECHO, 1)

    report = sections(inspect(url, "-S", "json", "--enable-testing-handlers"))
    header, waiting = report["big"]["queued"]
    assert header == "queued: 1005 job(s) (first 1000 read)"
    assert waiting == {"(no job hash)": (1000, "job missing")}
    assert report["js"]["scheduled"][1] == {ECHO: (1, "native")}
    # Read as pickle, a JSON payload is undecodable, and said so.
    pickled = sections(inspect(url, "--enable-testing-handlers"))
    assert list(pickled["js"]["scheduled"][1]) == ["(undecodable)"]
