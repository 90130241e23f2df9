"""The benchmarks: runnable as ``python -m bench.all`` and ``python -m bench.results`` from the
repository root; the other modules are what they run (paths, timing, FLOPs, the outfit's split,
the bfloat16 comparison, the report)."""
