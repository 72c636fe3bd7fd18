"""(a) No-op throughput: N jobs enqueued with rq, then one `--burst` worker drains them."""

from harness import *  # noqa: F401,F403  (the shared harness: servers, variants, helpers)

KEY = "a"


def measure(bench, variant, n):
    bench.fresh()
    ids = enqueue_noops(bench.redis.conn, "default", n)
    before = bench.redis.snapshot()
    run = Launched(bench, variant, ["default"], burst=True, tag="noop").wait(timeout=max(120, n / 20))
    after = bench.redis.snapshot()
    jobs = verify(bench.redis.conn, ids, ["default"])
    starts = [ts(j.started_at) for j in jobs]
    ends = [ts(j.ended_at) for j in jobs]
    span = max(ends) - min(starts)
    calls, rcpu = RedisServer.delta(before, after)
    data = {"jobs": n, "span": span, "jobs_per_s": n / span, "wall": run["wall"],
            "cmds_per_job": sum(calls.values()) / n, "redis_cpu_us_per_job": rcpu / n * 1e6,
            "worker_cpu_us_per_job": run["cpu"] / n * 1e6, "calls": calls}
    bench.record("a", variant, data)
    log(f"  a {variant.label:28s} {data['jobs_per_s']:9.0f} jobs/s  {data['cmds_per_job']:.1f} cmds/job  "
        f"redis {data['redis_cpu_us_per_job']:.0f} us/job  worker {data['worker_cpu_us_per_job']:.0f} us/job")


def run(bench, args, v, rep):
    """One repetition: every worker variant, rotated."""
    for var in rotated([v["worker"], v["simple"], *v["rqw_noop"]], rep):
        n = args.fork_jobs if var is v["worker"] else args.noop_jobs
        bench.guarded("a", var, lambda var=var, n=n: measure(bench, var, n))


def report(bench, args, v, w):
    """Writes this workload's section of docs/BENCHMARKS.md through `w`."""
    w("## (a) No-op throughput")
    w("")
    w(f"`rqw.testing.noop` jobs enqueued with rq (`enqueue_many`), then one burst worker drains them. "
      f"{args.noop_jobs:,} jobs per run; **the forking `rq Worker` runs {args.fork_jobs:,}** (it forks a "
      f"work horse per job). Throughput = jobs / (last `ended_at` − first `started_at`), which leaves out "
      f"process start and exit. Commands per job: all commands executed by Redis during the run "
      f"(`INFO commandstats` delta, including those run inside Lua scripts), divided by jobs.")
    w("")
    w("| worker | jobs/s | × SimpleWorker | Redis commands/job | redis-server CPU µs/job | worker CPU µs/job |")
    w("| --- | --- | --- | --- | --- | --- |")
    base = stat(bench, "a", v["simple"].label, "jobs_per_s")
    for var in [v["worker"], v["simple"], *v["rqw_noop"]]:
        s = stat(bench, "a", var.label, "jobs_per_s")
        w(f"| {var.label} | {s.fmt(0)} | {ratio(s, base, 1)} | "
          f"{stat(bench, 'a', var.label, 'cmds_per_job').fmt(1)} | "
          f"{stat(bench, 'a', var.label, 'redis_cpu_us_per_job').fmt(0)} | "
          f"{stat(bench, 'a', var.label, 'worker_cpu_us_per_job').fmt(0)} |")
    best = max([x for x in v["rqw_noop"] if not x.binary and not x.env], key=lambda x: stat(bench, "a", x.label, "jobs_per_s").med
               if stat(bench, "a", x.label, "jobs_per_s").ok else -1)
    bs = stat(bench, "a", best.label, "jobs_per_s")
    cmds = stat(bench, "a", best.label, "cmds_per_job")
    w("")
    if bs.ok and base.ok:
        w(f"Goal ≥ 40× SimpleWorker with ≤ 30 commands/job — best rqw ({best.label}): "
          f"{bs.med / base.med:.1f}×, {cmds.med:.1f} commands/job: "
          f"{'met' if bs.med / base.med >= 40 and cmds.med <= 30 else '**not met**'}.")
        w("")
