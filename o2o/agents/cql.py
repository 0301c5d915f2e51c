"""CQL — Kumar et al., "Conservative Q-Learning for Offline Reinforcement Learning", NeurIPS 2020 (CQL(H) with
importance-sampled log-sum-exp, on SAC), and Cal-QL — Nakamoto et al., "Cal-QL: Calibrated Offline RL Pre-Training
for Efficient Online Fine-Tuning", NeurIPS 2023 (the same, with policy-action Q-values bounded below by Monte-Carlo
returns-to-go of the behaviour policy).

For each state s, with N actions from each of: uniform U(-1, 1)^d, pi(.|s) and pi(.|s') (all evaluated at s):
    R(s) = T log sum_j exp(Q_i(s, a_j) - log mu(a_j | s)) / T)       (Cal-QL: Q_i(s, a_j) <- max(Q_i(s, a_j), G(s)) for
                                                                   the policy actions, G = return-to-go)
    L_Q = sum_i E[(Q_i(s, a) - y)^2] + alpha sum_i E[R(s) - Q_i(s, a)]       y: SAC's target (sac.critic_target)
Actor and temperature: SAC's.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from o2o.agents import sac
from o2o.agents.common import ensemble_squared_error

State = sac.State
init = sac.init
act = sac.act
q_values = sac.q_values


@dataclasses.dataclass(frozen=True)
class Config(sac.Config):
    actor_lr: float = 1e-4
    """Adam learning rate of the actor (CQL paper, Appendix F)."""
    temperature_lr: float = 1e-4
    """Adam learning rate of log(alpha): the actor's, as in CQL's official code and Cal-QL's (both build the
    temperature's Adam with policy_lr)."""
    backup_entropy: bool = False
    """No entropy term in the target (CQL's official MuJoCo setting)."""
    network_init: str = "orthogonal-small-output"
    """Layer initialisation (o2o.nets.layer_init): JaxCQL's, the Cal-QL authors' (orthogonal, gain 0.01 last)."""
    cql_alpha: float = 5.0
    """Weight alpha of the conservative term (CQL official code for MuJoCo, min_q_weight)."""
    cql_num_actions: int = 10
    """Actions N sampled from each proposal per state (CQL paper, Appendix F)."""
    cql_temperature: float = 1.0
    """Temperature T of the log-sum-exp (CQL paper)."""
    calibrated: bool = False
    """Bound policy-action Q-values below by returns-to-go (Cal-QL, Eq. 5)."""
    sparse_failure_reward: float | None = None
    """Goal tasks: the per-step reward of an episode that never succeeds (Cal-QL's return-to-go convention)."""


def transition_fields(config: Config) -> tuple[str, ...]:
    return ("mc_returns",) if config.calibrated else ()


def update(state: State, batch: dict, key: jax.Array) -> tuple[State, dict]:
    config = state.config
    target_key, random_key, pi_key, next_pi_key, actor_key = jax.random.split(key, 5)
    obs, next_obs = state.normalizer(batch["observations"]), state.normalizer(batch["next_observations"])
    target = sac.critic_target(state, batch, next_obs, target_key)
    proposals = proposal_actions(state, obs, next_obs, random_key, pi_key, next_pi_key)
    bound = batch["mc_returns"] if config.calibrated else None

    def critic_loss_fn(params):
        pushed_down = soft_maximum(state, params, proposals, bound)
        q_data = state.critic(obs, batch["actions"], params=params)  # (num_critics, batch)
        td = ensemble_squared_error(q_data, target)
        conservative = (pushed_down - q_data).mean(axis=1).sum()
        info = {"td_loss": td, "conservative_loss": conservative, "q": q_data.mean()}
        return td + config.cql_alpha * conservative, info

    return sac.critic_then_actor(state, critic_loss_fn, obs, actor_key)


def proposal_actions(state, obs: jax.Array, next_obs: jax.Array, random_key: jax.Array, pi_key: jax.Array,
                     next_pi_key: jax.Array) -> tuple[jax.Array, ...]:
    """The N proposals per state of R(s), no gradient: (states repeated N times, uniform actions, pi(.|s) actions and
    their log-densities, pi(.|s') actions and theirs), each (batch * N, ...)."""
    batch_size, action_dim, n = obs.shape[0], state.spec.action_dim, state.config.cql_num_actions
    repeated_obs = jnp.repeat(obs, n, axis=0)
    random_actions = 2.0 * random_actions_draw(random_key, (batch_size * n, action_dim)) - 1.0  # U(-1, 1)
    pi_actions, pi_log_prob = sac.policy_sample(state, repeated_obs, pi_key, draw=policy_actions_noise_draw)
    next_pi_actions, next_pi_log_prob = sac.policy_sample(state, jnp.repeat(next_obs, n, axis=0), next_pi_key,
                                                          draw=next_policy_actions_noise_draw)
    return repeated_obs, *jax.lax.stop_gradient((random_actions, pi_actions, pi_log_prob, next_pi_actions,
                                                 next_pi_log_prob))


def soft_maximum(state, params, proposals: tuple[jax.Array, ...], bound: jax.Array | None = None) -> jax.Array:
    """R(s) of each critic, (num_critics, batch), over the states and actions of `proposals` (`proposal_actions`); with
    `bound` (Cal-QL's returns-to-go, (batch,)) the policy actions' values bounded below by it."""
    config = state.config
    repeated_obs, random_actions, pi_actions, pi_log_prob, next_pi_actions, next_pi_log_prob = proposals
    n = config.cql_num_actions
    batch_size = repeated_obs.shape[0] // n

    def q_at(actions):  # (num_critics, batch, n)
        return state.critic(repeated_obs, actions, params=params).reshape(-1, batch_size, n)

    q_pi, q_next_pi = q_at(pi_actions), q_at(next_pi_actions)
    if bound is not None:
        q_pi, q_next_pi = jnp.maximum(q_pi, bound[None, :, None]), jnp.maximum(q_next_pi, bound[None, :, None])
    log_uniform_density = -state.spec.action_dim * jnp.log(2.0)
    proposals_q = jnp.concatenate([
        q_at(random_actions) - log_uniform_density,
        q_pi - pi_log_prob.reshape(1, batch_size, n),
        q_next_pi - next_pi_log_prob.reshape(1, batch_size, n),
    ], axis=-1)
    return config.cql_temperature * jax.scipy.special.logsumexp(proposals_q / config.cql_temperature, axis=-1)


# The update's own draws (SAC's target and actor draw the others, sac.next_action_noise_draw and
# sac.actor_action_noise_draw), named so that tests/test_parity.py can inject the draws the reference was given.
def random_actions_draw(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """u ~ U(0, 1) of the uniform proposals 2u - 1 (what jax.random.uniform(minval=-1, maxval=1) computes)."""
    return jax.random.uniform(key, shape)


def policy_actions_noise_draw(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """The N(0, 1) noise of the proposals a ~ pi(.|s), N per state."""
    return jax.random.normal(key, shape)


def next_policy_actions_noise_draw(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """The N(0, 1) noise of the proposals a ~ pi(.|s'), N per state."""
    return jax.random.normal(key, shape)
