"""Flow Q-Learning — Park, Li & Levine, "Flow Q-Learning", ICML 2025.

A flow-matching behaviour policy mu (velocity field v(s, x, t), Euler-integrated from x_0 ~ N(0, I) over `flow_steps`
steps) and a one-step policy pi(s, z), z ~ N(0, I), distilled from it and trained to maximise Q:
    L_flow = E_{t ~ U(0,1), x_0 ~ N(0,I)} ||v(s, (1 - t) x_0 + t a, t) - (a - x_0)||^2
    L_pi   = alpha E_z ||pi(s, z) - mu(s, z)||^2 - lambda E_z[Q(s, clip(pi(s, z)))]     (mu(s, z): no gradient)
    y      = r + gamma (1 - d) agg_j Q_targ_j(s', clip(pi(s', z')))                  (agg: mean or min)
    L_Q    = mean_j E[(Q_j(s, a) - y)^2]
lambda is 1, or 1 / E|Q| with `normalize_q_loss`. Q in L_pi is the critic before this update's step (the paper's code
takes one gradient step on the sum of the three losses). The policy always draws its noise z, in evaluation too (the
paper evaluates that way); fine-tuning keeps the same objective with the offline data in the replay buffer.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import struct

from o2o.agents.common import (Network, ObservationNormalizer, Spec, ensemble_q_values, soft_update, td_target,
                               value_and_grad)
from o2o.errors import O2OError
from o2o.nets import ActionField, CriticEnsemble, GeluMLP


@dataclasses.dataclass(frozen=True)
class Config:
    learning_rate: float = 3e-4
    """Adam learning rate of every network (paper, Table 5)."""
    hidden_dims: tuple[int, ...] = (512, 512, 512, 512)
    """Hidden layer widths of the flow, the one-step policy and the critics (paper, Table 5)."""
    batch_size: int = 256
    """Transitions per update (paper, Table 5)."""
    discount: float = 0.99
    """Discount factor gamma (paper, Table 5; 0.995 for the long-horizon tasks)."""
    tau: float = 0.005
    """Polyak rate of the target critics (paper, Table 5)."""
    alpha: float = 10.0
    """Weight of the distillation term; per task in the presets (paper, Table 6)."""
    flow_steps: int = 10
    """Euler steps of the behaviour flow (paper, Table 5)."""
    num_critics: int = 2
    """Critics in the ensemble (paper's code)."""
    q_aggregation: str = "mean"
    """How the target aggregates the critics: "mean", or "min" (clipped double Q; antmaze in the paper)."""
    normalize_q_loss: bool = False
    """Divide the policy's Q term by E|Q| (the paper's code recommends it for new tasks)."""
    critic_layer_norm: bool = True
    """LayerNorm in the critics (paper's code)."""
    actor_layer_norm: bool = False
    """LayerNorm in the flow and the one-step policy (paper's code: off)."""
    normalize_observations: bool = False
    """The paper's code feeds states as observed."""


@struct.dataclass
class State:
    bc_flow: Network  # the behaviour flow's velocity field v(s, x, t)
    actor: Network  # the one-step policy pi(s, z)
    critic: Network
    target_critic_params: dict
    normalizer: ObservationNormalizer
    step: jax.Array
    config: Config = struct.field(pytree_node=False)
    spec: Spec = struct.field(pytree_node=False)


def init(key: jax.Array, spec: Spec, config: Config = Config()) -> State:
    if config.q_aggregation not in ("mean", "min"):
        raise O2OError(f"fql: q_aggregation must be 'mean' or 'min', not {config.q_aggregation!r}")
    flow_key, actor_key, critic_key = jax.random.split(key, 3)
    obs, act = spec.dummy_inputs()
    field = ActionField(config.hidden_dims, spec.action_dim, config.actor_layer_norm)
    optimizer = optax.adam(config.learning_rate)
    bc_flow = Network.create(field, optimizer, flow_key, obs, act, act[:, :1])
    actor = Network.create(field, optimizer, actor_key, obs, act)
    critic = Network.create(CriticEnsemble(config.hidden_dims, config.num_critics, config.critic_layer_norm, mlp=GeluMLP),
                            optimizer, critic_key, obs, act)
    return State(bc_flow, actor, critic, critic.params,
                 ObservationNormalizer.from_spec(spec, config.normalize_observations), jnp.zeros((), jnp.int32), config,
                 spec.shapes_only())


def flow_actions(state: State, observations: jax.Array, noise: jax.Array, params=None) -> jax.Array:
    """mu(s, z): the behaviour flow integrated from x_0 = z with `flow_steps` Euler steps, clipped to [-1, 1]."""
    steps, actions = state.config.flow_steps, noise
    for i in range(steps):  # unrolled: XLA fuses across steps and counts every step's FLOPs
        actions = actions + state.bc_flow(observations, actions, jnp.full(noise.shape[:-1] + (1,), i / steps),
                                          params=params) / steps
    return jnp.clip(actions, -1.0, 1.0)


def flow_matching_loss(bc_flow: Network, params, observations: jax.Array, actions: jax.Array, noise: jax.Array,
                       times: jax.Array) -> jax.Array:
    """E||v(s, (1 - t) x_0 + t a, t) - (a - x_0)||^2 (mean over batch and action dimensions, as the paper's code)."""
    x_t = (1.0 - times) * noise + times * actions
    return ((bc_flow(observations, x_t, times, params=params) - (actions - noise)) ** 2).mean()


def one_step_actions(state: State, observations: jax.Array, noise: jax.Array, params=None) -> jax.Array:
    return jnp.clip(state.actor(observations, noise, params=params), -1.0, 1.0)


def update(state: State, batch: dict, key: jax.Array) -> tuple[State, dict]:
    config = state.config
    obs, next_obs = state.normalizer(batch["observations"]), state.normalizer(batch["next_observations"])
    actions, shape = batch["actions"], batch["actions"].shape
    target_key, x0_key, t_key, z_key = jax.random.split(key, 4)

    target = critic_target(state, batch, next_obs, next_one_step_noise_draw(target_key, shape))

    def critic_loss_fn(params):
        q = state.critic(obs, actions, params=params)
        return ((q - target) ** 2).mean(), {"q": q.mean()}

    noise, times = flow_noise_draw(x0_key, shape), flow_times_draw(t_key, shape[:1] + (1,))
    flow_loss, flow_grads = jax.value_and_grad(flow_matching_loss, argnums=1)(state.bc_flow, state.bc_flow.params, obs,
                                                                             actions, noise, times)
    critic_loss, critic_info, critic_grads = value_and_grad(critic_loss_fn, state.critic.params)
    actor_loss, actor_info, actor_grads = value_and_grad(
        lambda p: one_step_policy_loss(state, p, obs, one_step_noise_draw(z_key, shape)), state.actor.params)
    critic = state.critic.apply_gradients(critic_grads)
    state = state.replace(bc_flow=state.bc_flow.apply_gradients(flow_grads),
                          actor=state.actor.apply_gradients(actor_grads), critic=critic,
                          target_critic_params=soft_update(state.target_critic_params, critic.params, config.tau),
                          step=state.step + 1)
    return state, {"critic_loss": critic_loss, "flow_loss": flow_loss, "actor_loss": actor_loss, **critic_info,
                   **actor_info}


# The update's four random draws, each named so that tests/test_parity.py can inject the draws the reference was given.
def next_one_step_noise_draw(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """z' ~ N(0, I): the one-step policy's noise at s' in the critic target."""
    return jax.random.normal(key, shape)


def flow_noise_draw(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """x_0 ~ N(0, I): the flow-matching loss's source points."""
    return jax.random.normal(key, shape)


def flow_times_draw(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """t ~ U(0, 1): the flow-matching loss's times, (batch, 1)."""
    return jax.random.uniform(key, shape)


def one_step_noise_draw(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """z ~ N(0, I): the one-step policy's noise in its loss (distillation and Q terms)."""
    return jax.random.normal(key, shape)


def critic_target(state: State, batch: dict, next_obs: jax.Array, noise: jax.Array) -> jax.Array:
    """y = r + gamma (1 - d) agg_j Q_targ_j(s', clip(pi(s', z')))."""
    next_qs = state.critic(next_obs, one_step_actions(state, next_obs, noise), params=state.target_critic_params)
    next_q = next_qs.min(axis=0) if state.config.q_aggregation == "min" else next_qs.mean(axis=0)
    return td_target(batch, state.config.discount, next_q)


def one_step_policy_loss(state: State, params, obs: jax.Array, noise: jax.Array) -> tuple[jax.Array, dict]:
    """alpha E||pi(s, z) - mu(s, z)||^2 - lambda E[Q(s, clip(pi(s, z)))], Q the mean of the critics."""
    config = state.config
    raw = state.actor(obs, noise, params=params)
    distill = ((raw - flow_actions(state, obs, noise)) ** 2).mean()
    q = state.critic(obs, jnp.clip(raw, -1.0, 1.0)).mean(axis=0)
    lmbda = jax.lax.stop_gradient(1.0 / jnp.abs(q).mean()) if config.normalize_q_loss else 1.0
    return config.alpha * distill - lmbda * q.mean(), {"distill_loss": distill, "policy_q": q.mean()}


q_values = ensemble_q_values


def act(state: State, observations: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
    """The one-step policy with its noise drawn, whether `deterministic` or not (the paper's evaluation and exploration)."""
    shape = observations.shape[:-1] + (state.spec.action_dim,)
    return one_step_actions(state, state.normalizer(observations), jax.random.normal(key, shape))
