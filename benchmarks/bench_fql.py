"""Flow Q-Learning: what the one-step policy saves at acting time, and the update's speed.

Run (nothing else busy on the machine):  pip install -e ".[bench]" && python benchmarks/bench_fql.py
Sizes: the paper's 4 x 512 networks, 10 flow steps, batch 256, cube-single's observation 28 and action 5. Prints
- actions/s of the one-step policy pi(s, z) against the behaviour flow integrated over `flow_steps` Euler steps (what
  a policy read straight off the flow would cost), for one env and for a 16-env evaluation wave, jitted;
- updates/s of FQL (1 seed, fused), the update's FLOPs as XLA counts them and its share of the measured matmul rate.
"""

from __future__ import annotations

import argparse
import time

from bench_updates import fused_rate_and_flops, pinned  # pins the cores before JAX loads

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

OBS, ACT, DATA = 28, 5, 100_000


def actions_per_second(fn, state, batch: int, calls: int = 300) -> float:
    obs = jnp.asarray(np.random.default_rng(0).normal(size=(batch, OBS)), jnp.float32)
    noise = jax.random.normal(jax.random.PRNGKey(0), (batch, ACT))
    jax.block_until_ready(fn(state, obs, noise))
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(calls):
            out = fn(state, obs, noise)
        jax.block_until_ready(out)
        best = max(best, calls * batch / (time.perf_counter() - t))
    return best


def dataset() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"observations": rng.normal(size=(DATA, OBS)).astype(np.float32),
            "actions": rng.uniform(-1, 1, (DATA, ACT)).astype(np.float32),
            "rewards": -(rng.uniform(size=DATA) < 0.9).astype(np.float32),
            "next_observations": rng.normal(size=(DATA, OBS)).astype(np.float32),
            "dones": np.zeros(DATA, np.float32)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunk", type=int, default=50, help="updates fused per call")
    args = parser.parse_args()
    from o2o.agents import Spec, fql, get_algorithm

    print(f"{pinned()}; jax {jax.__version__}")
    agent, config = get_algorithm("fql", preset={"alpha": 300.0})
    state = fql.init(jax.random.PRNGKey(0), Spec.unnormalized(OBS, ACT), config)
    one_step = jax.jit(fql.one_step_actions)
    flow = jax.jit(fql.flow_actions)
    print(f"| batch | one-step policy actions/s | {config.flow_steps}-step flow actions/s | ratio |")
    print("|---|---|---|---|")
    for batch in (1, 16):
        a, b = actions_per_second(one_step, state, batch), actions_per_second(flow, state, batch)
        print(f"| {batch} | {a:,.0f} | {b:,.0f} | {a / b:.1f} |")
    rate, flops, roofline = fused_rate_and_flops(agent, config, Spec.unnormalized(OBS, ACT), dataset(), args.chunk)
    print(f"\nFQL update, {len(config.hidden_dims)} x {config.hidden_dims[0]}, batch {config.batch_size}: "
          f"{rate:.1f} updates/s, {flops / 1e9:.2f} GFLOP/update (XLA), {rate * flops / roofline:.0%} of the "
          f"matmul rate beside it ({roofline / 1e9:.0f} GFLOP/s)")


if __name__ == "__main__":
    main()
