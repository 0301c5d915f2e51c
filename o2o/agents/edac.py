"""SAC-N and EDAC — An et al., "Uncertainty-Based Offline Reinforcement Learning with Diversified Q-Ensemble",
NeurIPS 2021; LB-SAC — Nikulin et al., "Q-Ensemble for Offline RL: Don't Scale the Ensemble, Scale the Batch Size",
2022 (SAC-N with a large batch and square-root-scaled learning rates; a registry variant of this file).

SAC with N critics (one vmapped call), pessimistic through the ensemble's minimum:
    y = r + gamma (1 - d) (min_{j=1..N} Q_targ_j(s', a') - alpha log pi(a'|s')),  a' ~ pi(s')
    L_Q = sum_i E[(Q_i(s, a) - y)^2] + eta ES(s, a)                              (SAC-N: eta = 0)
    L_pi = E[alpha log pi(a|s) - min_i Q_i(s, a)],  a ~ pi(s);  temperature: SAC's
EDAC's ensemble-similarity term diversifies the critics' action gradients on dataset pairs (paper, Eq. 4):
    ES(s, a) = 1 / (N - 1) sum_{i != j} <g_i, g_j>,  g_i = grad_a Q_i(s, a) / ||grad_a Q_i(s, a)||
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
GRADIENT_NORM_EPSILON = 1e-10  # guards g_i / ||g_i|| for a flat critic (EDAC's code)


@dataclasses.dataclass(frozen=True)
class Config(sac.Config):
    hidden_dims: tuple[int, ...] = (256, 256, 256)
    """Hidden layer widths of actor and critics: three layers of 256 (paper, Appendix C)."""
    num_critics: int = 10
    """Critics N in the ensemble (paper, Table 5: 10 to 500 for SAC-N, 10 to 50 for EDAC, per dataset)."""
    critic_subset: int | None = None
    """None: the target takes the minimum over all N critics (paper, Eq. 2)."""
    eta: float = 0.0
    """Weight of EDAC's ensemble-similarity term; 0 is SAC-N (paper, Table 5: 1.0 for most MuJoCo datasets)."""


def ensemble_similarity(state: State, params, obs: jax.Array, actions: jax.Array) -> jax.Array:
    """ES(s, a) averaged over the batch: the critics' normalized action gradients, summed pairwise dot products."""
    n = state.config.num_critics
    per_critic = state.critic.module.clone(shared_inputs=False)
    tiled_obs, tiled_actions = (jnp.broadcast_to(x, (n,) + x.shape) for x in (obs, actions))
    q_sum = lambda a: per_critic.apply({"params": params}, tiled_obs, a).sum()  # noqa: E731
    grads = jax.grad(q_sum)(tiled_actions)  # (N, batch, action_dim): grad_a Q_i at each critic's own copy of a
    # sqrt(max(|g|^2, tiny)): the norm's derivative at g = 0 (a critic flat in a, e.g. all ReLUs off) is NaN otherwise
    norms = jnp.sqrt(jnp.maximum((grads**2).sum(axis=-1, keepdims=True), jnp.finfo(grads.dtype).tiny))
    grads = grads / (norms + GRADIENT_NORM_EPSILON)
    cosines = jnp.einsum("ibk,jbk->bij", grads, grads)
    off_diagonal = cosines.sum(axis=(1, 2)) - jnp.trace(cosines, axis1=1, axis2=2)
    return off_diagonal.mean() / (n - 1)


def update(state: State, batch: dict, key: jax.Array) -> tuple[State, dict]:
    config = state.config
    target_key, actor_key = jax.random.split(key)
    obs, next_obs = state.normalizer(batch["observations"]), state.normalizer(batch["next_observations"])
    target = sac.critic_target(state, batch, next_obs, target_key)

    def critic_loss_fn(params):
        q = state.critic(obs, batch["actions"], params=params)  # (N, batch)
        td = ensemble_squared_error(q, target)
        if config.eta == 0.0:
            return td, {"q": q.mean(), "q_std": q.std(axis=0).mean()}
        similarity = ensemble_similarity(state, params, obs, batch["actions"])
        return td + config.eta * similarity, {"q": q.mean(), "q_std": q.std(axis=0).mean(), "ensemble_similarity": similarity}

    return sac.critic_then_actor(state, critic_loss_fn, obs, actor_key)
