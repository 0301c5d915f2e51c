"""Behaviour cloning, and %BC (BC on the best `top_fraction` of episodes by return).

    L_pi = E[(pi(s) - a)^2]   with a deterministic tanh policy, as the BC baselines of TD3+BC and CORL.
%BC follows Chen et al., "Decision Transformer" (NeurIPS 2021), Section 5: keep the top X% of trajectories by return.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from o2o.agents.common import Network, ObservationNormalizer, Spec, value_and_grad
from o2o.data import Dataset
from o2o.nets import DeterministicPolicy


@dataclasses.dataclass(frozen=True)
class Config:
    actor_lr: float = 3e-4
    """Adam learning rate (TD3+BC paper's BC baseline)."""
    hidden_dims: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the policy (TD3+BC paper's BC baseline)."""
    top_fraction: float = 1.0
    """Fraction of episodes, best returns first, to clone: 1.0 = BC, 0.1 = 10% BC (Decision Transformer, Sec. 5)."""
    normalize_observations: bool = True
    """Standardize states with the dataset's mean and std (as TD3+BC's BC baseline)."""
    batch_size: int = 256
    """Transitions per update."""


@struct.dataclass
class State:
    actor: Network
    normalizer: ObservationNormalizer
    step: jax.Array
    config: Config = struct.field(pytree_node=False)
    spec: Spec = struct.field(pytree_node=False)


def prepare_dataset(dataset: Dataset, config: Config) -> Dataset:
    if not 0.0 < config.top_fraction <= 1.0:
        raise ValueError(f"top_fraction = {config.top_fraction}; expected a fraction in (0, 1]")
    if config.top_fraction == 1.0:
        return dataset
    keep = max(1, int(round(config.top_fraction * dataset.num_episodes)))
    best = np.argsort(-dataset.episode_returns, kind="stable")[:keep]
    return dataset.select_episodes(np.sort(best))


def init(key: jax.Array, spec: Spec, config: Config = Config()) -> State:
    actor = Network.create(DeterministicPolicy(config.hidden_dims, spec.action_dim), optax.adam(config.actor_lr), key,
                           spec.dummy_inputs()[0])
    return State(actor, ObservationNormalizer.from_spec(spec, config.normalize_observations), jnp.zeros((), jnp.int32),
                 config, spec.shapes_only())


def update(state: State, batch: dict, key: jax.Array) -> tuple[State, dict]:
    obs = state.normalizer(batch["observations"])

    def loss_fn(params):
        return ((state.actor(obs, params=params) - batch["actions"]) ** 2).mean(), {}

    loss, _, grads = value_and_grad(loss_fn, state.actor.params)
    actor = state.actor.apply_gradients(grads)
    return state.replace(actor=actor, step=state.step + 1), {"actor_loss": loss}


def act(state: State, observations: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
    return state.actor(state.normalizer(observations))
