"""Q-chunking — Li, Zhou & Levine, "Reinforcement Learning with Action Chunking", NeurIPS 2025.

The policy and the critics act on chunks of h consecutive actions a_{t:t+h} (flattened to h x action_dim): FQL's
networks (`o2o.agents.fql`) over chunks. A batch row is a window of h consecutive steps from a uniformly drawn first
step; valid_i says that no episode ended before step i of the window (windows may cross an episode's end):
    R_h = sum_{i<h} gamma^i r_{t+i},   m_h = min_{i<h} (1 - d_{t+i})        (both over the whole window, as the code)
    y   = R_h + gamma^h m_h agg_j Q_targ_j(s_{t+h}, a'),     a' the acting policy's chunk at s_{t+h}
    L_Q = mean_{j,b} valid_{h-1} (Q_j(s_t, a_{t:t+h}) - y)^2                 (the zeros count in the mean, as the code)
    L_flow = mean_{b,i,k} valid_i (v(s_t, x_t, t) - (a - x_0))^2_{ik}       (flow matching on the valid steps)
QC (`policy = "best-of-n"`) acts with argmax_n mean_j Q_j(s, mu(s, z_n)) over `num_samples` chunks of the behaviour
flow mu (the critics of this update, not the targets, rank them; agg ranks with `q_aggregation`); QC-FQL
(`policy = "distill"`) with FQL's one-step policy pi(s, z), trained on alpha E||pi - mu||^2 - E Q(s, clip(pi)). Each
network takes one Adam step per update on its own terms; the target critic then moves towards the critic BEFORE this
step (the authors' code; o2o's FQL moves it towards the critic after). Acting executes a chunk open-loop: a new chunk
at t = 0, h, 2h, ... of an episode, the policy's noise always drawn (the paper evaluates that way). Fine-tuning keeps
the objective, with the offline data in the replay buffer.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from o2o.agents import fql, uniform_windows
from o2o.agents.common import Spec, soft_update, value_and_grad
from o2o.errors import O2OError

State = fql.State
POLICIES = ("best-of-n", "distill")


@dataclasses.dataclass(frozen=True)
class Config(fql.Config):
    horizon: int = 5
    """Actions per chunk h: the policy's and the critics' action, and the steps of the backup (paper: 5)."""
    policy: str = "best-of-n"
    """"best-of-n": QC, the best of `num_samples` behaviour-flow chunks under Q; "distill": QC-FQL's one-step policy."""
    num_samples: int = 32
    """Chunks that best-of-n acting draws from the behaviour flow (paper: 32)."""
    alpha: float = 100.0
    """Weight of QC-FQL's distillation term (the authors' code and README)."""


def init(key: jax.Array, spec: Spec, config: Config = Config()) -> State:
    """FQL's networks on (h x action_dim) chunks; the state's spec keeps the env's one-step action dimension."""
    if config.policy not in POLICIES:
        raise O2OError(f"qc: policy must be one of {', '.join(POLICIES)}, not {config.policy!r}")
    state = fql.init(key, spec.replace(action_dim=config.horizon * spec.action_dim), config)
    return state.replace(spec=spec.shapes_only())


def window(config: Config) -> int:
    """Consecutive steps per batch row: the chunk's h."""
    return config.horizon


def transition_fields(config: Config) -> tuple[str, ...]:
    return ("steps_to_episode_end",)


def sample_batch(config: Config, data: dict, key: jax.Array) -> dict:
    return uniform_windows(data, key, config.batch_size, config.horizon)


def window_validity(steps_to_episode_end: jax.Array, horizon: int) -> jax.Array:
    """(batch, h) 1/0: step i of a window is in the episode of its first step (that step has i or more after it)."""
    return (jnp.arange(horizon) <= steps_to_episode_end[:, None]).astype(jnp.float32)


def chunk_actions(state: State, observations: jax.Array, noise: jax.Array) -> jax.Array:
    """The acting policy's chunks (batch, h x action_dim) at normalized states, given its noise: (batch, h x action_dim)
    for QC-FQL's one-step policy, (batch, num_samples, h x action_dim) for best-of-n's candidates."""
    config = state.config
    if config.policy == "distill":
        return fql.one_step_actions(state, observations, noise)
    repeated = jnp.repeat(observations[:, None], config.num_samples, axis=1)
    candidates = fql.flow_actions(state, repeated, noise)
    qs = state.critic(repeated, candidates)
    q = qs.min(axis=0) if config.q_aggregation == "min" else qs.mean(axis=0)
    return jnp.take_along_axis(candidates, jnp.argmax(q, axis=-1)[:, None, None], axis=1)[:, 0]


def policy_noise_shape(config: Config, batch: int, chunk_dim: int) -> tuple[int, ...]:
    return (batch, chunk_dim) if config.policy == "distill" else (batch, config.num_samples, chunk_dim)


def update(state: State, batch: dict, key: jax.Array) -> tuple[State, dict]:
    config = state.config
    size, horizon, action_dim = batch["actions"].shape
    chunk_shape = (size, horizon * action_dim)
    obs = state.normalizer(batch["observations"][:, 0])
    next_obs = state.normalizer(batch["next_observations"][:, -1])
    chunks = batch["actions"].reshape(chunk_shape)
    valid = window_validity(batch["steps_to_episode_end"][:, 0], horizon)
    target_key, x0_key, t_key, z_key = jax.random.split(key, 4)

    next_noise = next_policy_noise_draw(target_key, policy_noise_shape(config, *chunk_shape))
    next_chunks = chunk_actions(state, next_obs, next_noise)
    next_qs = state.critic(next_obs, next_chunks, params=state.target_critic_params)
    next_q = next_qs.min(axis=0) if config.q_aggregation == "min" else next_qs.mean(axis=0)
    discounts = config.discount ** jnp.arange(horizon)
    target = ((batch["rewards"] * discounts).sum(axis=1)
              + config.discount**horizon * (1.0 - batch["dones"]).min(axis=1) * next_q)

    def critic_loss_fn(params):
        q = state.critic(obs, chunks, params=params)
        return (((q - target) ** 2) * valid[:, -1]).mean(), {"q": q.mean()}

    def flow_loss_fn(params, noise, times):
        x_t = (1.0 - times) * noise + times * chunks
        errors = (state.bc_flow(obs, x_t, times, params=params) - (chunks - noise)) ** 2
        return (errors.reshape(size, horizon, action_dim) * valid[..., None]).mean()

    noise, times = fql.flow_noise_draw(x0_key, chunk_shape), fql.flow_times_draw(t_key, (size, 1))
    flow_loss, flow_grads = jax.value_and_grad(flow_loss_fn)(state.bc_flow.params, noise, times)
    critic_loss, critic_info, critic_grads = value_and_grad(critic_loss_fn, state.critic.params)
    metrics = {"critic_loss": critic_loss, "flow_loss": flow_loss, **critic_info}
    updated = {}
    if config.policy == "distill":
        actor_loss, actor_info, actor_grads = value_and_grad(
            lambda p: fql.one_step_policy_loss(state, p, obs, fql.one_step_noise_draw(z_key, chunk_shape)),
            state.actor.params)
        updated["actor"] = state.actor.apply_gradients(actor_grads)
        metrics.update(actor_loss=actor_loss, **actor_info)
    state = state.replace(bc_flow=state.bc_flow.apply_gradients(flow_grads),
                          critic=state.critic.apply_gradients(critic_grads),
                          target_critic_params=soft_update(state.target_critic_params, state.critic.params, config.tau),
                          step=state.step + 1, **updated)
    return state, metrics


def next_policy_noise_draw(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """The acting policy's noise at s_{t+h} in the critic target: z' (QC-FQL) or the best-of-n candidates' x_0."""
    return jax.random.normal(key, shape)


def act(state: State, observations: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
    """The first action of a fresh chunk at each state (a chunk executes open-loop through `act_in_episode`)."""
    return act_chunks(state, observations, key)[:, 0]


def act_chunks(state: State, observations: jax.Array, key: jax.Array) -> jax.Array:
    """(batch, h, action_dim) chunks at raw states, the policy's noise drawn."""
    config, action_dim = state.config, state.spec.action_dim
    shape = policy_noise_shape(config, observations.shape[0], config.horizon * action_dim)
    chunks = chunk_actions(state, state.normalizer(observations), jax.random.normal(key, shape))
    return chunks.reshape(observations.shape[0], config.horizon, action_dim)


def begin_episode(state: State) -> jax.Array:
    """One episode's chunk in execution (none yet)."""
    return jnp.zeros((state.config.horizon, state.spec.action_dim))


def act_in_episode(state: State, chunk: jax.Array, observation: jax.Array, last_reward: jax.Array, t: jax.Array,
                   key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Step t's action: a new chunk at t = 0, h, 2h, ..., else the next action of the chunk in execution."""
    position = t % state.config.horizon
    chunk = jnp.where(position == 0, act_chunks(state, observation[None], key)[0], chunk)
    return chunk[position], chunk

