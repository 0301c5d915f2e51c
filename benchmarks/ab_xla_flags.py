"""Updates/s with and without extra XLA flags, timed in alternation so that both sides see the same machine.

Run (nothing else busy on the machine):
    python benchmarks/ab_xla_flags.py --flags="--xla_cpu_experimental_ynn_fusion_type=" [--algos iql,rebrac]
        [--seeds 1] [--rounds 7] [--seconds 0.5]

Two worker processes, one started with $XLA_FLAGS and one with $XLA_FLAGS plus --flags, each compile every
algorithm's fused chunk (as `bench_updates.py --all` runs it) once; then, round after round, each times one call of
the same chunk length, A then B then A... A machine whose speed changes every few seconds (this project's 2-core
machines switch between two matmul rates) moves both sides of a round together, so the median of the per-round
ratios B / A is what the flags change. Results can differ in the last bits: the flags may pick other kernels.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def worker(seeds: int, seconds: float, dataset_dir: str) -> None:
    """Answer the driver on stdin: "prepare ALGO LENGTH" compiles ALGO's chunk of LENGTH updates (0: sized to about
    `seconds` from a timed call of 4 updates) and replies the length; "time ALGO" replies one timed call's updates/s
    per seed."""
    import bench_updates  # pins the cores before JAX loads
    import jax

    from o2o.data import write_o2o
    from o2o.train import offline

    path = str(write_o2o(bench_updates.synthetic_dataset(100_000), f"{dataset_dir}/data-{os.getpid()}"))
    chunks = {}

    def timed(algo: str) -> float:
        train, states, keys, data, length, call = chunks[algo]
        start = time.perf_counter()
        states, _ = jax.block_until_ready(train(states, keys, call, data))
        chunks[algo] = [train, states, keys, data, length, call + 1]
        return length / (time.perf_counter() - start)

    def compiled(algo: str, p, length: int, states, keys, data) -> None:
        train = offline.make_train_chunk(p.agent, p.config, length)
        states, _ = jax.block_until_ready(train(states, keys, 0, data))
        chunks[algo] = [train, states, keys, data, length, 1]

    for line in sys.stdin:
        command, algo, *rest = line.split()
        if command == "prepare":
            p, data, states, keys = bench_updates.prepared(algo, path, seeds)
            length = int(rest[0])
            if not length:
                compiled(algo, p, 4, states, keys, data)
                length = max(4, int(seconds * timed(algo)))
                states = chunks[algo][1]  # the calibration's calls took (donated) the initial states
            compiled(algo, p, length, states, keys, data)
            print(json.dumps({"length": length}), flush=True)
        else:
            print(json.dumps({"rate": timed(algo)}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flags", default="", help="the XLA flags side B adds")
    parser.add_argument("--algos", default="iql,rebrac")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.5, help="length of a timed call")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dataset-dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.seeds, args.seconds, args.dataset_dir)
    from pinning import describe

    print(f"{describe()}; side A: XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; side B adds {args.flags!r}")
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, __file__, "--worker", "--seeds", str(args.seeds), "--seconds", str(args.seconds),
                   "--dataset-dir", tmp]
        sides = []
        for extra in ("", args.flags):
            env = {**os.environ, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} {extra}".strip()}
            sides.append(subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                          cwd=os.path.dirname(os.path.abspath(__file__))))

        def ask(side, message: str) -> dict:
            side.stdin.write(message + "\n")
            side.stdin.flush()
            reply = side.stdout.readline()
            if not reply:  # e.g. XLA refuses an unknown flag and exits
                raise SystemExit(f"error: side {'AB'[sides.index(side)]}'s process exited (its error above)")
            return json.loads(reply)

        lengths = {}
        for algo in args.algos.split(","):
            lengths[algo] = ask(sides[0], f"prepare {algo} 0")["length"]
            ask(sides[1], f"prepare {algo} {lengths[algo]}")
        print("| algorithm | updates per call | A: updates/s | B: updates/s | B / A: median [range] of rounds "
              "| rounds |\n|---|---|---|---|---|---|")
        for algo in lengths:
            a, b = [], []
            for _ in range(args.rounds):
                a.append(ask(sides[0], f"time {algo}")["rate"])
                b.append(ask(sides[1], f"time {algo}")["rate"])
            ratios = np.array(b) / np.array(a)
            print(f"| {algo} | {lengths[algo]} | {np.median(a):.1f} | {np.median(b):.1f} | {np.median(ratios):.2f} "
                  f"[{ratios.min():.2f}, {ratios.max():.2f}] | {args.rounds} |", flush=True)
        for side in sides:
            side.stdin.close()
            side.wait()


if __name__ == "__main__":
    main()
