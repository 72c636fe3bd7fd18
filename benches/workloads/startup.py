"""(e) Start-up: launch -> started_at of the first job."""

from harness import *  # noqa: F401,F403  (the shared harness: servers, variants, helpers)

KEY = "e"


def measure(bench, variant):
    bench.fresh()
    ids = enqueue_noops(bench.redis.conn, "default", 1)
    launched = Launched(bench, variant, ["default"], burst=True, tag="startup")
    launched.wait(timeout=60)
    (job,) = verify(bench.redis.conn, ids, ["default"])
    data = {"ms": (ts(job.started_at) - launched.t_launch) * 1000}
    bench.record("e", variant, data)
    log(f"  e {variant.label:28s} launch -> started_at {data['ms']:.1f} ms")


def run(bench, args, v, rep):
    """One repetition: each worker launched --startup-runs times."""
    for var in rotated([v["worker"], v["simple"], *v["rqw1s"]], rep):
        for _ in range(args.startup_runs):
            bench.guarded("e", var, lambda var=var: measure(bench, var))


def report(bench, args, v, w):
    """Writes this workload's section of docs/BENCHMARKS.md through `w`."""
    w("## (e) Start-up to first job")
    w("")
    w(f"One job waits in the queue; the time from launching the burst worker (just before `fork/exec`) "
      f"to the job's `started_at`. {args.startup_runs} launches per repetition.")
    w("")
    w("| worker | ms |")
    w("| --- | --- |")
    for var in (v["worker"], v["simple"], *v["rqw1s"]):
        w(f"| {var.label} | {stat(bench, 'e', var.label, 'ms').fmt(1)} |")
    s = stat(bench, "e", v["rqw1"].label, "ms")
    if s.ok:
        w("")
        w(f"Goal < 20 ms — rqw {s.med:.1f} ms: {'met' if s.med < 20 else '**not met**'}.")
    w("")
