"""The benchmark workloads, one module each (run by benches/bench.py, in this order):

- `noop` (a), `recordings` (b), `pickup` (c), `memory` (d), `startup` (e), `commands` (f),
  `fleet` (g), `idle` (h).

Each has `KEY` (its letter for `--only`), `run(bench, args, variants, rep)` (one repetition;
`ONCE = True` means it runs once, after the timed repetitions) and `report(bench, args,
variants, w)` (its section of docs/BENCHMARKS.md, line by line through `w`).
"""
