"""What every agent shares: the problem spec, a network's parameters with its optimiser state, and small helpers."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from o2o.data import Dataset
from o2o.nets import clipped_gaussian_sample, gaussian_log_prob


@struct.dataclass
class Spec:
    """What an agent needs to know about the problem; observation statistics and the best episode return come from the
    training data."""

    observation_dim: int = struct.field(pytree_node=False)
    action_dim: int = struct.field(pytree_node=False)
    observation_mean: jax.Array | np.ndarray
    observation_std: jax.Array | np.ndarray
    episode_return_max: float | None = struct.field(pytree_node=False, default=None)

    @classmethod
    def unnormalized(cls, observation_dim: int, action_dim: int) -> "Spec":
        """A spec with identity observation statistics (no data to take them from)."""
        return cls(observation_dim, action_dim, np.zeros(observation_dim, np.float32), np.ones(observation_dim, np.float32))

    def dummy_inputs(self) -> tuple[jax.Array, jax.Array]:
        """A (1, observation_dim) observation and a (1, action_dim) action, to initialise networks."""
        return jnp.zeros((1, self.observation_dim)), jnp.zeros((1, self.action_dim))

    def shapes_only(self) -> "Spec":
        """The spec without data statistics (those live in the agent's normaliser), as a static field of a state."""
        return self.replace(observation_mean=None, observation_std=None)


@struct.dataclass
class Network:
    """A network's parameters and optimiser state, with the module that applies them and the optimiser that updates
    them (static fields: built once at `init`, the same for every seed and every update)."""

    params: Any
    opt_state: Any
    module: nn.Module = struct.field(pytree_node=False)
    optimizer: optax.GradientTransformation = struct.field(pytree_node=False)

    @classmethod
    def create(cls, module: nn.Module, optimizer: optax.GradientTransformation, key: jax.Array, *inputs) -> "Network":
        params = module.init(key, *inputs)["params"]
        return cls(params=params, opt_state=optimizer.init(params), module=module, optimizer=optimizer)

    def __call__(self, *inputs, params: Any = None) -> Any:
        """The module applied to `inputs` with these parameters (or others of the same shape: targets, a loss's)."""
        return self.module.apply({"params": self.params if params is None else params}, *inputs)

    def apply_gradients(self, grads: Any) -> "Network":
        updates, opt_state = self.optimizer.update(grads, self.opt_state, self.params)
        return self.replace(params=optax.apply_updates(self.params, updates), opt_state=opt_state)

    def trained_part(self) -> tuple[Any, Any]:
        """What training changes (and checkpoints hold): parameters and optimiser state."""
        return self.params, self.opt_state


@struct.dataclass
class ObservationNormalizer:
    """(s - mean) / std with the training data's statistics; identity when the algorithm does not normalize."""

    mean: jax.Array
    std: jax.Array

    @classmethod
    def from_spec(cls, spec: Spec, enabled: bool) -> "ObservationNormalizer":
        if not enabled:
            return cls(jnp.zeros(spec.observation_dim), jnp.ones(spec.observation_dim))
        return cls(jnp.asarray(spec.observation_mean, jnp.float32), jnp.asarray(spec.observation_std, jnp.float32))

    def __call__(self, observations: jax.Array) -> jax.Array:
        return (observations - self.mean) / self.std


def soft_update(target: Any, online: Any, tau: float) -> Any:
    """Polyak averaging: target <- tau * online + (1 - tau) * target. (optax.incremental_update sums the two terms in
    the other order, which XLA compiles to different roundings: results would change in the last bits.)"""
    return jax.tree.map(lambda t, o: (1.0 - tau) * t + tau * o, target, online)


def td_target(batch: dict, discount: float, next_value: jax.Array) -> jax.Array:
    """The one-step bootstrapped target r + gamma (1 - d) V(s')."""
    return batch["rewards"] + discount * (1.0 - batch["dones"]) * next_value


def ensemble_squared_error(q: jax.Array, target: jax.Array) -> jax.Array:
    """sum_i E[(Q_i(s, a) - y)^2] over an ensemble's (num_critics, batch) values."""
    return ((q - target) ** 2).mean(axis=1).sum()


def advantage_weighted_nll(actor: Network, params: Any, observations: jax.Array, actions: jax.Array,
                           weights: jax.Array) -> jax.Array:
    """-E[w log pi(a|s)] for a Gaussian policy: the advantage-weighted regression actor loss (AWAC, IQL)."""
    mean, log_std = actor(observations, params=params)
    return -(weights * gaussian_log_prob(mean, log_std, actions)).mean()


def gaussian_act(state: Any, observations: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
    """A Gaussian policy's mean action, or a sample clipped to [-1, 1] (AWAC, IQL)."""
    mean, log_std = state.actor(state.normalizer(observations))
    return mean if deterministic else clipped_gaussian_sample(mean, log_std, key)


def ensemble_q_values(state: Any, observations: jax.Array, actions: jax.Array) -> jax.Array:
    """(num_critics, batch) values of the agent's critic ensemble at raw states and [-1, 1] actions (its states
    normalized as its update normalizes them): what an adversarial data corruption attacks."""
    return state.critic(state.normalizer(observations), actions)


def value_and_grad(loss_fn: Callable, params: Any, *args) -> tuple[jax.Array, Any, Any]:
    """(loss, auxiliary metrics, gradient) of a loss function returning (loss, aux)."""
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, *args)
    return loss, aux, grads


def transform_rewards(dataset: Dataset, scale: float, bias: float) -> Dataset:
    """The dataset with rewards scale r + bias (an algorithm's reward convention, e.g. AntMaze's r - 1), composed with
    any transform before it in its metadata (`reward_scale`, `reward_bias`), which online transitions then get too."""
    if scale == 1.0 and bias == 0.0:
        return dataset
    before_scale = float(dataset.metadata.get("reward_scale", 1.0))
    before_bias = float(dataset.metadata.get("reward_bias", 0.0))
    # in the rewards' float32: earlier IQL runs reproduce bit for bit
    rewards = (np.asarray(dataset.rewards) * scale + bias).astype(np.float32)
    return dataclasses.replace(dataset, rewards=rewards, metadata={
        **dataset.metadata, "reward_scale": before_scale * scale, "reward_bias": before_bias * scale + bias})
