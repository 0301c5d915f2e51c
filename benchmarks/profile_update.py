"""Where one update's time goes: an algorithm's fused chunk traced by the JAX profiler, its wall time split into the
matmul kernels, the other compiled ops (elementwise, reductions, gathers, copies) and the gaps between ops.

Run (nothing else busy on the machine):
    python benchmarks/profile_update.py ALGO [ALGO ...] [--seeds 1] [--seconds 0.5] [--set key=value ...]

Each algorithm as `bench_updates.py --all` times it (its default config, the offline loop's fused chunk on
HalfCheetah-shaped random data). Printed per algorithm: updates/s untraced, the matmul rate measured beside the timed
calls (the roofline), and per update: the wall time (traced), the time inside matmul kernels (XNNPACK's `ynn_fusion`
and XLA's `dot` thunks) with the rate they reach on the update's FLOPs (XLA's count; non-matmul FLOPs are few), the
time inside every other op kind (top ones named), and the gaps where no op runs (dispatch, loop control). XLA:CPU runs
mostly one op at a time, each split over the cores; where two overlap, their union is counted once. Tracing adds a few
microseconds per op: the traced wall time is longer than an untraced update's, most for the smallest updates.
"""

from __future__ import annotations

import argparse
import collections
import glob
import re
import tempfile
import time

from bench_updates import flops_per_update, matmul_flops_per_second, pinned, prepared, synthetic_dataset

import jax  # noqa: E402
import numpy as np  # noqa: E402

MATMUL_OPS = ("ynn_fusion", "dot", "xnn_fusion", "custom-call")
CONTAINERS = ("ThunkExecutor", "SlinkyThreadPool", "while", "PjitFunction", "$")  # events that hold ops, not ops


def op_intervals(trace_dir: str) -> list[tuple[str, int, int]]:
    """(op kind, start ns, end ns) of every compiled op the trace recorded on XLA's threads."""
    path = glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True)[0]
    ops = []
    for plane in jax.profiler.ProfileData.from_file(path).planes:
        for line in plane.lines:
            if not line.name.startswith("tf_XLA"):
                continue
            for event in line.events:
                if not event.name.startswith(CONTAINERS):
                    kind = re.sub(r"[.\d]+$", "", event.name)
                    ops.append((kind, event.start_ns, event.start_ns + event.duration_ns))
    return ops


def covered(intervals: list[tuple[int, int]]) -> int:
    """Nanoseconds covered by the union of `intervals`."""
    total, end = 0, None
    for start, stop in sorted(intervals):
        if end is None or start > end:
            total, end = total + stop - start, stop
        elif stop > end:
            total, end = total + stop - end, stop
    return total


def profile(algo: str, seeds: int, seconds: float, overrides: dict, dataset_path: str) -> dict:
    from o2o.train import offline

    p, data, states, keys = prepared(algo, dataset_path, seeds, overrides)
    flops = flops_per_update(p, states, keys, data) * seeds
    roofline = matmul_flops_per_second(iterations=500, calls=3)
    chunk = int(np.clip(seconds * roofline / flops, 4, 2000))
    train = offline.make_train_chunk(p.agent, p.config, chunk)
    states, _ = train(states, keys, 0, data)
    rates = []
    for call in range(1, 4):
        start = time.perf_counter()
        states, _ = jax.block_until_ready(train(states, keys, call, data))
        rates.append(chunk / (time.perf_counter() - start))
    roofline = max(roofline, matmul_flops_per_second(iterations=500, calls=3))
    with tempfile.TemporaryDirectory() as trace_dir:
        jax.profiler.start_trace(trace_dir)
        start = time.perf_counter()
        states, _ = jax.block_until_ready(train(states, keys, 4, data))
        wall = (time.perf_counter() - start) / chunk
        jax.profiler.stop_trace()
        ops = op_intervals(trace_dir)
    by_kind = collections.Counter()
    for kind, start, stop in ops:
        by_kind[kind] += (stop - start) / chunk / 1e9
    matmul = covered([(a, b) for kind, a, b in ops if kind in MATMUL_OPS]) / chunk / 1e9
    busy = covered([(a, b) for _, a, b in ops]) / chunk / 1e9
    return {"algo": algo, "seeds": seeds, "updates_per_second": max(rates), "roofline": roofline, "flops": flops,
            "wall": wall, "matmul": matmul, "other": busy - matmul, "gaps": max(wall - busy, 0.0),
            "other_kinds": [(k, t) for k, t in by_kind.most_common() if k not in MATMUL_OPS][:4]}


def report(r: dict) -> str:
    ms = 1e3
    share = r["updates_per_second"] * r["flops"] / r["roofline"]
    kinds = ", ".join(f"{k} {t * ms:.2f}" for k, t in r["other_kinds"])
    return (f"{r['algo']} ({r['seeds']} seed{'s' * (r['seeds'] > 1)}): {r['updates_per_second']:.1f} updates/s, "
            f"{r['flops'] / 1e9:.2f} GFLOP, {100 * share:.0f}% of {r['roofline'] / 1e9:.0f} GFLOP/s\n"
            f"  per update (traced): wall {r['wall'] * ms:.2f} ms = matmul kernels {r['matmul'] * ms:.2f} "
            f"({100 * r['matmul'] / r['wall']:.0f}%, at {r['flops'] / r['matmul'] / 1e9:.0f} GFLOP/s = "
            f"{100 * r['flops'] / r['matmul'] / r['roofline']:.0f}% of the roofline) + other ops {r['other'] * ms:.2f} "
            f"({100 * r['other'] / r['wall']:.0f}%) + gaps {r['gaps'] * ms:.2f} ({100 * r['gaps'] / r['wall']:.0f}%)\n"
            f"  largest other op kinds (ms/update): {kinds}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("algos", nargs="+")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=0.5, help="length of a timed call")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    args = parser.parse_args()
    from o2o.data import write_o2o

    print(f"{pinned()}; jax {jax.__version__}")
    overrides = dict(item.split("=", 1) for item in args.set)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(write_o2o(synthetic_dataset(100_000), f"{tmp}/data"))
        for algo in args.algos:
            print(report(profile(algo, args.seeds, args.seconds, overrides, path)), flush=True)


if __name__ == "__main__":
    main()
