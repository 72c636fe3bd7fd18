"""(b) Recording downloads through the real rqw handler vs the Python implementation
(benches/pyjobs/server/jobs/recording_job.py): 256 KiB bodies, 100 ms server latency, jobs spread
over 40 businesses; Python = 4 SimpleWorker processes, rqw = 1 process."""

from harness import *  # noqa: F401,F403  (the shared harness: servers, variants, helpers)

KEY = "b"


def measure(bench, variant, n, fake=None, workload="b", businesses=None):
    fake = fake or bench.fake
    businesses = businesses or bench.args.rec_businesses
    bench.fresh()
    fake.reset()
    folder = bench.rec_root / f"run{bench.run_index + 1}"
    folder.mkdir()
    ids, sids = enqueue_recordings(bench.redis.conn, fake.base, n, businesses, bench.run_index + 1)
    before = bench.redis.snapshot()
    fake_cpu0 = proc_cpu(fake.proc.pid)
    launched = Launched(bench, variant, ["recordings"], burst=True, env_extra=bench.rec_env(fake.base, folder),
                        sample_memory=True, tag=f"rec{workload}")
    run = launched.wait(timeout=max(300, n * 2))
    after = bench.redis.snapshot()
    fake_cpu = proc_cpu(fake.proc.pid) - fake_cpu0
    fstats = fake.stats()
    jobs = verify(bench.redis.conn, ids, ["recordings"],
                  expect_return=lambda v: isinstance(v, dict) and v.get("success") is True)
    files = list(folder.iterdir())
    bad_files = [f for f in files if f.stat().st_size != fake.size]
    if len(files) != n or bad_files:
        raise BenchError(f"{len(files)} files for {n} jobs, {len(bad_files)} of the wrong size")
    conn = bench.redis.conn
    leftovers = [k for pattern in ("rec_inflight:*", "rec_queue:*", "rec_queued:*", "rec_handover:*")
                 for k in conn.scan_iter(pattern, count=1000)]
    held = sum(conn.scard(k) for k in conn.scan_iter("rec_slots:*", count=1000))
    if leftovers or held:
        raise BenchError(f"semaphore not clean: {len(leftovers)} keys left, {held} slots held")
    retried = sum(1 for j in jobs if j.retries_left != 3)
    durations = [v.get("duration_ms") for v in (j.return_value() for j in jobs) if isinstance(v, dict)]
    durations = [d for d in durations if isinstance(d, int)]
    starts = [ts(j.started_at) for j in jobs]
    ends = [ts(j.ended_at) for j in jobs]
    span = max(ends) - min(starts)
    calls, rcpu = RedisServer.delta(before, after)
    shutil.rmtree(folder, ignore_errors=True)
    data = {"jobs": n, "span": span, "jobs_per_s": n / span, "wall": run["wall"], "retried_jobs": retried,
            "cmds_per_job": sum(calls.values()) / n, "redis_cpu_us_per_job": rcpu / n * 1e6,
            "worker_cpu_ms_per_job": run["cpu"] / n * 1e3, "peak_pss_mb": run["peak_pss_kib"] / 1024,
            "peak_rss_mb": run["peak_rss_kib"] / 1024, "maxrss_mb": sum(run["maxrss_kib"]) / 1024,
            "fake_requests": fstats["requests"], "fake_max_in_flight": fstats["max_in_flight"],
            "fake_connections": fstats["connections"], "fake_cpu_s": fake_cpu,
            "fake_cpu_busy": fake_cpu / span, "calls": calls,
            "download_ms_p50": pct(durations, 50) if durations else None,
            "download_ms_p95": pct(durations, 95) if durations else None}
    bench.record(workload, variant, data)
    log(f"  {workload} {variant.label:28s} {data['jobs_per_s']:8.1f} jobs/s  peak PSS {data['peak_pss_mb']:.1f} MB "
        f"peak RSS {data['maxrss_mb']:.1f} MB  fake server busy {data['fake_cpu_busy']:.0%} "
        f"in flight <= {fstats['max_in_flight']}  retried {retried}  download p50 {data['download_ms_p50']} ms")


def run(bench, args, v, rep):
    """One repetition: every worker variant, rotated."""
    for var in rotated([v["py4"], *v["rqw_rec"]], rep):
        bench.guarded("b", var, lambda var=var: measure(bench, var, args.rec_jobs))


def report(bench, args, v, w):
    """Writes this workload's section of docs/BENCHMARKS.md through `w`."""
    w("## (b) Recording downloads")
    w("")
    w(f"{args.rec_jobs:,} `{REC_FUNC}` jobs enqueued as the API does (kwargs, `job_timeout='10m'`, "
      f"`Retry(max=3)`, `failure_ttl=3600`, the dedup key), spread round-robin over "
      f"{args.rec_businesses} businesses (at most 5 downloads per business at once, the shared "
      f"semaphore). The fake server answers each request after {args.rec_latency * 1000:.0f} ms with a "
      f"{args.rec_size // 1024} KiB body. Python: {args.py_procs} `SimpleWorker` processes running "
      f"benches/pyjobs/server/jobs/recording_job.py (a faithful port: same Lua semaphore, urllib, file "
      f"written in place); rqw: one process, native handler. Recordings are written to "
      f"{'tmpfs (/dev/shm)' if str(bench.rec_root).startswith('/dev/shm') else bench.rec_root.parent}. "
      f"Memory: PSS summed over the worker processes, sampled every 20 ms (peak of the sum); *peak RSS* = "
      f"sum over the processes of each one's `VmHWM` (kernel high-water mark of its RSS since exec).")
    w("")
    w("| worker | jobs/s | × Python | peak PSS MB | peak RSS MB | worker CPU ms/job | Redis cmds/job | "
      "redis-server CPU µs/job | download ms p50 / p95 | fake server CPU busy | max in flight | jobs retried |")
    w("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    base = stat(bench, "b", v["py4"].label, "jobs_per_s")
    for var in [v["py4"], *v["rqw_rec"]]:
        g = lambda k, d=1: stat(bench, "b", var.label, k).fmt(d)
        s = stat(bench, "b", var.label, "jobs_per_s")
        w(f"| {var.label} | {s.fmt(1)} | {ratio(s, base)} | {g('peak_pss_mb')} | {g('maxrss_mb')} | "
          f"{g('worker_cpu_ms_per_job', 2)} | {g('cmds_per_job')} | {g('redis_cpu_us_per_job', 0)} | "
          f"{g('download_ms_p50', 0)} / {g('download_ms_p95', 0)} | "
          f"{stat(bench, 'b', var.label, 'fake_cpu_busy').fmt(2)} | {g('fake_max_in_flight', 0)} | "
          f"{g('retried_jobs', 0)} |")
    best = max([x for x in v["rqw_rec"] if not x.binary and not x.env], key=lambda x: stat(bench, "b", x.label, "jobs_per_s").med
               if stat(bench, "b", x.label, "jobs_per_s").ok else -1)
    bs = stat(bench, "b", best.label, "jobs_per_s")
    w("")
    if bs.ok and base.ok:
        w(f"Goal ≥ 15× the {args.py_procs}-process Python run — best rqw ({best.label}): "
          f"{bs.med / base.med:.1f}×: {'met' if bs.med / base.med >= 15 else '**not met**'}. "
          f"Upper bound set by the semaphore: {args.rec_businesses} businesses × 5 slots / "
          f"{args.rec_latency * 1000:.0f} ms = {args.rec_businesses * 5 / args.rec_latency:.0f} jobs/s.")
        w("")
    w("\"fake server CPU busy\" is the fake server's CPU seconds divided by the run's duration (1.00 = "
      "one core saturated); \"download ms\" is the `duration_ms` the jobs return (request to file "
      "written, the server's latency included): close to the configured latency and a server well "
      "below one core mean the fake server was not the bottleneck. \"max in flight\" is the most "
      "requests it served at once.")
    w("")
