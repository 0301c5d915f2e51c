"""The cost of return-weighted sampling: updates/s of o2o's TD3+BC and IQL with uniform batches and with
`--sampler return-weighted` (an alias-table draw of the trajectory, then a uniform step, inside the same jitted scan),
on 1M transitions of Hopper's shape, in the same run.

Run (nothing else busy on the machine):  python benchmarks/bench_sampler.py
Sizes: 256-256 MLPs, batch 256, observation 11, action 3; ~2,000 trajectories of 10 to 1,000 steps (a mixed dataset's
spread), 1,000 updates fused per call, one seed. Uniform and weighted calls alternate, so that a load change on the
machine hits both alike; each rate is the best of `--calls` timed calls after a warm-up (compile) call. Also prints the
one-off cost of building the sampler's table from the dataset.
"""

from __future__ import annotations

import argparse
import time

import bench_updates  # pins the thread counts before JAX loads
import jax
import jax.numpy as jnp
import numpy as np

from o2o.agents import Spec, get_algorithm
from o2o.data import Dataset, samplers
from o2o.train.offline import make_train_chunk

OBS, ACT, BATCH, TRANSITIONS, CHUNK = 11, 3, 256, 1_000_000, 1_000


def hopper_shaped(seed: int = 0) -> Dataset:
    """TRANSITIONS random transitions in trajectories of 10 to 1,000 steps whose return grows with their length."""
    rng = np.random.default_rng(seed)
    lengths = []
    while sum(lengths) < TRANSITIONS:
        lengths.append(int(rng.integers(10, 1001)))
    lengths[-1] -= sum(lengths) - TRANSITIONS
    timeouts = np.zeros(TRANSITIONS, bool)
    timeouts[np.cumsum(lengths) - 1] = True
    return Dataset(rng.normal(size=(TRANSITIONS, OBS)).astype(np.float32),
                   rng.uniform(-1, 1, (TRANSITIONS, ACT)).astype(np.float32),
                   rng.uniform(0, 3, TRANSITIONS).astype(np.float32),
                   rng.normal(size=(TRANSITIONS, OBS)).astype(np.float32), np.zeros(TRANSITIONS, bool), timeouts)


def rates(algo: str, dataset: Dataset, table, calls: int) -> dict[str, float]:
    """Best updates/s of one seed, uniform and weighted, over `calls` alternating timed calls of CHUNK updates."""
    agent, config = get_algorithm(algo, {"batch_size": str(BATCH)})
    spec = Spec.unnormalized(OBS, ACT)
    data = {"observations": jnp.asarray(dataset.observations), "actions": jnp.asarray(dataset.actions),
            "rewards": jnp.asarray(dataset.rewards), "next_observations": jnp.asarray(dataset.next_observations),
            "dones": jnp.zeros(len(dataset), jnp.float32)}
    keys = jax.random.PRNGKey(1)[None]
    states = {}
    train = make_train_chunk(agent, config, CHUNK)
    variants = {"uniform": None, "return-weighted": table}
    for name, trajectories in variants.items():  # warm-up: compile each variant once
        fresh = jax.tree.map(jnp.copy, jax.vmap(lambda k: agent.init(k, spec, config))(jax.random.PRNGKey(0)[None]))
        states[name], metrics = train(fresh, keys, 0, data, trajectories)
        jax.block_until_ready(metrics)
    best = dict.fromkeys(variants, 0.0)
    for call in range(1, calls + 1):
        for name, trajectories in variants.items():
            start = time.perf_counter()
            states[name], metrics = train(states[name], keys, call, data, trajectories)
            jax.block_until_ready(metrics)
            best[name] = max(best[name], CHUNK / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=5, help="timed calls of 1,000 updates per variant")
    parser.add_argument("--algos", default="td3bc,iql")
    args = parser.parse_args()
    print(f"{bench_updates.pinned()}; jax {jax.__version__}, {jax.devices()[0].platform}")
    dataset = hopper_shaped()
    start = time.perf_counter()
    table = jax.device_put(samplers.weighted_trajectories(dataset, "return-weighted", samplers.DEFAULT_TEMPERATURE))
    print(f"dataset: {len(dataset):,} transitions in {dataset.num_episodes:,} trajectories; sampler table built in "
          f"{time.perf_counter() - start:.2f} s\n")
    header = f"{'algo':8} {'uniform upd/s':>14} {'return-weighted upd/s':>22} {'overhead':>9}"
    print(header)
    print("-" * len(header))
    for algo in args.algos.split(","):
        best = rates(algo, dataset, table, args.calls)
        overhead = 100 * (best["uniform"] / best["return-weighted"] - 1)
        print(f"{algo:8} {best['uniform']:14,.0f} {best['return-weighted']:22,.0f} {overhead:8.1f}%")


if __name__ == "__main__":
    main()
