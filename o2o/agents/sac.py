"""SAC — Haarnoja et al., "Soft Actor-Critic Algorithms and Applications", 2018 (automatic temperature), and its RLPD
form — Ball et al., "Efficient Online Reinforcement Learning with Offline Data", ICML 2023 (LayerNorm critics, a
10-critic ensemble with a random 2-critic subset for the target, high update-to-data ratio, symmetric sampling).

    a' ~ pi(s'),  y = r + gamma (1 - d) (min_{j in random subset} Q_targ_j(s', a') - alpha log pi(a'|s'))
    L_Q = sum_i E[(Q_i(s, a) - y)^2]
    L_pi = E[alpha log pi(a|s) - reduce_i Q_i(s, a)],  a ~ pi(s)   (reduce = min for SAC, mean for RLPD)
    L_alpha = E[-log(alpha) (log pi(a|s) + target_entropy)],  target_entropy = -action_dim / 2 (RLPD) or -action_dim (SAC)
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
from o2o.nets import MLP, CriticEnsemble, GaussianPolicy, gaussian_log_prob, output_scales

# (actor params, its sampled actions a ~ pi(s)) -> (a term of the actor loss, its metrics)
ActorPenalty = Callable[[dict, jax.Array], tuple[jax.Array, dict]]
ActorValue = Callable[[jax.Array], jax.Array]  # the critics' (num_critics, batch) Q(s, a) -> what the actor maximises


@dataclasses.dataclass(frozen=True)
class Config:
    actor_lr: float = 3e-4
    """Adam learning rate of the actor (SAC paper, Table 1)."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critics (SAC paper, Table 1)."""
    temperature_lr: float = 3e-4
    """Adam learning rate of log(alpha) (SAC paper, Table 1)."""
    hidden_dims: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the actor, and of the critics unless critic_hidden_dims (SAC paper, Table 1)."""
    critic_hidden_dims: tuple[int, ...] | None = None
    """Hidden layer widths of the critics where they differ from the actor's (Cal-QL's AntMaze: 4 x 256)."""
    discount: float = 0.99
    """Discount factor gamma (SAC paper, Table 1)."""
    tau: float = 0.005
    """Polyak rate of the target critics (SAC paper, Table 1)."""
    initial_temperature: float = 1.0
    """Starting entropy temperature alpha (jaxrl's SAC default)."""
    target_entropy_per_action_dim: float = -1.0
    """Target entropy as a multiple of the action dimension: -1 (SAC paper), -0.5 (RLPD)."""
    num_critics: int = 2
    """Critics in the ensemble: 2 (SAC), 10 (RLPD)."""
    critic_subset: int | None = 2
    """Critics drawn at random for the target's minimum: all of SAC's 2; 2 of RLPD's 10; None: all (SAC-N)."""
    critic_layer_norm: bool = False
    """LayerNorm after each hidden critic layer (RLPD's key ingredient against overestimation)."""
    actor_uses_mean_q: bool = False
    """Actor maximises the ensemble's mean Q (RLPD) instead of its minimum (SAC)."""
    backup_entropy: bool = True
    """Subtract alpha log pi(a'|s') in the target (SAC)."""
    network_init: str = "flax"
    """Layer initialisation of actor and critics (o2o.nets.layer_init)."""
    edac_init: bool = False
    """EDAC's initialisation (hidden biases 0.1, small uniform output layers; o2o.nets.MLP), not network_init's."""
    normalize_observations: bool = False
    """Standardize states with offline data statistics (when given)."""
    batch_size: int = 256
    """Transitions per update (SAC paper, Table 1; RLPD)."""
    actor_every: int = 1
    """An actor and temperature step after every actor_every-th critic step (by the update counter; offline too): 1
    (SAC); an online run's UTD for RLPD and WSRL, one per env step after all its critic steps (RLPD's Algorithm 1)."""


@struct.dataclass
class State:
    actor: Network
    critic: Network
    log_temperature: Network
    target_critic_params: dict
    normalizer: ObservationNormalizer
    step: jax.Array
    config: Config = struct.field(pytree_node=False)
    spec: Spec = struct.field(pytree_node=False)


class LogTemperature(nn.Module):
    """log(alpha) as one learned scalar, starting at log(initial) (SAC's temperature; FamO2O's balance model's)."""

    initial: float

    @nn.compact
    def __call__(self) -> jax.Array:
        return self.param("log_temperature", lambda _: jnp.log(jnp.asarray(self.initial, jnp.float32)))


def networks(key: jax.Array, spec: Spec, config) -> tuple[Network, Network, Network]:
    """SAC's actor, critic ensemble and temperature (CQL and Cal-QL build on them)."""
    k1, k2 = jax.random.split(key)
    obs, act = spec.dummy_inputs()
    actor_scale, critic_scale = output_scales(config.edac_init)
    mlp = functools.partial(MLP, initialisation=config.network_init)
    actor = GaussianPolicy(config.hidden_dims, spec.action_dim, state_dependent_std=True, output_scale=actor_scale,
                           mlp=mlp)
    critic_dims = config.critic_hidden_dims or config.hidden_dims
    critic = CriticEnsemble(critic_dims, config.num_critics, config.critic_layer_norm, critic_scale, mlp=mlp)
    return (Network.create(actor, optax.adam(config.actor_lr), k1, obs),
            Network.create(critic, optax.adam(config.critic_lr), k2, obs, act),
            Network.create(LogTemperature(config.initial_temperature), optax.adam(config.temperature_lr), k1))


def init(key: jax.Array, spec: Spec, config: Config = Config()) -> State:
    actor, critic, log_temperature = networks(key, spec, config)
    return State(
        actor=actor,
        critic=critic,
        log_temperature=log_temperature,
        target_critic_params=critic.params,
        normalizer=ObservationNormalizer.from_spec(spec, config.normalize_observations),
        step=jnp.zeros((), jnp.int32),
        config=config,
        spec=spec.shapes_only(),
    )


def sample_tanh_gaussian(mean: jax.Array, log_std: jax.Array, key: jax.Array,
                         draw=jax.random.normal) -> tuple[jax.Array, jax.Array]:
    """a = tanh(u), u = mean + std eps, eps = draw(key, shape) ~ N(0, 1); returns (a, log pi(a)) with the tanh change
    of variables."""
    u = mean + jnp.exp(log_std) * draw(key, mean.shape)
    log_det = 2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u))  # log(1 - tanh(u)^2), stable
    return jnp.tanh(u), gaussian_log_prob(mean, log_std, u) - log_det.sum(axis=-1)


def policy_sample(state, observations: jax.Array, key: jax.Array, params=None,
                  draw=jax.random.normal) -> tuple[jax.Array, jax.Array]:
    return sample_tanh_gaussian(*state.actor(observations, params=params), key, draw)


def next_action_noise_draw(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """The standard normal noise of a' ~ pi(s') in the critic target, named so that tests/test_parity.py can inject
    the draws the reference implementation was given."""
    return jax.random.normal(key, shape)


def actor_action_noise_draw(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """The standard normal noise of a ~ pi(s) in the actor and temperature losses (injected as the one above)."""
    return jax.random.normal(key, shape)


def critic_subset_draw(key: jax.Array, shape: tuple[int, ...], num_critics: int) -> jax.Array:
    """The target critics whose minimum the target takes: `shape` distinct indices of the `num_critics` (RLPD's random
    subset), named so that tests/test_parity.py can inject the reference's."""
    return jax.random.choice(key, num_critics, shape, replace=False)


def critic_target(state, batch: dict, next_obs: jax.Array, key: jax.Array, per_critic: bool = False) -> jax.Array:
    """r + gamma (1 - d) (min over a random critic subset of Q_targ(s', a') - alpha log pi(a'|s')), (batch,); with
    `per_critic`, each critic's own Q_targ_i(s', a') in place of the minimum, (num_critics, batch)."""
    config = state.config
    action_key, subset_key = jax.random.split(key)
    next_actions, next_log_prob = policy_sample(state, next_obs, action_key, draw=next_action_noise_draw)
    next_q = state.critic(next_obs, next_actions, params=state.target_critic_params)  # (num_critics, batch)
    if per_critic:
        next_v = next_q
    elif config.critic_subset is None:
        next_v = next_q.min(axis=0)
    else:
        subset = critic_subset_draw(subset_key, (config.critic_subset,), config.num_critics)
        next_v = next_q[subset].min(axis=0)
    if config.backup_entropy:
        next_v = next_v - jnp.exp(state.log_temperature.params["log_temperature"]) * next_log_prob
    return td_target(batch, config.discount, next_v)


def update_actor_and_temperature(state, obs: jax.Array, key: jax.Array, actor_penalty: ActorPenalty | None = None,
                                 actor_value: ActorValue | None = None) -> tuple[State, dict]:
    """SAC's actor step, plus `actor_penalty(params, actions)` -> (loss, metrics) where an algorithm adds a term to the
    actor loss (RO2O's policy smoothness and behaviour cloning), maximising `actor_value(Q)` where an algorithm
    replaces SAC's reduction of the critics (RO2O's lower confidence bound), then the temperature step."""
    config = state.config
    alpha = jnp.exp(state.log_temperature.params["log_temperature"])

    def actor_loss_fn(params):
        actions, log_prob = policy_sample(state, obs, key, params, draw=actor_action_noise_draw)
        q = state.critic(obs, actions)
        if actor_value is not None:
            q = actor_value(q)
        else:
            q = q.mean(axis=0) if config.actor_uses_mean_q else q.min(axis=0)
        loss, info = (alpha * log_prob - q).mean(), {"entropy": -log_prob.mean()}
        if actor_penalty is None:
            return loss, info
        penalty, penalty_info = actor_penalty(params, actions)
        return loss + penalty, {**info, **penalty_info}

    actor_loss, info, grads = value_and_grad(actor_loss_fn, state.actor.params)
    actor = state.actor.apply_gradients(grads)
    target_entropy = config.target_entropy_per_action_dim * state.spec.action_dim

    def temperature_loss_fn(params):
        return (params["log_temperature"] * (info["entropy"] - target_entropy)).mean(), {}

    temperature_loss, _, grads = value_and_grad(temperature_loss_fn, state.log_temperature.params)
    log_temperature = state.log_temperature.apply_gradients(grads)
    state = state.replace(actor=actor, log_temperature=log_temperature)
    return state, {"actor_loss": actor_loss, "temperature": alpha, "temperature_loss": temperature_loss, **info}


def update(state: State, batch: dict, key: jax.Array) -> tuple[State, dict]:
    target_key, actor_key = jax.random.split(key)
    obs, next_obs = state.normalizer(batch["observations"]), state.normalizer(batch["next_observations"])
    target = critic_target(state, batch, next_obs, target_key)

    def critic_loss_fn(params):
        q = state.critic(obs, batch["actions"], params=params)
        return ensemble_squared_error(q, target), {"q": q.mean()}

    return critic_then_actor(state, critic_loss_fn, obs, actor_key)


def critic_then_actor(state, critic_loss_fn, obs: jax.Array, actor_key: jax.Array,
                      actor_penalty: ActorPenalty | None = None,
                      actor_value: ActorValue | None = None) -> tuple[State, dict]:
    """One critic step on `critic_loss_fn`, the target critics' Polyak step, then the actor (with `actor_penalty` and
    `actor_value`, if any: `update_actor_and_temperature`) and temperature steps if the update counter is a multiple of
    `actor_every` (the update of SAC and of every algorithm that only adds terms to SAC's losses)."""
    critic_loss, critic_info, grads = value_and_grad(critic_loss_fn, state.critic.params)
    critic = state.critic.apply_gradients(grads)
    state = state.replace(critic=critic, step=state.step + 1,
                          target_critic_params=soft_update(state.target_critic_params, critic.params, state.config.tau))
    actor_step = functools.partial(update_actor_and_temperature, actor_penalty=actor_penalty,
                                   actor_value=actor_value)
    if state.config.actor_every == 1:
        state, actor_info = actor_step(state, obs, actor_key)
    else:
        skip = functools.partial(skip_actor_and_temperature, actor_step)
        state, actor_info = jax.lax.cond(state.step % state.config.actor_every == 0, actor_step, skip, state, obs,
                                         actor_key)
    return state, {"critic_loss": critic_loss, **critic_info, **actor_info}


def skip_actor_and_temperature(actor_step, state, obs: jax.Array, actor_key: jax.Array) -> tuple[State, dict]:
    """No actor or temperature step: the state as it is, NaN metrics (skipped by the logs) shaped as `actor_step`'s."""
    _, info = jax.eval_shape(actor_step, state, obs, actor_key)
    return state, {k: jnp.full(v.shape, jnp.nan, v.dtype) for k, v in info.items()}


def act(state, observations: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
    mean, log_std = state.actor(state.normalizer(observations))
    if deterministic:
        return jnp.tanh(mean)
    return sample_tanh_gaussian(mean, log_std, key)[0]


q_values = ensemble_q_values
