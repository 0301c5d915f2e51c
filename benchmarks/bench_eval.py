"""Evaluation memory and time against the cap on live envs (`--eval-envs`): K seeds x E episodes of an OGBench task
(about 165 MB per env) run in waves of at most CAP envs. Each cap runs in a fresh process, whose peak resident memory
is reported; results are identical across caps (checked here too). Reference: all envs at once (cap = K x E).

Run (nothing else busy):  python benchmarks/bench_eval.py [--env cube-single-singletask-task2-v0] [--seeds 2] [--episodes 50]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def one_cap(env_id: str, seeds: int, episodes: int) -> None:
    import numpy as np

    from o2o.train.evaluation import evaluate, make_eval_envs

    def policy(observations, episode_keys, t, last_rewards):  # a fixed policy: the cost measured is the envs'
        return np.tanh(observations[..., :5] - observations[..., 5:10])

    start = time.perf_counter()
    envs = make_eval_envs(env_id, seeds, episodes)
    returns, successes = evaluate(policy, envs, list(range(seeds)), episodes, round_seed=0)
    seconds = time.perf_counter() - start
    envs.close()
    print(json.dumps({"envs": envs.num_envs, "seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "returns": returns.round(6).tolist()}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--env", default="cube-single-singletask-task2-v0")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--caps", default="8,32,100")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        one_cap(args.env, args.seeds, args.episodes)
        return
    rows = []
    for cap in [int(c) for c in args.caps.split(",")]:
        out = subprocess.run([sys.executable, __file__, "--child", "--env", args.env, "--seeds", str(args.seeds),
                              "--episodes", str(args.episodes)], env={**os.environ, "O2O_EVAL_ENVS": str(cap)},
                             capture_output=True, text=True, check=True).stdout
        rows.append((cap, json.loads(out.strip().splitlines()[-1])))
    reference = max(rows, key=lambda row: row[1]["envs"])[1]
    print(f"{args.env}: {args.seeds} seeds x {args.episodes} episodes; reference = {reference['envs']} envs at once")
    print(f"{'cap':>5} {'live envs':>10} {'seconds':>8} {'peak MB':>8} {'vs ref time':>12} {'same results':>13}")
    for cap, row in rows:
        print(f"{cap:>5} {row['envs']:>10} {row['seconds']:8.1f} {row['peak_mb']:8.0f} "
              f"{row['seconds'] / reference['seconds']:11.2f}x {str(row['returns'] == reference['returns']):>13}")


if __name__ == "__main__":
    main()
