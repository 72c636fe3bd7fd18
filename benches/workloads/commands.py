"""(f) Redis commands and client round trips per job (a MONITOR sample; untimed, run once)."""

from harness import *  # noqa: F401,F403  (the shared harness: servers, variants, helpers)

KEY = "f"
ONCE = True  # not repeated: run once after the timed repetitions


def monitor_noop(bench, variant, n):
    bench.fresh()
    bench.redis.conn.config_resetstat()
    enqueue_noops(bench.redis.conn, "default", n)
    mon = Monitor(bench, bench.workdir / f"monitor-noop-{bench.run_index + 1}.txt")
    try:
        Launched(bench, variant, ["default"], burst=True, tag="monitor").wait(timeout=max(120, n / 10))
    finally:
        lines = mon.stop()
    data = monitor_counts(lines, n)
    bench.record("f_noop", variant, data)
    log(f"  f noop {variant.label:28s} client {data['client_cmds']:.1f} + lua {data['lua_cmds']:.1f} cmds/job, "
        f"{data['round_trips']:.2f} round trips/job")


def monitor_recordings(bench, variant, n):
    bench.fresh()
    folder = bench.rec_root / f"mon{bench.run_index + 1}"
    folder.mkdir()
    enqueue_recordings(bench.redis.conn, bench.fake.base, n, bench.args.rec_businesses, 9999)
    mon = Monitor(bench, bench.workdir / f"monitor-rec-{bench.run_index + 1}.txt")
    try:
        Launched(bench, variant, ["recordings"], burst=True, env_extra=bench.rec_env(bench.fake.base, folder),
                 tag="monitor-rec").wait(timeout=max(300, n * 2))
    finally:
        lines = mon.stop()
        shutil.rmtree(folder, ignore_errors=True)
    data = monitor_counts(lines, n)
    bench.record("f_rec", variant, data)
    log(f"  f rec  {variant.label:28s} client {data['client_cmds']:.1f} + lua {data['lua_cmds']:.1f} cmds/job, "
        f"{data['round_trips']:.2f} round trips/job")


def run(bench, args, v, rep):
    """The MONITOR samples (not timed)."""
    log("=== MONITOR samples (not timed)")
    for var in (v["worker"], v["simple"], *v["rqw_noop"]):
        n = args.monitor_jobs if var is not v["worker"] else min(args.monitor_jobs, args.fork_jobs)
        bench.guarded("f_noop", var, lambda var=var, n=n: monitor_noop(bench, var, n))
    for var in (v["py4"], *[x for x in v["rqw_rec"] if x.concurrency == max(args.rec_concurrency)]):
        bench.guarded("f_rec", var, lambda var=var: monitor_recordings(bench, var, args.monitor_rec_jobs))


def report(bench, args, v, w):
    """Writes this workload's section of docs/BENCHMARKS.md through `w`."""
    w("## (f) Redis commands and round trips per job")
    w("")
    w(f"From `MONITOR` samples (separate, untimed runs: {args.monitor_jobs} no-op jobs; "
      f"{args.monitor_rec_jobs} downloads). MONITOR prints every command with its origin: a client "
      f"address for commands sent by a client, `lua` for commands run inside a script. *Client commands* "
      f"are the former (an `EVALSHA` counts once); *round trips* count a `MULTI … EXEC` block, which "
      f"redis-py sends as one pipeline, once; *total* adds the commands run inside scripts and agrees "
      f"with the `INFO commandstats` figures of (a) and (b). redis-server CPU per job is in (a) and "
      f"(b) (`INFO cpu` used_cpu_sys + used_cpu_user delta / jobs).")
    w("")
    w("| workload | worker | total cmds/job | client cmds/job | inside scripts/job | round trips/job | "
      "most frequent client commands (per run) |")
    w("| --- | --- | --- | --- | --- | --- | --- |")
    for wl, name, vars_ in (("f_noop", "no-op", (v["worker"], v["simple"], *v["rqw_noop"])),
                            ("f_rec", "download", (v["py4"], *v["rqw_rec"]))):
        for var in vars_:
            rows = bench.results.get((wl, var.label))
            if not rows:
                continue
            r = rows[0]
            top = ", ".join(f"{k} {c}" for k, c in list(r["client_by_cmd"].items())[:6])
            w(f"| {name} | {var.label} | {r['total_cmds']:.1f} | {r['client_cmds']:.1f} | {r['lua_cmds']:.1f} | "
              f"{r['round_trips']:.2f} | {top} |")
    w("")
