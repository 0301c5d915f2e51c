"""TD3+BC — Fujimoto & Gu, "A Minimalist Approach to Offline Reinforcement Learning", NeurIPS 2021; without the BC
term it is TD3 — Fujimoto et al., "Addressing Function Approximation Error in Actor-Critic Methods", ICML 2018.

Critic (TD3, twin Q with target policy smoothing):
    a' = clip(pi_targ(s') + clip(eps, -c, c), -1, 1),  eps ~ N(0, sigma^2)
    L_Q = sum_i E[(Q_i(s, a) - (r + gamma (1 - d) min_j Q_targ_j(s', a')))^2]
Actor (every `policy_frequency` critic steps), with lambda = alpha / E|Q_1(s, pi(s))| (no gradient through lambda):
    L_pi = -lambda E[Q_1(s, pi(s))] + E[(pi(s) - a)^2]        (TD3: L_pi = -E[Q_1(s, pi(s))])
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax
from flax import struct

from o2o.agents.common import (
    Network,
    ObservationNormalizer,
    Spec,
    ensemble_q_values,
    ensemble_squared_error,
    soft_update,
    td_target,
    value_and_grad,
)
from o2o.nets import MLP, CriticEnsemble, DeterministicPolicy, output_scales


@dataclasses.dataclass(frozen=True)
class Config:
    actor_lr: float = 3e-4
    """Adam learning rate of the actor (paper, Table 3)."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critics (paper, Table 3)."""
    hidden_dims: tuple[int, ...] = (256, 256)
    """Hidden layer widths of actor and critics (paper, Table 3)."""
    discount: float = 0.99
    """Discount factor gamma (paper, Table 3)."""
    tau: float = 0.005
    """Polyak rate of the target networks (paper, Table 3)."""
    policy_noise: float = 0.2
    """Std of the target policy smoothing noise sigma (TD3)."""
    noise_clip: float = 0.5
    """Clip c of the target policy smoothing noise (TD3)."""
    policy_frequency: int = 2
    """Critic updates per actor and target update (TD3)."""
    alpha: float = 2.5
    """Weight of the Q term against behaviour cloning (paper, Section 5)."""
    behavior_cloning: bool = True
    """Keep the BC term (TD3+BC); False gives plain TD3."""
    exploration_noise: float = 0.1
    """Std of the Gaussian noise added to actions when acting online (TD3 paper, Section 6)."""
    normalize_observations: bool = True
    """Standardize states with the dataset's mean and std (paper, Eq. 5)."""
    batch_size: int = 256
    """Transitions per update (paper, Table 3)."""
    critic_layer_norm: bool = False
    """LayerNorm after each hidden critic layer (ReBRAC)."""
    critic_norm_after_activation: bool = False
    """With critic_layer_norm: normalize after each hidden layer's ReLU instead of before it."""
    network_init: str = "pytorch"
    """Layer initialisation (o2o.nets.layer_init): "pytorch", torch.nn.Linear's, as the TD3+BC and TD3 authors' code."""
    edac_init: bool = False
    """EDAC's initialisation (hidden biases 0.1, small uniform output layers; o2o.nets.MLP), not network_init's."""


@struct.dataclass
class State:
    actor: Network
    critic: Network
    target_actor_params: dict
    target_critic_params: dict
    normalizer: ObservationNormalizer
    step: jax.Array
    config: Config = struct.field(pytree_node=False)
    spec: Spec = struct.field(pytree_node=False)


def init(key: jax.Array, spec: Spec, config: Config = Config()) -> State:
    actor_key, critic_key = jax.random.split(key)
    obs, act = spec.dummy_inputs()
    actor_scale, critic_scale = output_scales(config.edac_init)
    actor = Network.create(DeterministicPolicy(config.hidden_dims, spec.action_dim, actor_scale,
                                               functools.partial(MLP, initialisation=config.network_init)),
                           optax.adam(config.actor_lr), actor_key, obs)
    mlp = functools.partial(MLP, norm_after_activation=config.critic_norm_after_activation,
                            initialisation=config.network_init)
    critic = Network.create(CriticEnsemble(config.hidden_dims, 2, config.critic_layer_norm, critic_scale, mlp=mlp),
                            optax.adam(config.critic_lr), critic_key, obs, act)
    return State(actor, critic, actor.params, critic.params, ObservationNormalizer.from_spec(spec, config.normalize_observations),
                 jnp.zeros((), jnp.int32), config, spec.shapes_only())


def update(state: State, batch: dict, key: jax.Array) -> tuple[State, dict]:
    config = state.config
    obs, next_obs = state.normalizer(batch["observations"]), state.normalizer(batch["next_observations"])
    actions = batch["actions"]
    next_q = state.critic(next_obs, smoothed_target_actions(state, next_obs, key),
                          params=state.target_critic_params).min(axis=0)
    critic, critic_loss, critic_info = critic_step(state, obs, actions, td_target(batch, config.discount, next_q))

    def actor_loss_fn(params):
        pi = state.actor(obs, params=params)
        q = critic(obs, pi)[0]
        bc = ((pi - actions) ** 2).mean()
        if not config.behavior_cloning:
            return -q.mean(), {"bc_loss": bc}
        lmbda = jax.lax.stop_gradient(config.alpha / jnp.abs(q).mean())
        return -lmbda * q.mean() + bc, {"bc_loss": bc}

    state, actor_info = delayed_actor_step(state.replace(critic=critic, step=state.step + 1), actor_loss_fn)
    return state, {"critic_loss": critic_loss, **critic_info, **actor_info}


def smoothed_target_actions(state: State, next_obs: jax.Array, key: jax.Array) -> jax.Array:
    """a' = clip(pi_targ(s') + clip(eps, -c, c), -1, 1): TD3's target policy smoothing."""
    config = state.config
    shape = (next_obs.shape[0], state.spec.action_dim)
    noise = jnp.clip(config.policy_noise * target_noise_draw(key, shape), -config.noise_clip, config.noise_clip)
    return jnp.clip(state.actor(next_obs, params=state.target_actor_params) + noise, -1.0, 1.0)


def target_noise_draw(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """eps / sigma ~ N(0, 1): the update's only random draw, named so that tests/test_parity.py can inject the draws
    the reference implementation was given."""
    return jax.random.normal(key, shape)


def critic_step(state: State, obs: jax.Array, actions: jax.Array, target: jax.Array) -> tuple[Network, jax.Array, dict]:
    """One gradient step of sum_i E[(Q_i(s, a) - y)^2]."""
    def critic_loss_fn(params):
        q = state.critic(obs, actions, params=params)  # (2, batch)
        return ensemble_squared_error(q, target), {"q": q.mean()}

    critic_loss, critic_info, grads = value_and_grad(critic_loss_fn, state.critic.params)
    return state.critic.apply_gradients(grads), critic_loss, critic_info


def delayed_actor_step(state: State, actor_loss_fn) -> tuple[State, dict]:
    """Every `policy_frequency`-th update (by `state.step`): an actor step on `actor_loss_fn`, then both targets'
    Polyak steps; otherwise nothing (NaN metrics, skipped by the logs)."""
    config = state.config

    def update_actor(s: State):
        loss, info, grads = value_and_grad(actor_loss_fn, s.actor.params)
        actor = s.actor.apply_gradients(grads)
        s = s.replace(actor=actor, target_actor_params=soft_update(s.target_actor_params, actor.params, config.tau),
                      target_critic_params=soft_update(s.target_critic_params, s.critic.params, config.tau))
        return s, {"actor_loss": loss, **info}

    def skip_actor(s: State):
        _, info = jax.eval_shape(actor_loss_fn, s.actor.params)
        return s, {"actor_loss": jnp.nan, **{k: jnp.full(v.shape, jnp.nan, v.dtype) for k, v in info.items()}}

    return jax.lax.cond(state.step % config.policy_frequency == 0, update_actor, skip_actor, state)


def act(state: State, observations: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
    actions = state.actor(state.normalizer(observations))
    if deterministic:
        return actions
    return jnp.clip(actions + state.config.exploration_noise * jax.random.normal(key, actions.shape), -1.0, 1.0)


q_values = ensemble_q_values
