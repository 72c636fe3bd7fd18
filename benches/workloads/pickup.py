"""(c) Pickup latency (started_at - enqueued_at) at one job every 20 ms, one queue and six."""

from harness import *  # noqa: F401,F403  (the shared harness: servers, variants, helpers)

KEY = "c"


def measure(bench, variant, queues, n, interval, workload):
    bench.fresh()
    conn = bench.redis.conn
    launched = Launched(bench, variant, queues, burst=False, tag=f"pickup{len(queues)}")
    try:
        deadline = time.monotonic() + 30
        while conn.scard("rq:workers") < 1:
            if time.monotonic() > deadline:
                raise BenchError("worker did not register")
            time.sleep(0.02)
        time.sleep(0.5)
        q = Queue(queues[-1], connection=conn)
        ids = []
        t_next = time.monotonic()
        for _ in range(n):
            t_next += interval
            ids.append(q.enqueue(NOOP).id)
            pause = t_next - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        deadline = time.monotonic() + 60
        while FinishedJobRegistry(queues[-1], connection=conn).get_job_count(cleanup=False) < n:
            if time.monotonic() > deadline:
                raise BenchError("jobs did not all finish within 60 s")
            time.sleep(0.02)
        launched.signal(signal.SIGTERM)
        launched.wait(timeout=30)
    except BaseException:
        launched.kill()
        raise
    jobs = verify(conn, ids, queues)
    lat = [(ts(j.started_at) - ts(j.enqueued_at)) * 1000 for j in jobs]
    data = {"jobs": n, "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "max_ms": max(lat),
            "mean_ms": statistics.mean(lat)}
    bench.record(workload, variant, data)
    log(f"  {workload} {variant.label:28s} p50 {data['p50_ms']:.2f} ms  p99 {data['p99_ms']:.2f} ms  "
        f"max {data['max_ms']:.2f} ms")


def run(bench, args, v, rep):
    """One repetition: one queue, then the six production queues."""
    for queues, wl in ((["default"], "c1"), (PROD_QUEUES, "c6")):
        for var in rotated([v["worker"], v["simple"], *v["rqw1s"]], rep):
            bench.guarded(wl, var, lambda var=var, q=queues, wl=wl: measure(bench, var, q, args.latency_jobs,
                                                                            args.latency_interval, wl))


def report(bench, args, v, w):
    """Writes this workload's section of docs/BENCHMARKS.md through `w`."""
    w("## (c) Pickup latency")
    w("")
    w(f"A worker waits (not burst) on the queues; {args.latency_jobs} no-op jobs are enqueued one every "
      f"{args.latency_interval * 1000:.0f} ms. Latency = `started_at − enqueued_at` from the job hash "
      f"(both written with the machine's clock; `enqueued_at` is taken by rq just before its enqueue "
      f"transaction is sent, so it includes that round trip). Six queues = "
      f"`{','.join(PROD_QUEUES)}` (production's list), jobs go to the last one.")
    w("")
    w("| queues | worker | p50 ms | p99 ms | max ms |")
    w("| --- | --- | --- | --- | --- |")
    for wl, name in (("c1", "1"), ("c6", "6")):
        for var in (v["worker"], v["simple"], *v["rqw1s"]):
            w(f"| {name} | {var.label} | {stat(bench, wl, var.label, 'p50_ms').fmt(2)} | "
              f"{stat(bench, wl, var.label, 'p99_ms').fmt(2)} | {stat(bench, wl, var.label, 'max_ms').fmt(2)} |")
    p99s = [stat(bench, wl, v["rqw1"].label, "p99_ms") for wl in ("c1", "c6")]
    if all(p.ok for p in p99s):
        w("")
        w(f"Goal p99 < 5 ms — rqw: one queue {p99s[0].med:.2f} ms, six queues {p99s[1].med:.2f} ms: "
          f"{'met' if max(p.med for p in p99s) < 5 else '**not met**'}.")
    w("")
