"""Job functions run by the Python `rq worker` in the benchmarks."""
