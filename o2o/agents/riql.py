"""RIQL — Yang et al., "Towards Robust Offline Reinforcement Learning under Diverse Data Corruption", ICLR 2024.

IQL (`o2o.agents.iql`) with the paper's three changes for corrupted data: states normalized, a Q-ensemble whose alpha
quantile replaces the min of two critics, and a Huber loss in the critics' regression. As the authors' code
(YangRui2015/RIQL, RIQL.py), with a deterministic tanh actor and no reward scaling:
    q_alpha = quantile_alpha over j of Q_targ_j(s, a)
Value (expectile regression towards the quantile):
    L_V = E[|tau - 1(u < 0)| u^2],  u = q_alpha - V(s)
Critics (every one towards the same target, clipped; V before this update's value step):
    L_Q = mean_{j, batch} huber_{1/sigma^2}(clip(r + gamma (1 - d) V(s'), -100, 1000) - Q_j(s, a))
    huber_b(x) = x^2 / (2 b) where |x| < b, else |x| - b / 2
Actor (advantage-weighted regression on a deterministic policy):
    L_pi = E[min(exp(beta (q_alpha - V(s))), 100) ||pi(s) - a||^2]
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from o2o.agents import iql
from o2o.agents.common import (
    Network,
    ObservationNormalizer,
    Spec,
    ensemble_q_values,
    soft_update,
    td_target,
    value_and_grad,
)
from o2o.agents.iql import MAX_ADVANTAGE_WEIGHT, expectile_loss
from o2o.nets import (
    EDAC_CRITIC_OUTPUT_SCALE,
    CriticEnsemble,
    DeterministicPolicy,
    ValueFunction,
)


@dataclasses.dataclass(frozen=True)
class Config:
    actor_lr: float = 3e-4
    """Adam learning rate of the actor, decayed by a cosine schedule (authors' code)."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critic ensemble (authors' code)."""
    value_lr: float = 3e-4
    """Adam learning rate of the value function (authors' code)."""
    actor_decay_steps: int = 3_000_000
    """Length of the actor's cosine learning-rate decay, the authors' training length (3000 epochs of 1000); 0: constant."""
    hidden_dims: tuple[int, ...] = (256, 256)
    """Hidden layer widths of all networks (authors' code)."""
    discount: float = 0.99
    """Discount factor gamma (authors' code)."""
    tau: float = 0.005
    """Polyak rate of the target critics (authors' code)."""
    expectile: float = 0.7
    """Expectile tau of the value regression (authors' code)."""
    temperature: float = 3.0
    """Inverse temperature beta of the advantage weights (authors' code)."""
    num_critics: int = 5
    """Critics in the Q-ensemble, N (paper, Table 6; 3 in four of its random-corruption settings)."""
    quantile: float = 0.25
    """The quantile alpha of the ensemble's target values that the value and the actor read (paper, Table 6)."""
    huber_sigma: float = 1.0
    """Sigma of the critics' Huber loss, whose quadratic zone is |x| < 1 / sigma^2 (paper, Table 6)."""
    target_min: float = -100.0
    """Lower clip of the critics' TD target (authors' code)."""
    target_max: float = 1000.0
    """Upper clip of the critics' TD target (authors' code)."""
    normalize_observations: bool = True
    """Standardize states with the dataset's statistics (the paper's first change)."""
    batch_size: int = 256
    """Transitions per update (authors' code)."""


State = iql.State  # the same networks and targets: actor, critic ensemble, value, target critics


def init(key: jax.Array, spec: Spec, config: Config = Config()) -> State:
    k1, k2, k3 = jax.random.split(key, 3)
    obs, act = spec.dummy_inputs()
    actor_schedule = (optax.cosine_decay_schedule(config.actor_lr, config.actor_decay_steps) if config.actor_decay_steps
                      else optax.constant_schedule(config.actor_lr))
    # EDAC's initialisation of the critics, as the authors' VectorizedQ (biases 0.1, output layer U(+-3e-3))
    ensemble = CriticEnsemble(config.hidden_dims, config.num_critics, output_scale=EDAC_CRITIC_OUTPUT_SCALE)
    critic = Network.create(ensemble, optax.adam(config.critic_lr), k2, obs, act)
    return State(
        actor=Network.create(DeterministicPolicy(config.hidden_dims, spec.action_dim), optax.adam(actor_schedule), k1, obs),
        critic=critic,
        value=Network.create(ValueFunction(config.hidden_dims), optax.adam(config.value_lr), k3, obs),
        target_critic_params=critic.params,
        normalizer=ObservationNormalizer.from_spec(spec, config.normalize_observations),
        step=jnp.zeros((), jnp.int32),
        config=config,
        spec=spec.shapes_only(),
    )


def huber(x: jax.Array, sigma: float) -> jax.Array:
    """The paper's Huber loss: quadratic (x^2 / 2b) inside |x| < b = 1 / sigma^2, linear (|x| - b / 2) outside."""
    threshold = 1.0 / sigma**2
    return optax.huber_loss(x, delta=threshold) / threshold


def update(state: State, batch: dict, key: jax.Array) -> tuple[State, dict]:
    config = state.config
    obs, next_obs, actions = state.normalizer(batch["observations"]), state.normalizer(batch["next_observations"]), batch["actions"]

    target_q = jnp.quantile(state.critic(obs, actions, params=state.target_critic_params), config.quantile, axis=0)
    v, next_v = state.value(obs), state.value(next_obs)  # both before the value step, as the authors' code

    def value_loss_fn(params):
        v = state.value(obs, params=params)
        return expectile_loss(target_q - v, config.expectile).mean(), {"v": v.mean()}

    value_loss, value_info, grads = value_and_grad(value_loss_fn, state.value.params)
    value = state.value.apply_gradients(grads)

    target = jnp.clip(td_target(batch, config.discount, next_v), config.target_min, config.target_max)

    def critic_loss_fn(params):
        q = state.critic(obs, actions, params=params)  # (num_critics, batch)
        return huber(target - q, config.huber_sigma).mean(), {"q": q.mean(), "q_ensemble_std": q.std(axis=0).mean()}

    critic_loss, critic_info, grads = value_and_grad(critic_loss_fn, state.critic.params)
    critic = state.critic.apply_gradients(grads)

    weights = jnp.minimum(jnp.exp(config.temperature * (target_q - v)), MAX_ADVANTAGE_WEIGHT)

    def actor_loss_fn(params):
        errors = jnp.sum((state.actor(obs, params=params) - actions) ** 2, axis=-1)
        return (weights * errors).mean(), {"advantage_weight": weights.mean()}

    actor_loss, actor_info, grads = value_and_grad(actor_loss_fn, state.actor.params)
    actor = state.actor.apply_gradients(grads)

    state = state.replace(actor=actor, critic=critic, value=value, step=state.step + 1,
                          target_critic_params=soft_update(state.target_critic_params, critic.params, config.tau))
    return state, {"value_loss": value_loss, "critic_loss": critic_loss, "actor_loss": actor_loss,
                   **value_info, **critic_info, **actor_info}


def act(state: State, observations: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
    """The deterministic policy's action (RIQL learns offline only: no exploration noise)."""
    return state.actor(state.normalizer(observations))


q_values = ensemble_q_values
