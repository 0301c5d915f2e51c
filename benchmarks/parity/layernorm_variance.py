"""RLPD's critics under flax's two LayerNorm variance forms: the authors' `SACLearner` (ikostrikov/rlpd, its
rlpd_config.py) trained from the same initial parameters on one fixed batch of Hopper data, once with flax's default
var = E[x^2] - E[x]^2 (`use_fast_variance=True`, what the authors' code runs) and once with E[(x - E[x])^2] (o2o's
LayerNorm), in float32 and, with --float64, with every computation in float64 (parameters and Adam stay float32).

    /work/refs/.venv-iql/bin/python benchmarks/parity/layernorm_variance.py --reference /work/refs/rlpd \
        --dataset hopper-medium.npz [--updates 1000] [--float64]

Prints the mean Q of the updated critics every updates/8 updates for both forms and how far apart the two runs' critic
and actor parameters end (relative norm). benchmarks/results/parity/README.md (RLPD) has the measured numbers.
"""

from __future__ import annotations

import argparse
import functools
import sys
import types
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True, help="a work tree of ikostrikov/rlpd")
    parser.add_argument("--dataset", type=Path, required=True, help="an o2o dataset as .npz (o2o data convert)")
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--float64", action="store_true", help="compute in float64 (jax_enable_x64)")
    args = parser.parse_args()
    import jax
    if args.float64:
        jax.config.update("jax_enable_x64", True)
    import flax.linen
    import gymnasium
    import jax.numpy as jnp
    import tensorflow_probability
    import tensorflow_probability.substrates.jax  # noqa: F401  (its modules reach it as an attribute)

    sys.path.insert(0, str(Path(__file__).parent))
    from learn import _gym_as_gymnasium
    _gym_as_gymnasium()
    sys.path.insert(0, str(args.reference))
    for name in ("d4rl", "d4rl.gym_mujoco", "d4rl.locomotion", "dmcgym", "wandb"):
        sys.modules.setdefault(name, types.ModuleType(name))
    from configs import rlpd_config
    from rlpd.agents import SACLearner

    data = np.load(args.dataset)
    index = np.random.default_rng(0).integers(0, len(data["rewards"]), 256)
    dtype = np.float64 if args.float64 else np.float32
    batch = {"observations": data["observations"][index],
             "actions": np.clip(data["actions"][index], -1 + 1e-5, 1 - 1e-5), "rewards": data["rewards"][index], "masks": 1.0 - data["terminals"][index].astype(np.float32),
             "next_observations": data["next_observations"][index]}
    batch = {k: v.astype(dtype) for k, v in batch.items()}
    dims = data["observations"].shape[1], data["actions"].shape[1]
    observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (dims[0],), np.float32)
    action_space = gymnasium.spaces.Box(-1.0, 1.0, (dims[1],), np.float32)
    settings = dict(rlpd_config.get_config())
    settings.pop("model_cls")
    layer_norm = flax.linen.LayerNorm
    agents = {}
    for form, fast in (("E[x^2] - E[x]^2", True), ("E[(x - E[x])^2]", False)):
        flax.linen.LayerNorm = functools.partial(layer_norm, use_fast_variance=fast)  # read when its modules run
        agent = SACLearner.create(0, observation_space, action_space, **settings)
        q = []
        for _ in range(args.updates):
            agent, info = agent.update(batch, 1)
            q.append(float(info["q"]))
        agents[form] = agent
        print(f"{form}: mean Q every {args.updates // 8} updates", [round(v, 2) for v in q[::args.updates // 8]] + [
            round(q[-1], 2)], flush=True)
    first, second = agents.values()
    for name in ("critic", "actor"):
        a, b = (jax.tree_util.tree_leaves(getattr(agent, name).params) for agent in (first, second))
        difference = np.sqrt(sum(float(jnp.sum((x - y) ** 2)) for x, y in zip(a, b)))
        size = np.sqrt(sum(float(jnp.sum(y ** 2)) for y in b))
        print(f"{name}: the two runs' parameters {difference / size:.2e} apart (relative)")


if __name__ == "__main__":
    main()
