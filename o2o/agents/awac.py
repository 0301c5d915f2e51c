"""AWAC — Nair et al., "AWAC: Accelerating Online Reinforcement Learning with Offline Datasets", 2020.

Critic (off-policy TD with the current policy's next action), a' ~ pi(s'):
    L_Q = sum_i E[(Q_i(s, a) - (r + gamma (1 - d) min_j Q_targ_j(s', a')))^2]
Actor (advantage-weighted maximum likelihood), a_pi ~ pi(s), A = min_j Q_j(s, a) - min_j Q_j(s, a_pi):
    L_pi = -E[min(exp(A / lambda), 100) log pi(a | s)]
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import struct

from o2o.agents.common import (Network, ObservationNormalizer, Spec, advantage_weighted_nll, ensemble_q_values,
                               ensemble_squared_error, gaussian_act, soft_update, td_target, value_and_grad)
from o2o.nets import CriticEnsemble, GaussianPolicy, clipped_gaussian_sample

MAX_ADVANTAGE_WEIGHT = 100.0  # CORL's clip of exp(A / lambda)


@dataclasses.dataclass(frozen=True)
class Config:
    actor_lr: float = 3e-4
    """Adam learning rate of the actor (AWAC paper, Appendix C)."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critics (AWAC paper, Appendix C)."""
    hidden_dims: tuple[int, ...] = (256, 256)
    """Hidden layer widths (CORL's AWAC)."""
    discount: float = 0.99
    """Discount factor gamma (AWAC paper, Appendix C)."""
    tau: float = 0.005
    """Polyak rate of the target critics (AWAC paper, Appendix C)."""
    temperature: float = 1.0
    """lambda of the advantage weights exp(A / lambda) (CORL's AWAC, awac_lambda)."""
    normalize_observations: bool = False
    """Standardize states with the dataset's statistics (the paper does not)."""
    batch_size: int = 256
    """Transitions per update (CORL's AWAC)."""


@struct.dataclass
class State:
    actor: Network
    critic: Network
    target_critic_params: dict
    normalizer: ObservationNormalizer
    step: jax.Array
    config: Config = struct.field(pytree_node=False)
    spec: Spec = struct.field(pytree_node=False)


def init(key: jax.Array, spec: Spec, config: Config = Config()) -> State:
    k1, k2 = jax.random.split(key)
    obs, act_ = spec.dummy_inputs()
    critic = Network.create(CriticEnsemble(config.hidden_dims, num_critics=2), optax.adam(config.critic_lr), k2, obs, act_)
    actor = Network.create(GaussianPolicy(config.hidden_dims, spec.action_dim), optax.adam(config.actor_lr), k1, obs)
    return State(actor, critic, critic.params,
                 ObservationNormalizer.from_spec(spec, config.normalize_observations), jnp.zeros((), jnp.int32),
                 config, spec.shapes_only())


def update(state: State, batch: dict, key: jax.Array) -> tuple[State, dict]:
    config = state.config
    next_key, pi_key = jax.random.split(key)
    obs, next_obs, actions = state.normalizer(batch["observations"]), state.normalizer(batch["next_observations"]), batch["actions"]

    next_actions = clipped_gaussian_sample(*state.actor(next_obs), next_key, draw=target_action_noise_draw)
    next_q = state.critic(next_obs, next_actions, params=state.target_critic_params).min(axis=0)
    target = td_target(batch, config.discount, next_q)

    def critic_loss_fn(params):
        q = state.critic(obs, actions, params=params)
        return ensemble_squared_error(q, target), {"q": q.mean()}

    critic_loss, critic_info, grads = value_and_grad(critic_loss_fn, state.critic.params)
    critic = state.critic.apply_gradients(grads)

    pi_actions = clipped_gaussian_sample(*state.actor(obs), pi_key, draw=baseline_action_noise_draw)
    advantage = critic(obs, actions).min(axis=0) - critic(obs, pi_actions).min(axis=0)
    weights = jnp.minimum(jnp.exp(advantage / config.temperature), MAX_ADVANTAGE_WEIGHT)

    def actor_loss_fn(params):
        return advantage_weighted_nll(state.actor, params, obs, actions, weights), {"advantage_weight": weights.mean()}

    actor_loss, actor_info, grads = value_and_grad(actor_loss_fn, state.actor.params)
    actor = state.actor.apply_gradients(grads)
    state = state.replace(actor=actor, critic=critic, step=state.step + 1,
                          target_critic_params=soft_update(state.target_critic_params, critic.params, config.tau))
    return state, {"critic_loss": critic_loss, "actor_loss": actor_loss, **critic_info, **actor_info}


def target_action_noise_draw(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """The N(0, 1) noise of a' ~ pi(s') in the critic's target, named so that tests/test_parity.py can inject the draws
    the reference implementation was given."""
    return jax.random.normal(key, shape)


def baseline_action_noise_draw(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """The N(0, 1) noise of a_pi ~ pi(s) in the advantage's baseline (named as `target_action_noise_draw`)."""
    return jax.random.normal(key, shape)


act = gaussian_act
q_values = ensemble_q_values
