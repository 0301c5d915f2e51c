"""Pins a benchmark to O2O_BENCH_THREADS cores (default 2): import it before JAX or PyTorch loads.

XLA:CPU (jax 0.10) has no thread-count flag (TensorFlow's `intra_op_parallelism_threads` in XLA_FLAGS is ignored
without a word); its thread pool is sized by the process's CPU affinity, which this sets. OMP_NUM_THREADS bounds
PyTorch's twins. On a machine with fewer cores the benchmark runs on all of them, and `describe()` says so.
"""

from __future__ import annotations

import os

THREADS = int(os.environ.get("O2O_BENCH_THREADS", "2"))
_available = sorted(os.sched_getaffinity(0))
if len(_available) > THREADS:
    os.sched_setaffinity(0, _available[:THREADS])
CORES = len(os.sched_getaffinity(0))
os.environ.setdefault("OMP_NUM_THREADS", str(CORES))


def describe() -> str:
    return f"pinned to {CORES} of {os.cpu_count()} cores (O2O_BENCH_THREADS={THREADS}; XLA and PyTorch threads follow)"
