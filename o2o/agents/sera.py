"""SERA — Zhang et al., "SERA: Sample Efficient Reward Augmentation in Offline-to-Online Reinforcement Learning"
(arXiv 2310.19805; its v4: "Improving Offline-to-Online RL with Q Conditioned State Entropy Exploration"): during online
fine-tuning every sampled transition's reward gains a bonus for a state that is rare among the batch's states of
similar value, a k-nearest-neighbour estimate of the state entropy conditioned on the critic's Q (the pre-trained
critic, as it is being fine-tuned):

    r' = r + scale tanh(r_int),   r_int_i = psi(n_q(i) + 1) / d + log(2 eps_i + 1e-5)

eps_i: the distance from point i to its k-th nearest point of the batch (itself counted, at 0) in the max-norm over
(s / d, q): max(||s_i - s_j|| / d, |q_i - q_j|); n_q(i): the batch's points with |q_i - q_j| < eps_i (itself
included); d: the state dimension; q: the min over the agent's critics of Q(s, a) at the batch's states and actions,
standardized across the batch. The base algorithm's losses are unchanged; it reads r' where it reads r.

SERA has no published code. The estimator and its details (self counted, the strict <, 1e-5, states divided by d, Q
standardized across the batch as a LayerNorm with unit weight) are those of VCSE's code (Kim et al., NeurIPS 2023,
kingdy2002/VCSE @ 74a3e6f, VCSE_SAC/vcse.py `VCSE.__call__` and agent/sac.py `update`), whose V(s) SERA replaces by
Q(s, a); the fixture `sera` holds the estimator to VCSE's to float32 precision. Inferred, not read in SERA's text:
the tanh applied to r_int before the scale, the batch as the kNN's sample (VCSE's choice), the critic being fine-tuned
(its parameters before this update) as the Q.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Config:
    neighbours: int = 10  # k of the kNN estimate, the point itself counted (SERA's ablation: 10 Hopper, 20 Walker2d)
    scale: float = 1.0  # lambda in r + lambda tanh(r_int) (SERA: 1 is generally sufficient)


def intrinsic_reward(states: jax.Array, values: jax.Array, neighbours: int) -> jax.Array:
    """(batch,) r_int of (batch, d) states and (batch,) values (both as given: no scaling here), VCSE's estimator."""
    state_distance = jnp.sqrt(jnp.sum(jnp.square(states[:, None, :] - states[None, :, :]), axis=-1))
    value_distance = jnp.abs(values[:, None] - values[None, :])
    eps = -jax.lax.top_k(-jnp.maximum(state_distance, value_distance), neighbours)[0][:, -1]
    same_value = jnp.sum(value_distance < eps[:, None], axis=1)
    return jax.scipy.special.digamma(same_value + 1.0) / states.shape[-1] + jnp.log(2.0 * eps + 1e-5)


def standardized(values: jax.Array) -> jax.Array:
    """(v - mean) / sqrt(var + 1e-5) across the batch: VCSE's LayerNorm over the batch's values."""
    return (values - values.mean()) / jnp.sqrt(values.var() + 1e-5)


def augment(batch: dict, q_values: jax.Array, config: Config) -> tuple[dict, dict]:
    """The batch with SERA's bonus in its rewards, given its (num_critics, batch) Q values; and the bonus's metrics."""
    states = batch["observations"]
    q = jax.lax.stop_gradient(q_values.min(axis=0))
    r_int = intrinsic_reward(states / states.shape[-1], standardized(q), config.neighbours)
    bonus = config.scale * jnp.tanh(r_int)
    return {**batch, "rewards": batch["rewards"] + bonus}, {"sera_bonus": bonus.mean(), "sera_intrinsic": r_int.mean()}
