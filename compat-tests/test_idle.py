"""An idle worker on several queues costs Redis (almost) nothing, and still takes every job.

The count of commands is read from `INFO commandstats` (which also counts the commands run
inside scripts, what Redis actually spends), over a window in which the test itself sends
nothing but the two `INFO`/`CONFIG RESETSTAT` calls it excludes. The bound is on the count,
never on time: a slow machine can only lower it.
"""

import re
import time
from datetime import timedelta

import pytest
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.worker import Worker

from faults import ReplyDropProxy

SIX = ["high", "default", "low", "maintenance", "broadcasts", "recordings"]
WINDOW = 20.0
# rqw: one BLMOVE per queue per 30 s and one suspension check per 10 s wait (with --queue-wait
# tracking: one EXISTS over the queues and one suspension check per 5 s safety poll), a
# heartbeat (a script: EVALSHA + HSET + EXPIREs) per --job-monitoring-interval; 1 per second is
# the goal. Before the safety poll, the same window saw about 70 per second (ten 6-queue pops a
# second).
MAX_PER_SECOND = 1.0


def command_calls(conn):
    stats = conn.info("commandstats")
    ignored = {"cmdstat_info", "cmdstat_config|resetstat", "cmdstat_config", "cmdstat_client|list"}
    return {k: v["calls"] for k, v in stats.items() if k not in ignored}


def idle_count(conn, seconds):
    conn.config_resetstat()
    time.sleep(seconds)
    calls = command_calls(conn)
    return sum(calls.values()), calls


def tracking_clients(conn):
    return [c for c in conn.client_list() if "t" in c.get("flags", "")]


def blocked_count(conn):
    return conn.info("clients")["blocked_clients"]


def registered(conn, n=1):
    return lambda: len(Worker.all(connection=conn)) >= n


@pytest.mark.rqw_only("the bound is rqw's idle budget (an idle rq worker sits in BLPOP: 0)")
@pytest.mark.newest_rq_only("a 20 s count of what an idle rqw sends; no rq code runs in the window")
@pytest.mark.parametrize("queue_wait", ["blocking", "tracking"])
def test_idle_worker_on_six_queues_sends_at_most_one_command_a_second(conn, worker, wait, queue_wait):
    handle = worker.start(SIX, "--job-monitoring-interval", "10", "--queue-wait", queue_wait)
    wait(registered(conn), timeout=30, message="the worker registered")
    if queue_wait == "tracking":
        wait(lambda: tracking_clients(conn), timeout=30, message="a tracking connection open")
    else:
        wait(lambda: blocked_count(conn) == len(SIX), timeout=30, message="one blocked pop per queue")
        assert not tracking_clients(conn)
    # Let the start-up maintenance pass end (it runs once per --maintenance-interval, 600 s).
    wait(lambda: "cleaning registries for queue: recordings" in "".join(handle.output()), timeout=30,
         message="the first maintenance pass")
    time.sleep(2)
    total, calls = idle_count(conn, WINDOW)
    print(f"idle commands over {WINDOW}s on six queues: {total} {calls}")
    assert total <= MAX_PER_SECOND * WINDOW, calls
    # A job after the idle window is taken (its queue's pop, the watch, or its safety poll).
    job = Queue("broadcasts", connection=conn).enqueue("rqw.testing.echo", "after idle")
    wait(lambda: job.get_status(refresh=True) == "finished", timeout=30, message="the job finished")
    assert handle.alive()


@pytest.mark.rqw_only("rqw's client tracking watch")
def test_a_lost_watch_is_said_and_reopened_and_jobs_still_come(conn, worker, wait):
    handle = worker.start(SIX, "--queue-wait", "tracking")
    wait(registered(conn), timeout=30, message="the worker registered")
    [tracker] = wait(lambda: tracking_clients(conn), timeout=30, message="a tracking connection open")
    conn.execute_command("CLIENT", "KILL", "ID", tracker["id"])
    job = Queue("low", connection=conn).enqueue("rqw.testing.echo", 1)
    wait(lambda: job.get_status(refresh=True) == "finished", timeout=30, message="the job finished")
    wait(lambda: "queue watch (client tracking) was lost" in "".join(handle.output()), timeout=30,
         message="the loss logged")
    wait(lambda: [c for c in tracking_clients(conn) if c["id"] != tracker["id"]], timeout=30,
         message="a new tracking connection")
    assert handle.alive()


def test_scheduled_and_requeued_jobs_are_taken_by_an_idle_worker(conn, worker, wait):
    """Jobs that land on a queue other than by `Queue.enqueue` (RQ's scheduler moving a due
    job, `FailedJobRegistry.requeue` as `rq requeue` does) are taken too."""
    handle = worker.start(SIX, "--with-scheduler")
    wait(registered(conn), timeout=30, message="the worker registered")
    q = Queue("recordings", connection=conn)
    failing = q.enqueue("rqw.testing.fail")
    wait(lambda: failing.get_status(refresh=True) == "failed", timeout=30, message="the job failed")
    time.sleep(6)  # past one safety poll of the idle worker
    scheduled = q.enqueue_in(timedelta(seconds=1), "rqw.testing.echo", "scheduled")
    wait(lambda: scheduled.get_status(refresh=True) == "finished", timeout=30, message="the scheduled job ran")
    time.sleep(6)
    FailedJobRegistry(queue=q).requeue(failing.id)
    # requeue set it queued; failed again means it ran again.
    wait(lambda: failing.get_status(refresh=True) == "failed", timeout=30, message="the requeued job ran again")
    wait(lambda: len(re.findall(rf"job_id={failing.id}[^\n]*job failed", "".join(handle.output()))) == 2,
         timeout=30, message="two failed runs of the requeued job in the log")
    assert q.count == 0
    assert handle.alive()


def test_two_jobs_pushed_at_once_to_a_worker_with_one_slot_run_one_after_the_other(conn, worker, wait):
    """Blocked on each of six queues, a `-c 1` worker is handed two ids at once (one
    transaction pushes to two queues): it starts one, puts the other back at the head of its
    queue, and runs it after the first, never both at once; nothing stays in an intermediate
    list."""
    handle = worker.start(SIX, "--concurrency", "1")
    wait(registered(conn), timeout=30, message="the worker registered")
    wait(lambda: blocked_count(conn) == len(SIX), timeout=30, message="one blocked pop per queue")
    low, high = Queue("low", connection=conn), Queue("high", connection=conn)
    slow = Job.create("rqw.testing.sleep", args=(1,), connection=conn, origin="low", status=JobStatus.QUEUED)
    quick = Job.create("rqw.testing.echo", args=("second",), connection=conn, origin="high",
                       status=JobStatus.QUEUED)
    for job in (slow, quick):
        job.save()
    # Both pushes in one transaction (as Queue.enqueue_job pushes each).
    pipe = conn.pipeline(transaction=True)
    pipe.rpush(low.key, slow.id)
    pipe.rpush(high.key, quick.id)
    pipe.execute()
    for job in (slow, quick):
        wait(lambda: job.get_status(refresh=True) == "finished", timeout=30, message="both jobs finished")
    for job in (slow, quick):
        job.refresh()
    first, second = sorted([slow, quick], key=lambda j: j.started_at)
    assert second.started_at >= first.ended_at, "one slot: the second started after the first ended"
    assert [conn.llen(f"rq:queue:{q}:intermediate") for q in SIX] == [0] * len(SIX)
    assert low.count == 0 and high.count == 0
    assert handle.alive()


class SilencingProxy(ReplyDropProxy):
    """A proxy in front of Redis that turns the next tracking connection half-open: once its
    `CLIENT TRACKING` reply has passed, nothing more reaches the client (no pushes, no
    replies), and no disconnection is seen either. Other connections are untouched."""

    def __init__(self, upstream_port):
        self.silence_next = True
        super().__init__(upstream_port)

    def _up(self, client, server, state):
        original = client.recv

        def recv(n):
            data = original(n)
            if b"TRACKING" in data and self.silence_next:
                self.silence_next = False
                state["silence_after_reply"] = True
            return data

        try:
            while True:
                data = recv(65536)
                if not data:
                    break
                server.sendall(data)
        except OSError:
            pass
        for s in (client, server):
            try:
                s.close()
            except OSError:
                pass

    def _down(self, client, server, state):
        try:
            while True:
                data = server.recv(65536)
                if not data:
                    break
                if state.get("silent"):
                    continue
                client.sendall(data)
                if state.get("silence_after_reply"):
                    state["silent"] = True
        except OSError:
            pass


@pytest.mark.rqw_only("rqw's client tracking watch")
@pytest.mark.newest_rq_only("rqw's tracking connection; the rq version only enqueues")
def test_a_half_open_watch_is_found_out_by_the_safety_poll(redis_server, conn, worker, wait):
    """The tracking connection goes silent without closing: the job is still taken (by the
    safety poll), the silent watch is found out (it does not answer a PING), logged and
    replaced by a new tracking connection."""
    proxy = SilencingProxy(redis_server.port)
    try:
        worker.url = proxy.url
        handle = worker.start(SIX, "--queue-wait", "tracking")
        wait(registered(conn), timeout=30, message="the worker registered")
        wait(lambda: tracking_clients(conn), timeout=30, message="a tracking connection open")
        assert not proxy.silence_next, "the tracking connection went through the proxy"
        [silent] = tracking_clients(conn)
        time.sleep(1)
        job = Queue("maintenance", connection=conn).enqueue("rqw.testing.echo", "unannounced")
        wait(lambda: job.get_status(refresh=True) == "finished", timeout=30, message="the job finished")
        wait(lambda: "does not answer" in "".join(handle.output()), timeout=30, message="the silent watch found out")
        wait(lambda: [c for c in tracking_clients(conn) if c["id"] != silent["id"]], timeout=30,
             message="a new tracking connection")
        assert handle.alive()
    finally:
        proxy.close()
