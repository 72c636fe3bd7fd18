"""A fleet of workers on one Redis shares the work that needs doing once: one maintenance pass
per queue and interval (under RQ's `rq:clean_registries:<q>` lock), not one per replica.

Counted from the workers' own "cleaning registries for queue: <q>" lines (one per pass of a
queue); the bound is on the count, never on time (a slow machine only lowers it).
"""

import time

import pytest
from rq import Queue
from rq.worker import Worker

QUEUES = ["high", "default", "low"]
REPLICAS = 4
INTERVAL = 2
WINDOW = 20.0


def passes(handles, queue):
    line = f"cleaning registries for queue: {queue}"
    return sum("".join(h.output()).count(line) for h in handles)


@pytest.mark.rqw_only("rqw keeps the lock after a pass; rq's own 899 s lock gives a Python fleet the same")
@pytest.mark.newest_rq_only("20 s of rqw replicas counting their passes; kill -9 recovery is tested on every version")
def test_replicas_share_one_maintenance_pass_per_queue_and_interval(conn, worker, wait):
    handles = [worker.start(QUEUES, "--name", f"fleet-{i}", "--maintenance-interval", str(INTERVAL))
               for i in range(REPLICAS)]
    wait(lambda: len(Worker.all(connection=conn)) == REPLICAS, timeout=30, message="every replica registered")
    time.sleep(WINDOW)
    for h in handles:
        assert h.stop().returncode == 0
    # One pass per interval for the fleet, plus each replica's first pass (it cleans at start,
    # whoever kept the lock) and two of slack; each replica passing on its own would make
    # about REPLICAS times as many.
    bound = WINDOW / INTERVAL + REPLICAS + 2
    counts = {q: passes(handles, q) for q in QUEUES}
    print(f"maintenance passes per queue over ~{WINDOW}s with {REPLICAS} replicas: {counts}")
    for q, n in counts.items():
        assert 1 <= n <= bound, (q, n, bound)
    # Stopped workers leave no lock behind (a restarted fleet cleans at once).
    assert conn.keys("rq:clean_registries:*") == []
    # The maintenance they share still happens: a dead worker's key is pruned.
    conn.sadd("rq:workers", "rq:worker:ghost")
    conn.sadd("rq:workers:default", "rq:worker:ghost")
    worker.run_burst(QUEUES)
    assert not conn.sismember("rq:workers:default", "rq:worker:ghost")
    assert Queue("default", connection=conn).count == 0
