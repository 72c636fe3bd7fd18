"""(g) Scale-out: 1, 2, 4 and 8 replicas on one Redis draining no-op jobs; jobs/s, redis-server
CPU per job (`INFO cpu` delta / jobs), where adding replicas stops helping (the saturation
point), and the fleet ceiling: the jobs/s at which redis-server would fill one core
(1 core / redis CPU per job), for rq's SimpleWorker and for rqw, from the same run.

The rqw binary is `--rqw` (and `--alt-rqw` for a second build beside it), so a merged build
can be measured without editing anything: `benches/bench.py --only g --rqw path/to/rqw`.
"""

from harness import *  # noqa: F401,F403  (the shared harness: servers, variants, helpers)

KEY = "g"


def variants(bench, args):
    """Per replica count: rqw replicas (each `--concurrency --fleet-concurrency`) and as many
    SimpleWorker processes."""
    out = []
    for n in args.fleet_replicas:
        out.append(Variant(f"rqw x{n} -c {args.fleet_concurrency}", "rqw", procs=n,
                           concurrency=args.fleet_concurrency))
        if bench.alt_rqw or bench.alt_env:
            out.append(out[-1].alt(bench))
        out.append(Variant(f"rq SimpleWorker x{n}", "rq-simple", procs=n))
    return out


def queues(args):
    return PROD_QUEUES if args.fleet_queues == 6 else ["default"]


def measure(bench, variant, n):
    bench.fresh()
    qs = queues(args=bench.args)
    ids = enqueue_noops(bench.redis.conn, qs[-1], n)
    before = bench.redis.snapshot()
    run = Launched(bench, variant, qs, burst=True, tag=f"fleet{variant.procs}").wait(timeout=max(180, n / 10))
    after = bench.redis.snapshot()
    jobs = verify(bench.redis.conn, ids, qs)
    span = max(ts(j.ended_at) for j in jobs) - min(ts(j.started_at) for j in jobs)
    calls, rcpu = RedisServer.delta(before, after)
    data = {"jobs": n, "replicas": variant.procs, "span": span, "jobs_per_s": n / span,
            "cmds_per_job": sum(calls.values()) / n, "redis_cpu_us_per_job": rcpu / n * 1e6,
            "redis_busy": rcpu / span, "worker_cpu_us_per_job": run["cpu"] / n * 1e6,
            "ceiling_jobs_per_s": n / rcpu if rcpu > 0 else None, "calls": calls}
    bench.record("g", variant, data)
    log(f"  g {variant.label:28s} {data['jobs_per_s']:8.0f} jobs/s  redis {data['redis_cpu_us_per_job']:.0f} us/job "
        f"(busy {data['redis_busy']:.0%})  {data['cmds_per_job']:.1f} cmds/job")


def run(bench, args, v, rep):
    """One repetition: every replica count of both workers, rotated."""
    for var in rotated(variants(bench, args), rep):
        n = args.fleet_jobs if var.is_rqw else args.fleet_py_jobs
        bench.guarded("g", var, lambda var=var, n=n: measure(bench, var, n))


def saturation(bench, labels):
    """The replica count after which one more step adds less than 10% jobs/s (None: not seen)."""
    prev = None
    for n, label in labels:
        s = stat(bench, "g", label, "jobs_per_s")
        if not s.ok:
            return None
        if prev is not None and s.med < prev[1] * 1.1:
            return prev[0]
        prev = (n, s.med)
    return None


def report(bench, args, v, w):
    """Writes this workload's section of docs/BENCHMARKS.md through `w`."""
    w("## (g) Scale-out: replicas on one Redis")
    w("")
    w(f"{args.fleet_jobs:,} no-op jobs (Python: {args.fleet_py_jobs:,}) enqueued with rq on "
      f"`{queues(args)[-1]}`, then N burst workers on `{','.join(queues(args))}` drain them together "
      f"(rqw: N processes at `--concurrency {args.fleet_concurrency}`; Python: N `SimpleWorker` "
      f"processes). jobs/s = jobs / (last `ended_at` − first `started_at`). redis-server CPU per job = "
      f"`INFO cpu` (used_cpu_sys + used_cpu_user) delta / jobs; *Redis busy* = that CPU / the span "
      f"(1.00 = one core); *fleet ceiling* = 1 core / redis CPU per job, the jobs/s at which Redis "
      f"would fill its core. On this {os.cpu_count()}-CPU machine the workers and redis-server share "
      f"the CPUs, so the saturation seen here is the machine's, not Redis's: the ceiling is the figure "
      f"that carries over to a fleet on other hosts.")
    w("")
    w("| worker | replicas | jobs/s | × 1 replica | Redis cmds/job | redis-server CPU µs/job | Redis busy | "
      "fleet ceiling jobs/s | worker CPU µs/job |")
    w("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    kinds = {}
    for var in variants(bench, args):
        kinds.setdefault(var.label.split(" x")[0], []).append(var)
    for name, vars_ in kinds.items():
        base = stat(bench, "g", vars_[0].label, "jobs_per_s")
        for var in vars_:
            g = lambda k, d=1: stat(bench, "g", var.label, k).fmt(d)
            s = stat(bench, "g", var.label, "jobs_per_s")
            w(f"| {name} | {var.procs} | {s.fmt(0)} | {ratio(s, base, 2)} | {g('cmds_per_job')} | "
              f"{g('redis_cpu_us_per_job', 0)} | {g('redis_busy', 2)} | {g('ceiling_jobs_per_s', 0)} | "
              f"{g('worker_cpu_us_per_job', 0)} |")
    w("")
    for name, vars_ in kinds.items():
        sat = saturation(bench, [(x.procs, x.label) for x in vars_])
        cpu = stat(bench, "g", vars_[-1].label, "redis_cpu_us_per_job")
        sat_text = (f"adding replicas beyond {sat} raised jobs/s by less than 10%" if sat
                    else "jobs/s still grew by 10% or more at every step measured")
        if cpu.ok and cpu.med > 0:
            w(f"- **{name}**: {sat_text}; fleet ceiling ≈ **{1e6 / cpu.med:,.0f} jobs/s** "
              f"(redis-server {cpu.med:.0f} µs per job at {vars_[-1].procs} replicas).")
    w("")
