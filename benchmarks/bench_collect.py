"""Collection speed: `o2o collect` (many envs, one batched jitted policy call per step) against the raw single-env
step rate of the same env with random actions, measured in the same run. Target: >= 80% of the raw rate.

OGBench (`--ogbench cube-single-v0`): `o2o collect ENV --level play` with one worker process per core against the
same oracle loop in a single process (the published generator's way), measured in the same run.

Run (nothing else busy):  python benchmarks/bench_collect.py [--env Hopper-v5] [--transitions 50000]
                          python benchmarks/bench_collect.py --ogbench cube-single-v0 [--episodes 20]
"""

from __future__ import annotations

import argparse
import os
import time

from pinning import describe as pinned  # noqa: E402  (before JAX loads)


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


def ogbench_rates(env_name: str, level: str, episodes: int) -> None:
    from o2o.collect.ogbench import generate

    rows = []
    for workers in (1, os.cpu_count() or 1):
        start = time.perf_counter()
        train, _ = generate(env_name, level, episodes=episodes, seed=0, workers=workers)
        rows.append((workers, len(train["terminals"]) * 1.1 / (time.perf_counter() - start)))
    print(f"{env_name} {level}: {episodes} + {episodes // 10} episodes of 1001 steps; {os.cpu_count()} cores")
    print(f"{'workers':>8} {'steps/s':>9} {'vs 1 process':>13}")
    for workers, rate in rows:
        print(f"{workers:>8} {rate:9,.0f} {rate / rows[0][1]:12.2f}x")


def main() -> None:
    from o2o.collect.levels import collect

    parser = argparse.ArgumentParser()
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--transitions", type=int, default=50_000)
    parser.add_argument("--ogbench", help="an OGBench manipulation env, e.g. cube-single-v0")
    parser.add_argument("--level", default="play")
    parser.add_argument("--episodes", type=int, default=20)
    args = parser.parse_args()
    if args.ogbench:
        ogbench_rates(args.ogbench, args.level, args.episodes)
        return
    collect(args.env, "random", transitions=1_000)  # compile the policy
    raw = raw_steps_per_second(args.env, args.transitions)
    rows = []
    for num_envs in (1, 8, 16, 32):
        start = time.perf_counter()
        collect(args.env, "random", transitions=args.transitions, num_envs=num_envs)
        rows.append((num_envs, args.transitions / (time.perf_counter() - start)))
    print(f"{args.env}, random level (SAC actor 256-256 at init, sampling), {args.transitions:,} transitions; "
          f"{pinned()}")
    print(f"raw single env, random actions: {raw:,.0f} steps/s (reference)")
    print(f"{'envs':>5} {'collect steps/s':>16} {'vs raw':>8}")
    for num_envs, rate in rows:
        print(f"{num_envs:>5} {rate:16,.0f} {rate / raw:7.0%}")


if __name__ == "__main__":
    main()
