"""CQL — Kumar et al., "Conservative Q-Learning for Offline Reinforcement Learning", NeurIPS 2020 (CQL(H) with
importance-sampled log-sum-exp, on SAC), and Cal-QL — Nakamoto et al., "Cal-QL: Calibrated Offline RL Pre-Training
for Efficient Online Fine-Tuning", NeurIPS 2023 (the same, with policy-action Q-values bounded below by Monte-Carlo
returns-to-go of the behaviour policy).

For each state s, with N actions from each of: uniform U(-1, 1)^d, pi(.|s) and pi(.|s') (all evaluated at s):
    R(s) = T log sum_j exp(Q_i(s, a_j) - log mu(a_j | s)) / T)       (Cal-QL: Q_i(s, a_j) <- max(Q_i(s, a_j), G(s)) for
                                                                   the policy actions, G = return-to-go)
    L_Q = sum_i E[(Q_i(s, a) - y)^2] + alpha sum_i E[R(s) - Q_i(s, a)]       y: SAC's target (sac.critic_target)
Options of the authors' code (JaxCQL, Cal-QL's AntMaze runs):
    max target backup:  y = r + gamma (1 - d) max_{j <= N} min_i Q_targ_i(s', a'_j),  a'_j ~ pi(s')
    Lagrange form:      alpha -> alpha alpha' (gap_i - tau) in L_Q, gap_i = E[R(s) - Q_i(s, a)], alpha' = exp(l) >= 0
                        learned by L_l = -alpha' alpha sum_i (gap_i - tau) / 2: alpha' grows while the gaps exceed tau
Actor and temperature: SAC's.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from o2o.agents import sac
from o2o.agents.common import Network, Spec, ensemble_squared_error, td_target, transform_rewards, value_and_grad
from o2o.data import Dataset

State = sac.State
act = sac.act
q_values = sac.q_values
INITIAL_LOG_MULTIPLIER = 1.0  # JaxCQL's Scalar(1.0): alpha' starts at e (CQL's PyTorch code starts it at 1)
MAX_MULTIPLIER = 1e6  # JaxCQL clips alpha' to [0, 1e6]


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
    max_target_backup: bool = False
    """Target from the best of N next actions by the minimum over all critics (JaxCQL's cql_max_target_backup, Cal-QL's
    runs); else one next action and critic_subset's minimum."""
    cql_target_action_gap: float | None = None
    """tau of the Lagrange form (JaxCQL's cql_target_action_gap; Cal-QL's AntMaze 0.8); None: alpha fixed."""
    reward_scale: float = 1.0
    """Rewards are trained on as reward_scale r + reward_bias, online too (Cal-QL's AntMaze script: 10 r - 5)."""
    reward_bias: float = 0.0
    """Added to the scaled rewards (see reward_scale)."""


class LogMultiplier(nn.Module):
    """log(alpha') of the Lagrange form as one learned scalar (JaxCQL's Scalar)."""

    @nn.compact
    def __call__(self) -> jax.Array:
        return self.param("log_multiplier", lambda _: jnp.asarray(INITIAL_LOG_MULTIPLIER, jnp.float32))


@struct.dataclass
class LagrangeState(sac.State):
    log_multiplier: Network  # Adam at the critics' learning rate, as JaxCQL's qf_lr


def init(key: jax.Array, spec: Spec, config: Config = Config()) -> State:
    """SAC's networks; with the Lagrange form also log(alpha') (a state of its own type, so that a run without it keeps
    SAC's state and its checkpoints)."""
    state = sac.init(key, spec, config)
    if config.cql_target_action_gap is None:
        return state
    multiplier = Network.create(LogMultiplier(), optax.adam(config.critic_lr), key)
    return LagrangeState(**{f.name: getattr(state, f.name) for f in dataclasses.fields(state)},
                         log_multiplier=multiplier)


def prepare_dataset(dataset: Dataset, config: Config) -> Dataset:
    """Rewards as reward_scale r + reward_bias, before the returns-to-go are computed from them (as the authors'
    loader does: a failed AntMaze episode's rewards are all -5, its returns-to-go -5 / (1 - gamma))."""
    return transform_rewards(dataset, config.reward_scale, config.reward_bias)


def transition_fields(config: Config) -> tuple[str, ...]:
    return ("mc_returns",) if config.calibrated else ()


def update(state: State, batch: dict, key: jax.Array) -> tuple[State, dict]:
    config = state.config
    target_key, random_key, pi_key, next_pi_key, actor_key = jax.random.split(key, 5)
    obs, next_obs = state.normalizer(batch["observations"]), state.normalizer(batch["next_observations"])
    target = (max_target(state, batch, next_obs, target_key) if config.max_target_backup
              else sac.critic_target(state, batch, next_obs, target_key))
    proposals = proposal_actions(state, obs, next_obs, random_key, pi_key, next_pi_key)
    bound = batch["mc_returns"] if config.calibrated else None
    lagrange = config.cql_target_action_gap is not None
    multiplier = jnp.clip(jnp.exp(state.log_multiplier()), 0.0, MAX_MULTIPLIER) if lagrange else 1.0

    def critic_loss_fn(params):
        pushed_down = soft_maximum(state, params, proposals, bound)
        q_data = state.critic(obs, batch["actions"], params=params)  # (num_critics, batch)
        td = ensemble_squared_error(q_data, target)
        gaps = (pushed_down - q_data).mean(axis=1)  # (num_critics,)
        info = {"td_loss": td, "conservative_loss": gaps.sum(), "q": q_data.mean(), "gaps": gaps}
        if lagrange:
            gaps = gaps - config.cql_target_action_gap
        return td + multiplier * config.cql_alpha * gaps.sum(), info

    stepped, info = sac.critic_then_actor(state, critic_loss_fn, obs, actor_key)
    gaps = info.pop("gaps")
    if not lagrange:
        return stepped, info

    def multiplier_loss_fn(params):  # the gaps of the critics before their step, as the critics' own loss read them
        alpha_prime = jnp.clip(jnp.exp(params["log_multiplier"]), 0.0, MAX_MULTIPLIER)
        return -0.5 * alpha_prime * config.cql_alpha * (gaps - config.cql_target_action_gap).sum(), {}

    multiplier_loss, _, grads = value_and_grad(multiplier_loss_fn, state.log_multiplier.params)
    return (stepped.replace(log_multiplier=state.log_multiplier.apply_gradients(grads)),
            {**info, "conservative_multiplier": multiplier, "multiplier_loss": multiplier_loss})


def max_target(state, batch: dict, next_obs: jax.Array, key: jax.Array) -> jax.Array:
    """r + gamma (1 - d) max over N actions a'_j ~ pi(s') of min_i Q_targ_i(s', a'_j) (less alpha log pi(a'_j|s')
    of the chosen one with backup_entropy), (batch,)."""
    config = state.config
    batch_size, n = next_obs.shape[0], config.cql_num_actions
    repeated = jnp.repeat(next_obs, n, axis=0)  # state-major: row b * N + j is a'_j of state b
    next_actions, next_log_prob = sac.policy_sample(state, repeated, key, draw=sac.next_action_noise_draw)
    next_q = state.critic(repeated, next_actions, params=state.target_critic_params).min(axis=0).reshape(batch_size, n)
    best = jnp.argmax(next_q, axis=1)[:, None]
    next_v = jnp.take_along_axis(next_q, best, axis=1)[:, 0]
    if config.backup_entropy:
        log_prob = jnp.take_along_axis(next_log_prob.reshape(batch_size, n), best, axis=1)[:, 0]
        next_v = next_v - jnp.exp(state.log_temperature.params["log_temperature"]) * log_prob
    return td_target(batch, config.discount, next_v)


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
