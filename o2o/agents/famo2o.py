"""FamO2O on IQL — Wang et al., "Train Once, Get a Family: State-Adaptive Balances for Offline-to-Online Reinforcement
Learning", NeurIPS 2023 (the authors' code: LeapLabTHU/FamO2O, jax_iql/).

IQL (`o2o.agents.iql`) whose actor is a universal policy pi(a | s, beta) over a family of balance coefficients beta
(IQL's inverse temperature: improvement against constraint), fed as a sin-cos embedding, and a balance model
pi_phi(u | s), a tanh-Gaussian over u in (-1, 1), beta(u) = lo + (u + 1) / 2 (hi - lo), that picks beta per state.
Per update, in the authors' order:
    V:       L_V = E[|tau - 1(x < 0)| x^2],  x = min_j Q_targ_j(s, a) - V(s)
    balance: L_phi = E[alpha log pi_phi(u|s) - min_j Q_targ_j(s, a~)],  u ~ pi_phi(s),
             a~ = tanh(mu(s, emb(beta(u)))) + sigma xi  (the universal actor before its step)
    alpha:   L = alpha (H - H_target),  H = -E[log pi_phi(u|s)] (SAC's automatic temperature, the balance model's)
    actor:   L_pi = -E[w log pi(a | s, emb(beta))],  A = min_j Q_targ_j(s, a) - V'(s) (V' after its step),
             beta ~ U[lo, hi] per state offline, ~ pi_phi(s) (before its step) when fine-tuning;
             w_j = mean_i min(exp(beta_i A_j), 100) as the authors' code computes it (its (batch, batch) broadcast), or
             the paper's w_j = min(exp(beta_j A_j), 100)
    critics: L_Q = sum_i E[(r + gamma (1 - d) V'(s') - Q_i(s, a))^2], then the targets' Polyak step
Acting: beta = beta(tanh(mu_phi(s))), the balance model's deterministic choice, then the universal actor's action.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from o2o.agents import iql
from o2o.agents.common import (
    Network,
    ObservationNormalizer,
    Spec,
    ensemble_q_values,
    soft_update,
    value_and_grad,
)
from o2o.agents.iql import MAX_ADVANTAGE_WEIGHT
from o2o.agents.sac import LogTemperature, sample_tanh_gaussian
from o2o.nets import (
    MLP,
    clipped_gaussian_sample,
    gaussian_log_prob,
)

BALANCE_LOG_STD_MIN, BALANCE_LOG_STD_MAX = -10.0, 2.0  # the authors' balance model (IQL's NormalTanhPolicy defaults)

prepare_dataset = iql.prepare_dataset


@dataclasses.dataclass(frozen=True)
class Config(iql.Config):
    actor_decay_steps: int = 0
    """Length of the actor's cosine learning-rate decay; 0: constant, as the authors' config (no decay schedule)."""
    coefficient_min: float = 1.0
    """Lower end of the balance coefficients beta (the authors' learner default; their AntMaze config: 8)."""
    coefficient_max: float = 5.0
    """Upper end of the balance coefficients beta (the authors' learner default; their AntMaze config: 14)."""
    embedding_dim: int = 6
    """Features of beta's sin-cos embedding, the universal actor's extra input (authors' code; even)."""
    embedding_base: float = 10000.0
    """Base n of the embedding's frequencies n^(-2i/d) (authors' code)."""
    balance_lr: float = 3e-4
    """Adam learning rate of the balance model (the authors' code: the actor's)."""
    balance_temperature_lr: float = 3e-4
    """Adam learning rate of the balance model's entropy temperature alpha (authors' code)."""
    balance_initial_temperature: float = 1.0
    """Starting alpha (authors' code)."""
    balance_target_entropy: float = -0.5
    """Entropy the balance model's alpha aims for, in u's space (authors' code: -1/2)."""
    coefficient_source: str = "uniform"
    """Where the universal actor's training coefficients come from: "uniform" (offline: U[min, max] per state) or
    "balance" (fine-tuning: drawn from the balance model)."""
    batch_mean_weights: bool = True
    """Weight each sample by the batch mean over all states' beta of min(exp(beta A), 100), as the authors' code does;
    False: by its own beta (the paper's equation)."""


class BalanceModel(nn.Module):
    """pi_phi(u | s) before its tanh: (mean, log_std) of shape (batch, 1); the log-std is one state-independent
    parameter, as the authors' balance model."""

    hidden_dims: tuple[int, ...]
    mlp: Callable = MLP

    @nn.compact
    def __call__(self, observations: jax.Array) -> tuple[jax.Array, jax.Array]:
        mean = self.mlp(self.hidden_dims, 1)(observations)
        log_std = jnp.broadcast_to(self.param("log_std", nn.initializers.zeros, (1,)), mean.shape)
        return mean, jnp.clip(log_std, BALANCE_LOG_STD_MIN, BALANCE_LOG_STD_MAX)


@struct.dataclass
class State:
    actor: Network
    balance: Network
    log_temperature: Network
    critic: Network
    value: Network
    target_critic_params: dict
    normalizer: ObservationNormalizer
    step: jax.Array
    config: Config = struct.field(pytree_node=False)
    spec: Spec = struct.field(pytree_node=False)


def online_overrides(updates: int, config: Config) -> dict:
    """Fine-tuning trains the universal actor on the balance model's coefficients (the authors' online phase), at a
    constant learning rate (IQL's recipe)."""
    return {**iql.online_overrides(updates, config), "coefficient_source": "balance"}


def init(key: jax.Array, spec: Spec, config: Config = Config()) -> State:
    iql_key, balance_key = jax.random.split(key)
    actor, critic, value = iql.networks(iql_key, spec, config, spec.observation_dim + config.embedding_dim)
    mlp = functools.partial(MLP, initialisation=config.network_init)
    return State(
        actor=actor,
        balance=Network.create(BalanceModel(config.hidden_dims, mlp=mlp), optax.adam(config.balance_lr), balance_key,
                               spec.dummy_inputs()[0]),
        log_temperature=Network.create(LogTemperature(config.balance_initial_temperature),
                                       optax.adam(config.balance_temperature_lr), balance_key),
        critic=critic,
        value=value,
        target_critic_params=critic.params,
        normalizer=ObservationNormalizer.from_spec(spec, config.normalize_observations),
        step=jnp.zeros((), jnp.int32),
        config=config,
        spec=spec.shapes_only(),
    )


def coefficient(u: jax.Array, config: Config) -> jax.Array:
    """beta in [min, max] from the balance model's u in [-1, 1]."""
    return config.coefficient_min + (u + 1.0) / 2.0 * (config.coefficient_max - config.coefficient_min)


def embedding(beta: jax.Array, config: Config) -> jax.Array:
    """(batch, 1) coefficients -> (batch, embedding_dim): sin and cos of beta n^(-2i/d), i < d/2, interleaved."""
    frequencies = config.embedding_base ** (-2.0 * jnp.arange(config.embedding_dim // 2) / config.embedding_dim)
    angles = beta * frequencies
    return jnp.stack([jnp.sin(angles), jnp.cos(angles)], axis=-1).reshape(beta.shape[0], -1)


def universal_inputs(obs: jax.Array, beta: jax.Array, config: Config) -> jax.Array:
    return jnp.concatenate([obs, embedding(beta, config)], axis=-1)


def advantage_weights(advantage: jax.Array, beta: jax.Array, config: Config) -> jax.Array:
    """(batch,) advantages and (batch, 1) coefficients -> each sample's weight: the mean over i of
    min(exp(beta_i A_j), 100) (the authors' code: its (batch, batch) broadcast), or min(exp(beta_j A_j), 100)."""
    if config.batch_mean_weights:  # row i: beta_i's weights of every sample
        return jnp.minimum(jnp.exp(beta * advantage[None, :]), MAX_ADVANTAGE_WEIGHT).mean(axis=0)
    return jnp.minimum(jnp.exp(beta[:, 0] * advantage), MAX_ADVANTAGE_WEIGHT)


def balance_noise_draw(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """The standard normals of u ~ pi_phi(s) in the balance model's loss, named so that tests/test_parity.py can inject
    the reference's."""
    return jax.random.normal(key, shape)


def balance_action_noise_draw(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """The standard normals of the universal actor's action a~ in the balance model's loss."""
    return jax.random.normal(key, shape)


def coefficient_draw(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """U(0, 1) draws of the universal actor's offline coefficients, beta = min + (max - min) U."""
    return jax.random.uniform(key, shape)


def coefficient_noise_draw(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """The standard normals of the universal actor's fine-tuning coefficients, u ~ pi_phi(s)."""
    return jax.random.normal(key, shape)


def update(state: State, batch: dict, key: jax.Array) -> tuple[State, dict]:
    config = state.config
    balance_key, action_key, coefficient_key = jax.random.split(key, 3)
    obs, actions = state.normalizer(batch["observations"]), batch["actions"]
    # the critics' step reads V' and no other network's step reads the critics (the targets move last): taken with
    # the value step, before the balance and actor steps, as the same math as the authors' order
    target_q, value, critic, info = iql.value_and_critic_steps(state, batch)
    alpha = jnp.exp(state.log_temperature.params["log_temperature"])

    def balance_loss_fn(params):
        u, log_prob = sample_tanh_gaussian(*state.balance(obs, params=params), balance_key, draw=balance_noise_draw)
        mean, log_std = state.actor(universal_inputs(obs, coefficient(u, config), config))
        explored = mean + jnp.exp(log_std) * balance_action_noise_draw(action_key, mean.shape)  # unclipped, as theirs
        q = state.critic(obs, explored, params=state.target_critic_params).min(axis=0)
        return (alpha * log_prob - q).mean(), {"balance_entropy": -log_prob.mean(),
                                               "coefficient": coefficient(u, config).mean()}

    balance_loss, balance_info, grads = value_and_grad(balance_loss_fn, state.balance.params)
    balance = state.balance.apply_gradients(grads)

    def temperature_loss_fn(params):  # alpha (H - target), the authors' form: d/d log(alpha) = alpha (H - target)
        entropy_gap = balance_info["balance_entropy"] - config.balance_target_entropy
        return jnp.exp(params["log_temperature"]) * entropy_gap, {}

    temperature_loss, _, grads = value_and_grad(temperature_loss_fn, state.log_temperature.params)
    log_temperature = state.log_temperature.apply_gradients(grads)

    if config.coefficient_source == "uniform":
        beta = config.coefficient_min + (config.coefficient_max - config.coefficient_min) * coefficient_draw(
            coefficient_key, (obs.shape[0], 1))
    else:
        mean, log_std = state.balance(obs)  # before its step, as the authors' actor update reads it
        u = jnp.tanh(mean + jnp.exp(log_std) * coefficient_noise_draw(coefficient_key, mean.shape))
        beta = jax.lax.stop_gradient(coefficient(u, config))
    weights = advantage_weights(target_q - value(obs), beta, config)
    actor_inputs = universal_inputs(obs, beta, config)

    def actor_loss_fn(params):
        mean, log_std = state.actor(actor_inputs, params=params)
        return -(weights * gaussian_log_prob(mean, log_std, actions)).mean(), {"advantage_weight": weights.mean()}

    actor_loss, actor_info, grads = value_and_grad(actor_loss_fn, state.actor.params)
    actor = state.actor.apply_gradients(grads)

    state = state.replace(actor=actor, balance=balance, log_temperature=log_temperature, critic=critic, value=value,
                          step=state.step + 1,
                          target_critic_params=soft_update(state.target_critic_params, critic.params, config.tau))
    return state, {"balance_loss": balance_loss, "temperature": alpha, "temperature_loss": temperature_loss,
                   "actor_loss": actor_loss, **info, **balance_info, **actor_info}


def act(state: State, observations: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
    """The balance model's deterministic coefficient for each state, then the universal actor's mean action, or a
    sample clipped to [-1, 1]."""
    obs = state.normalizer(observations)
    mean_u, _ = state.balance(obs)
    mean, log_std = state.actor(universal_inputs(obs, coefficient(jnp.tanh(mean_u), state.config), state.config))
    return mean if deterministic else clipped_gaussian_sample(mean, log_std, key)


q_values = ensemble_q_values
