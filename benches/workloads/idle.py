"""(h) What an idle worker costs Redis: every command an idle worker on the six production
queues makes Redis run per second (`INFO commandstats` delta over a window, the commands run
inside scripts included), rqw beside rq's Worker, and what that makes for a fleet.
"""

from harness import *  # noqa: F401,F403  (the shared harness: servers, variants, helpers)

KEY = "h"
ONCE = True  # a long idle window: run once, after the timed repetitions


def measure(bench, variant, window):
    bench.fresh()
    conn = bench.redis.conn
    launched = Launched(bench, variant, PROD_QUEUES, burst=False, tag="idlecmds")
    try:
        deadline = time.monotonic() + 30
        while conn.scard("rq:workers") < 1:
            if time.monotonic() > deadline:
                raise BenchError("worker did not register")
            time.sleep(0.05)
        time.sleep(5)  # past the start-up maintenance pass
        before = bench.redis.snapshot()
        time.sleep(window)
        after = bench.redis.snapshot()
        launched.signal(signal.SIGTERM)
        launched.wait(timeout=30)
    except BaseException:
        launched.kill()
        raise
    calls, rcpu = RedisServer.delta(before, after)
    total = sum(calls.values())
    data = {"window": window, "cmds": total, "cmds_per_s": total / window, "calls": calls,
            "redis_cpu_ms_per_min": rcpu / window * 60 * 1e3}
    bench.record("h", variant, data)
    log(f"  h {variant.label:28s} {data['cmds_per_s']:.2f} cmds/s idle on six queues  {calls}")


def variants(v):
    return [v["worker"], *v["rqw1s"]]


def run(bench, args, v, rep):
    """Each worker idle once for --idle-window seconds."""
    log("=== idle workers (untimed window)")
    for var in variants(v):
        bench.guarded("h", var, lambda var=var: measure(bench, var, args.idle_window))


def report(bench, args, v, w):
    """Writes this workload's section of docs/BENCHMARKS.md through `w`."""
    w("## (h) An idle worker on six queues")
    w("")
    w(f"A worker (not burst) on `{','.join(PROD_QUEUES)}` with nothing to do; after it registered and "
      f"its start-up maintenance pass, every command Redis ran in {args.idle_window:.0f} s "
      f"(`INFO commandstats` delta; the commands inside scripts count, the harness's own INFO calls do "
      f"not). rqw blocks on each queue (one `BLMOVE` per queue per 30 s; with `--queue-wait tracking` "
      f"it waits on client tracking and polls once per 5 s safety interval, one `EXISTS` over the "
      f"queues), checks `rq:suspended` every 10 s (5 s with tracking), and beats once per `--job-monitoring-interval`; "
      f"rq's Worker sits in `BLPOP` (timeout `worker_ttl − 15` s). Pickup latency on six queues is in (c).")
    w("")
    w("| worker | commands/s | × 50 replicas | commands in the window |")
    w("| --- | --- | --- | --- |")
    for var in variants(v):
        rows = bench.results.get(("h", var.label))
        if not rows:
            continue
        r = rows[0]
        top = ", ".join(f"{k} {c}".replace("|", "\\|") for k, c in sorted(r["calls"].items(), key=lambda kv: -kv[1]))
        w(f"| {var.label} | {r['cmds_per_s']:.2f} | {r['cmds_per_s'] * 50:.0f}/s | {top or '–'} |")
    rows = bench.results.get(("h", v["rqw1"].label))
    if rows:
        w("")
        w(f"Goal ≤ 1 command/s per idle worker on six queues — rqw {rows[0]['cmds_per_s']:.2f}/s: "
          f"{'met' if rows[0]['cmds_per_s'] <= 1 else '**not met**'}.")
    w("")
