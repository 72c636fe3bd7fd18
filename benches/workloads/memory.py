"""(d) Memory: idle RSS; peak RSS/PSS during (b); rqw with 64 concurrent 50 MB downloads."""

from harness import *  # noqa: F401,F403  (the shared harness: servers, variants, helpers)

from workloads import recordings

KEY = "d"


def idle_memory(bench, variant):
    bench.fresh()
    conn = bench.redis.conn
    launched = Launched(bench, variant, ["default"], burst=False, tag="idle")
    try:
        deadline = time.monotonic() + 30
        while conn.scard("rq:workers") < 1:
            if time.monotonic() > deadline:
                raise BenchError("worker did not register")
            time.sleep(0.02)
        time.sleep(1.0)
        mem = [proc_mem(pid) for pid in launched.pids()]
        launched.signal(signal.SIGTERM)
        launched.wait(timeout=30)
    except BaseException:
        launched.kill()
        raise
    data = {"rss_mb": sum(m[0] for m in mem) / 1024, "pss_mb": sum(m[1] for m in mem) / 1024}
    bench.record("d_idle", variant, data)
    log(f"  d idle {variant.label:28s} RSS {data['rss_mb']:.1f} MB  PSS {data['pss_mb']:.1f} MB")


def run(bench, args, v, rep):
    """One repetition: idle memory of each worker, then the large downloads."""
    for var in rotated([v["worker"], v["simple"], *v["rqw1s"]], rep):
        bench.guarded("d_idle", var, lambda var=var: idle_memory(bench, var))
    if bench.fake_big is None:
        bench.fake_big = FakeRecordings(bench.workdir, args.big_size, args.rec_latency, "big")
    big_vars = list(v["big"])
    if not args.skip_python_big:
        big_vars.append(v["py4"])
    for var in rotated(big_vars, rep):
        bench.guarded("d_big", var, lambda var=var: recordings.measure(bench, var, args.big_jobs, fake=bench.fake_big,
                                                                      workload="d_big", businesses=args.big_jobs))


def report(bench, args, v, w):
    """Writes this workload's section of docs/BENCHMARKS.md through `w`."""
    w("## (d) Memory")
    w("")
    w("Idle: a worker waiting on an empty queue, 1 s after it registered (RSS and PSS from "
      "`/proc/<pid>/smaps_rollup`).")
    w("")
    w("| worker | idle RSS MB | idle PSS MB |")
    w("| --- | --- | --- |")
    for var in (v["worker"], v["simple"], *v["rqw1s"]):
        w(f"| {var.label} | {stat(bench, 'd_idle', var.label, 'rss_mb').fmt(1)} | "
          f"{stat(bench, 'd_idle', var.label, 'pss_mb').fmt(1)} |")
    w("")
    if "b" in args.only:
        w("During (b): see the peak PSS / peak RSS columns of (b).")
        w("")
    w(f"Large downloads: {args.big_jobs} jobs of {args.big_size / 1e6:.0f} MB bodies, one per business "
      f"(so all {args.big_jobs} download at once), {args.rec_latency * 1000:.0f} ms latency.")
    w("")
    w("| worker | peak RSS (VmHWM) MB | peak PSS MB | jobs/s |")
    w("| --- | --- | --- | --- |")
    for label in [x.label for x in v["big"]] + ([] if args.skip_python_big else [v["py4"].label]):
        w(f"| {label} | {stat(bench, 'd_big', label, 'maxrss_mb').fmt(1)} | "
          f"{stat(bench, 'd_big', label, 'peak_pss_mb').fmt(1)} | "
          f"{stat(bench, 'd_big', label, 'jobs_per_s').fmt(1)} |")
    idle = stat(bench, "d_idle", v["rqw1"].label, "rss_mb")
    big = stat(bench, "d_big", v["big"][0].label, "maxrss_mb")
    if idle.ok and big.ok:
        w("")
        w(f"Goals idle < 8 MB, {args.big_jobs}×{args.big_size / 1e6:.0f} MB < 64 MB — rqw idle "
          f"{idle.med:.1f} MB: {'met' if idle.med < 8 else '**not met**'}; large downloads {big.med:.1f} MB: "
          f"{'met' if big.med < 64 else '**not met**'}.")
    w("")
