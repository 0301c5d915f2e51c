"""IQL — Kostrikov, Nair & Levine, "Offline Reinforcement Learning with Implicit Q-Learning", ICLR 2022.

Value (expectile regression towards the target critics, never querying out-of-dataset actions):
    L_V = E[|tau - 1(u < 0)| u^2],  u = min_j Q_targ_j(s, a) - V(s)
Critics:
    L_Q = sum_i E[(r + gamma (1 - d) V(s') - Q_i(s, a))^2]
Actor (advantage-weighted regression):
    L_pi = -E[min(exp(beta (min_j Q_targ_j(s, a) - V(s))), 100) log pi(a | s)]
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
    advantage_weighted_nll,
    ensemble_q_values,
    ensemble_squared_error,
    gaussian_act,
    soft_update,
    td_target,
    transform_rewards,
    value_and_grad,
)
from o2o.data import Dataset
from o2o.nets import MLP, CriticEnsemble, GaussianPolicy, ValueFunction

MAX_ADVANTAGE_WEIGHT = 100.0  # paper's clip of exp(beta * A)


@dataclasses.dataclass(frozen=True)
class Config:
    actor_lr: float = 3e-4
    """Adam learning rate of the actor, decayed by a cosine schedule (paper, Appendix B)."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critics (paper, Appendix B)."""
    value_lr: float = 3e-4
    """Adam learning rate of the value function (paper, Appendix B)."""
    actor_decay_steps: int = 1_000_000
    """Length of the actor's cosine learning-rate decay, the paper's training length (paper, Appendix B); 0: constant."""
    hidden_dims: tuple[int, ...] = (256, 256)
    """Hidden layer widths of all networks (paper, Appendix B)."""
    discount: float = 0.99
    """Discount factor gamma (paper, Appendix B)."""
    tau: float = 0.005
    """Polyak rate of the target critics (paper, Appendix B)."""
    expectile: float = 0.7
    """Expectile tau of the value regression; 0.7 for MuJoCo locomotion (paper, Appendix B)."""
    temperature: float = 3.0
    """Inverse temperature beta of the advantage weights; 3.0 for MuJoCo locomotion (paper, Appendix B)."""
    scale_rewards_by_return_range: bool = True
    """Multiply rewards by 1000 / (max - min episode return), as the paper does for locomotion (Appendix B)."""
    reward_bias: float = 0.0
    """Added to every reward after any scaling: -1 on AntMaze (the authors' code, as CQL's)."""
    normalize_observations: bool = False
    """Standardize states with the dataset's statistics (the paper does not)."""
    batch_size: int = 256
    """Transitions per update (paper, Appendix B)."""
    network_init: str = "orthogonal"
    """Layer initialisation (o2o.nets.layer_init): "orthogonal", gain sqrt 2, as the IQL authors' code."""


@struct.dataclass
class State:
    actor: Network
    critic: Network
    value: Network
    target_critic_params: dict
    normalizer: ObservationNormalizer
    step: jax.Array
    config: Config = struct.field(pytree_node=False)
    spec: Spec = struct.field(pytree_node=False)


def prepare_dataset(dataset: Dataset, config: Config) -> Dataset:
    scale = 1.0
    if config.scale_rewards_by_return_range:
        returns = dataset.episode_returns
        spread = float(returns.max() - returns.min())
        scale = 1000.0 / spread if spread > 0 else 1.0
    return transform_rewards(dataset, scale, config.reward_bias)


def online_overrides(updates: int, config: Config) -> dict:
    """Fine-tuning keeps the actor's learning rate constant, as the authors' fine-tuning configs do: the offline decay
    carries over with the optimiser state and would leave a fully trained actor at a learning rate of zero."""
    return {"actor_decay_steps": 0}


def networks(key: jax.Array, spec: Spec, config,
             actor_input_dim: int | None = None) -> tuple[Network, Network, Network]:
    """IQL's actor (on `actor_input_dim` inputs, the observation's by default: FamO2O's universal actor reads its
    coefficient's embedding too), double critic and value network."""
    k1, k2, k3 = jax.random.split(key, 3)
    obs, act = spec.dummy_inputs()
    actor_schedule = (optax.cosine_decay_schedule(config.actor_lr, config.actor_decay_steps) if config.actor_decay_steps
                      else optax.constant_schedule(config.actor_lr))  # a schedule either way: same optimiser state
    mlp = functools.partial(MLP, initialisation=config.network_init)
    actor_inputs = obs if actor_input_dim is None else jnp.zeros((1, actor_input_dim))
    return (Network.create(GaussianPolicy(config.hidden_dims, spec.action_dim, mlp=mlp), optax.adam(actor_schedule),
                           k1, actor_inputs),
            Network.create(CriticEnsemble(config.hidden_dims, num_critics=2, mlp=mlp), optax.adam(config.critic_lr),
                           k2, obs, act),
            Network.create(ValueFunction(config.hidden_dims, mlp=mlp), optax.adam(config.value_lr), k3, obs))


def init(key: jax.Array, spec: Spec, config: Config = Config()) -> State:
    actor, critic, value = networks(key, spec, config)
    return State(
        actor=actor,
        critic=critic,
        value=value,
        target_critic_params=critic.params,
        normalizer=ObservationNormalizer.from_spec(spec, config.normalize_observations),
        step=jnp.zeros((), jnp.int32),
        config=config,
        spec=spec.shapes_only(),
    )


def expectile_loss(diff: jax.Array, expectile: float) -> jax.Array:
    weight = jnp.where(diff < 0, 1.0 - expectile, expectile)
    return weight * diff**2


def value_and_critic_steps(state, batch: dict) -> tuple[jax.Array, Network, Network, dict]:
    """IQL's value step (the expectile of the target critics' minimum at the data's actions), then the critics' step
    towards r + gamma (1 - d) V'(s'), V' the stepped value network: (that minimum, V', the stepped critics, losses)
    (FamO2O's too)."""
    config = state.config
    obs, next_obs, actions = state.normalizer(batch["observations"]), state.normalizer(batch["next_observations"]), batch["actions"]
    target_q = state.critic(obs, actions, params=state.target_critic_params).min(axis=0)

    def value_loss_fn(params):
        v = state.value(obs, params=params)
        return expectile_loss(target_q - v, config.expectile).mean(), {"v": v.mean()}

    value_loss, value_info, grads = value_and_grad(value_loss_fn, state.value.params)
    value = state.value.apply_gradients(grads)
    target = td_target(batch, config.discount, value(next_obs))

    def critic_loss_fn(params):
        q = state.critic(obs, actions, params=params)  # (2, batch)
        return ensemble_squared_error(q, target), {"q": q.mean()}

    critic_loss, critic_info, grads = value_and_grad(critic_loss_fn, state.critic.params)
    critic = state.critic.apply_gradients(grads)
    return target_q, value, critic, {"value_loss": value_loss, "critic_loss": critic_loss, **value_info, **critic_info}


def update(state: State, batch: dict, key: jax.Array) -> tuple[State, dict]:
    config = state.config
    obs, actions = state.normalizer(batch["observations"]), batch["actions"]
    target_q, value, critic, info = value_and_critic_steps(state, batch)
    weights = jnp.minimum(jnp.exp(config.temperature * (target_q - value(obs))), MAX_ADVANTAGE_WEIGHT)

    def actor_loss_fn(params):
        return advantage_weighted_nll(state.actor, params, obs, actions, weights), {"advantage_weight": weights.mean()}

    actor_loss, actor_info, grads = value_and_grad(actor_loss_fn, state.actor.params)
    actor = state.actor.apply_gradients(grads)

    state = state.replace(actor=actor, critic=critic, value=value, step=state.step + 1,
                          target_critic_params=soft_update(state.target_critic_params, critic.params, config.tau))
    return state, {"actor_loss": actor_loss, **info, **actor_info}


act = gaussian_act


q_values = ensemble_q_values
