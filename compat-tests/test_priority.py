"""Queue priority: a worker on `high low` drains high first."""

from rq import Queue
from rq.job import Job, JobStatus

from compat import SLEEP, utc


def test_high_queue_runs_first(conn, worker):
    high, low = Queue("high", connection=conn), Queue("low", connection=conn)
    lows = [low.enqueue(SLEEP, 0.02) for _ in range(3)]
    highs = [high.enqueue(SLEEP, 0.02) for _ in range(3)]

    worker.run_burst(["high", "low"])

    fetched = {j.id: Job.fetch(j.id, connection=conn) for j in lows + highs}
    assert all(j.get_status() == JobStatus.FINISHED for j in fetched.values())
    last_high_end = max(utc(fetched[j.id].ended_at) for j in highs)
    first_low_start = min(utc(fetched[j.id].started_at) for j in lows)
    assert last_high_end <= first_low_start
    # FIFO inside a queue.
    starts = [utc(fetched[j.id].started_at) for j in lows]
    assert starts == sorted(starts)
