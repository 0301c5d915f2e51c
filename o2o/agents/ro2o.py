"""RO2O — Wen et al., "Towards Robust Offline-to-Online Reinforcement Learning via Uncertainty and Smoothness", 2023.

SAC-N (N critics, their minimum in the target and the actor loss) with three terms on states perturbed by n uniform
offsets delta_k in [-eps, eps]^obs_dim, drawn per update and shared by the batch (the authors' get_noised_obs):
    L_Q  = sum_i E[(Q_i(s, a) - y)^2]
         + eta_1 E_s[max_k ((1 - tau) mean_i max(D_ik, 0)^2 + tau mean_i min(D_ik, 0)^2)],       (Q smoothness)
                                                                  D_ik = Q_i(s + delta_k, a) - Q_i(s, a)
         + eta_2 E_{i, s, k}[(Q_i(s', a') - sg(Q_i(s', a') - lambda_t std_j Q_j(s', a')))^2],
                                                           s' = s + delta_k, a' ~ pi(s')    (pessimism off the data)
    L_pi = E[alpha log pi(a|s) - min_i Q_i(s, a)]
         + eta_3 E_s[max_k (KL(pi(s) || pi(s + delta_k)) + KL(pi(s + delta_k) || pi(s)))]  (the pre-tanh Gaussians)
    lambda_t = max(lambda_0 - decay t, lambda_min) after t updates;  temperature: SAC's.
Fine-tuning, as the authors' code (algorithms/finetune/ro2o_ft_mujoco.py): the three terms off, SAC-N on the online
replay alone (`online_overrides`; the registry's recipe).
AntMaze, as the authors' two AntMaze scripts (presets "antmaze-lcb" and "antmaze-min", their README's commands): each
critic regresses to its own target, y_i = r' + gamma (1 - d) (Q_targ_i(s', a') - alpha log pi(a'|s')), on rewards
r' = scale r + bias; the actor loss adds beta_bc E[(a - a_data)^2], a ~ pi(s), and the LCB script's actor maximises
mean_i Q_i + beta std_i Q_i (beta = -4) instead of min_i Q_i. Their fine-tuning (ro2o_ft_ant_LCB.py, _min.py): the
three terms off, rewards 4 (r - 0.5), beta_bc 1 (LCB) or 10 (min).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from o2o.agents import edac, sac
from o2o.agents.common import ensemble_squared_error

State = sac.State
init = sac.init
act = sac.act
q_values = sac.q_values


@dataclasses.dataclass(frozen=True)
class Config(edac.Config):
    normalize_observations: bool = True
    """Standardize states with the offline data's statistics (the authors' code; the offsets are in these units)."""
    q_smooth_weight: float = 1e-4
    """eta_1, weight of the Q-smoothness term (0.0001, a literal in the authors' get_qf_loss)."""
    q_smooth_tau: float = 0.2
    """Share of the Q-smoothness term on perturbed values below the clean one (a literal in get_qf_loss)."""
    ood_weight: float = 0.1
    """eta_2, weight of the pessimism on policy actions at perturbed states (beta_ood)."""
    policy_smooth_weight: float = 1.0
    """eta_3, weight of the policy-smoothness term in the actor loss (beta_policy)."""
    q_smooth_eps: float = 0.01
    """Largest perturbation per state dimension of the Q-smoothness term (standardized units)."""
    ood_smooth_eps: float = 0.01
    """Largest perturbation per state dimension of the pessimism term."""
    policy_smooth_eps: float = 0.01
    """Largest perturbation per state dimension of the policy-smoothness term."""
    num_perturbations: int = 20
    """n, perturbed copies per state in each term (sample_size); the smoothness terms take their worst."""
    ood_uncertainty: float = 1.0
    """lambda_0, the ensemble standard deviations the pessimism target lies below Q at the first update."""
    ood_uncertainty_min: float = 0.1
    """lambda_min, where lambda's linear decay stops."""
    ood_uncertainty_decay: float = 5e-7
    """Decrease of lambda per update."""
    per_critic_targets: bool = False
    """Each critic regresses to its own target critic's value, not the ensemble's minimum (the AntMaze scripts)."""
    actor_std_weight: float | None = None
    """beta: the actor maximises mean_i Q_i + beta std_i Q_i (the AntMaze LCB script: -4); None: min_i Q_i (SAC-N)."""
    bc_weight: float = 0.0
    """beta_bc, weight of E[(a - a_data)^2] in the actor loss, a ~ pi(s) (the AntMaze scripts)."""
    reward_scale: float = 1.0
    """The update trains on reward_scale r + reward_bias (the AntMaze scripts' 4 (r - 0.5): 4 and -2)."""
    reward_bias: float = 0.0
    """Added to the scaled rewards the update trains on (see reward_scale)."""
    finetuning: str = "mujoco"
    """The authors' fine-tuning script `online_overrides` follows: "mujoco", "antmaze-lcb" or "antmaze-min"."""


FINETUNING = {"mujoco": {}, "antmaze-lcb": {"reward_scale": 4.0, "reward_bias": -2.0, "bc_weight": 1.0},
              "antmaze-min": {"reward_scale": 4.0, "reward_bias": -2.0, "bc_weight": 10.0}}


def online_overrides(updates: int, config: Config) -> dict:
    """The authors' fine-tuning (update_online): the three terms dropped, SAC-N's losses alone; their AntMaze scripts
    also train on 4 (r - 0.5) of the online rewards (their offline LCB script on the raw ones) and change beta_bc."""
    return {"q_smooth_weight": 0.0, "ood_weight": 0.0, "policy_smooth_weight": 0.0, **FINETUNING[config.finetuning]}


def q_smooth_perturbation_draw(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """U(0, 1) draws of the Q-smoothness offsets (named so that tests/test_parity.py can inject the reference's)."""
    return jax.random.uniform(key, shape)


def ood_perturbation_draw(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """U(0, 1) draws of the pessimism term's offsets."""
    return jax.random.uniform(key, shape)


def policy_smooth_perturbation_draw(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """U(0, 1) draws of the policy-smoothness offsets."""
    return jax.random.uniform(key, shape)


def ood_action_noise_draw(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """The standard normal noise of a' ~ pi(s + delta_k) in the pessimism term."""
    return jax.random.normal(key, shape)


def perturbed(obs: jax.Array, eps: float, count: int, key: jax.Array, draw) -> jax.Array:
    """(batch * count, obs_dim): every state plus each of `count` offsets 2 eps (u - 0.5), u ~ U(0, 1)^obs_dim drawn
    once for the batch; row b * count + k is state b with offset k (the authors' layout)."""
    offsets = 2.0 * eps * (draw(key, (count, obs.shape[-1])) - 0.5)
    return (obs[:, None, :] + offsets[None]).reshape(-1, obs.shape[-1])


def q_smoothness(state: State, params, obs: jax.Array, actions: jax.Array, q: jax.Array, key: jax.Array) -> jax.Array:
    """E_s[max_k asymmetric squared change of the critics' values under the k-th offset]; q: (N, batch) at (s, a)."""
    config, n = state.config, state.config.num_perturbations
    noisy = perturbed(obs, config.q_smooth_eps, n, key, q_smooth_perturbation_draw)
    change = state.critic(noisy, jnp.repeat(actions, n, axis=0), params=params).reshape(q.shape + (n,)) - q[..., None]
    per_offset = ((1.0 - config.q_smooth_tau) * (jnp.maximum(change, 0.0) ** 2).mean(axis=0)
                  + config.q_smooth_tau * (jnp.minimum(change, 0.0) ** 2).mean(axis=0))  # (batch, n)
    return per_offset.max(axis=-1).mean()


def ood_uncertainty(config: Config, step: jax.Array) -> jax.Array:
    """lambda_t = max(lambda_0 - decay t, lambda_min) after t updates."""
    return jnp.maximum(config.ood_uncertainty - config.ood_uncertainty_decay * step.astype(jnp.float32),
                       config.ood_uncertainty_min)


def ood_penalty(state: State, params, obs: jax.Array, key: jax.Array) -> jax.Array:
    """E[(Q_i - sg(Q_i - lambda_t std Q))^2] at perturbed states and the policy's actions there (the actor is not
    trained by it)."""
    config = state.config
    perturb_key, action_key = jax.random.split(key)
    noisy = perturbed(obs, config.ood_smooth_eps, config.num_perturbations, perturb_key, ood_perturbation_draw)
    actions, _ = sac.policy_sample(state, noisy, action_key, draw=ood_action_noise_draw)
    q = state.critic(noisy, jax.lax.stop_gradient(actions), params=params)  # (N, batch * n)
    target = jax.lax.stop_gradient(q - ood_uncertainty(config, state.step) * q.std(axis=0, ddof=1))
    return ((q - target) ** 2).mean()


def gaussian_kl(mean_p: jax.Array, log_std_p: jax.Array, mean_q: jax.Array, log_std_q: jax.Array) -> jax.Array:
    """KL(N(mean_p, std_p^2) || N(mean_q, std_q^2)) per dimension, (r - 1 - log r + z^2) / 2 with r = std_p^2 / std_q^2
    and z = (mean_p - mean_q) / std_q; r - 1 - log r as expm1(2 d) - 2 d, d = log std_p - log std_q, which keeps its
    digits where the two Gaussians nearly coincide (the term's usual regime: 1 - 1 cancels to nothing in float32)."""
    d = log_std_p - log_std_q
    return 0.5 * (jnp.expm1(2.0 * d) - 2.0 * d + ((mean_p - mean_q) * jnp.exp(-log_std_q)) ** 2)


def policy_smoothness(state: State, params, obs: jax.Array, key: jax.Array) -> jax.Array:
    """E_s[max_k symmetric KL between the policy's Gaussians at s and at s + delta_k] (both sides trained)."""
    config, n = state.config, state.config.num_perturbations
    noisy = perturbed(obs, config.policy_smooth_eps, n, key, policy_smooth_perturbation_draw)
    clean = [jnp.repeat(x, n, axis=0) for x in state.actor(obs, params=params)]
    moved = state.actor(noisy, params=params)
    kl = gaussian_kl(*clean, *moved).sum(axis=-1) + gaussian_kl(*moved, *clean).sum(axis=-1)
    return kl.reshape(obs.shape[0], n).max(axis=-1).mean()


def update(state: State, batch: dict, key: jax.Array) -> tuple[State, dict]:
    config = state.config
    target_key, smooth_key, ood_key, actor_key, policy_key = jax.random.split(key, 5)
    obs, next_obs = state.normalizer(batch["observations"]), state.normalizer(batch["next_observations"])
    if config.reward_scale != 1.0 or config.reward_bias != 0.0:
        batch = {**batch, "rewards": config.reward_scale * batch["rewards"] + config.reward_bias}
    target = sac.critic_target(state, batch, next_obs, target_key, per_critic=config.per_critic_targets)

    def critic_loss_fn(params):
        q = state.critic(obs, batch["actions"], params=params)  # (N, batch)
        loss, info = ensemble_squared_error(q, target), {"q": q.mean(), "q_std": q.std(axis=0).mean()}
        if config.q_smooth_weight > 0:
            info["q_smoothness"] = q_smoothness(state, params, obs, batch["actions"], q, smooth_key)
            loss += config.q_smooth_weight * info["q_smoothness"]
        if config.ood_weight > 0:
            info["ood_penalty"] = ood_penalty(state, params, obs, ood_key)
            loss += config.ood_weight * info["ood_penalty"]
        return loss, info

    def actor_terms(params, actions):
        loss, info = 0.0, {}
        if config.policy_smooth_weight > 0:
            info["policy_smoothness"] = policy_smoothness(state, params, obs, policy_key)
            loss += config.policy_smooth_weight * info["policy_smoothness"]
        if config.bc_weight > 0:
            info["bc_loss"] = ((actions - batch["actions"]) ** 2).mean()
            loss += config.bc_weight * info["bc_loss"]
        return loss, info

    lower_bound = None if config.actor_std_weight is None else (  # torch's std: unbiased
        lambda q: q.mean(axis=0) + config.actor_std_weight * q.std(axis=0, ddof=1))
    return sac.critic_then_actor(state, critic_loss_fn, obs, actor_key,
                                 actor_terms if config.policy_smooth_weight > 0 or config.bc_weight > 0 else None,
                                 lower_bound)
