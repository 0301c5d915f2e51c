"""Collection speed: `o2o collect` (many envs, one batched jitted policy call per step) against the raw single-env
step rate of the same env with random actions, measured in the same run. Target: >= 80% of the raw rate.

Run (nothing else busy):  python benchmarks/bench_collect.py [--env Hopper-v5] [--transitions 50000]
"""

from __future__ import annotations

import argparse
import os
import time

THREADS = int(os.environ.get("O2O_BENCH_THREADS", "2"))
os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + f" --xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={THREADS}"


def raw_steps_per_second(env_id: str, steps: int) -> float:
    import gymnasium as gym

    env = gym.make(env_id)
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(steps)]
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def main() -> None:
    from o2o.collect.levels import collect

    parser = argparse.ArgumentParser()
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--transitions", type=int, default=50_000)
    args = parser.parse_args()
    collect(args.env, "random", transitions=1_000)  # compile the policy
    raw = raw_steps_per_second(args.env, args.transitions)
    rows = []
    for num_envs in (1, 8, 16, 32):
        start = time.perf_counter()
        collect(args.env, "random", transitions=args.transitions, num_envs=num_envs)
        rows.append((num_envs, args.transitions / (time.perf_counter() - start)))
    print(f"{args.env}, random level (SAC actor 256-256 at init, sampling), {args.transitions:,} transitions; "
          f"XLA threads {THREADS}")
    print(f"raw single env, random actions: {raw:,.0f} steps/s (reference)")
    print(f"{'envs':>5} {'collect steps/s':>16} {'vs raw':>8}")
    for num_envs, rate in rows:
        print(f"{num_envs:>5} {rate:16,.0f} {rate / raw:7.0%}")


if __name__ == "__main__":
    main()
