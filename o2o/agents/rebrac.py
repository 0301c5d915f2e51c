"""ReBRAC — Tarasov et al., "Revisiting the Minimalist Approach to Offline Reinforcement Learning", NeurIPS 2023.

TD3+BC with decoupled behaviour penalties in both losses, LayerNorm critics, deeper networks, a large batch and EDAC's
initialisation. With a' = clip(pi_targ(s') + clip(eps, -c, c), -1, 1) (TD3's smoothing) and a'_D the dataset's next
action:
    y = r + gamma (1 - d) (min_j Q_targ_j(s', a') - beta_critic ||a' - a'_D||^2)
    L_Q = sum_i E[(Q_i(s, a) - y)^2]
    L_pi = E[beta_actor ||pi(s) - a||^2 - lambda min_i Q_i(s, pi(s))],  lambda = 1 / E|min_i Q_i(s, pi(s))| (no gradient)
Where a'_D is unknown (the episode was cut or the data ends there) the critic penalty is 0.
Fine-tuning (the authors' code): the critic penalty is dropped and beta_actor decays linearly over the online updates
to `actor_bc_min_scale` of its offline value; half of every batch is offline data.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from o2o.agents import td3_bc
from o2o.agents.common import td_target, transform_rewards
from o2o.data import Dataset

State = td3_bc.State
init = td3_bc.init
act = td3_bc.act
q_values = td3_bc.q_values


@dataclasses.dataclass(frozen=True)
class Config(td3_bc.Config):
    actor_lr: float = 1e-3
    """Adam learning rate of the actor (paper, Table 7)."""
    critic_lr: float = 1e-3
    """Adam learning rate of the critics (paper, Table 7)."""
    hidden_dims: tuple[int, ...] = (256, 256, 256)
    """Hidden layer widths of actor and critics: three layers of 256 (paper, Table 7)."""
    batch_size: int = 1024
    """Transitions per update (paper, Table 7)."""
    critic_layer_norm: bool = True
    """LayerNorm in the critics (paper, Sec. 4)."""
    critic_norm_after_activation: bool = True
    """Dense -> ReLU -> LayerNorm in each hidden critic layer, as the authors' code."""
    edac_init: bool = True
    """EDAC's initialisation, as the authors' code."""
    normalize_observations: bool = False
    """The authors' code does not standardize states for gym locomotion."""
    actor_bc_coef: float = 0.01
    """beta_actor: weight of ||pi(s) - a||^2 in the actor loss; per dataset in the presets (paper, Table 8)."""
    critic_bc_coef: float = 0.01
    """beta_critic: weight of ||a' - a'_D||^2 in the target; per dataset in the presets (paper, Table 8)."""
    exploration_noise: float = 0.03
    """Std of the Gaussian noise added to actions when acting online (the authors' fine-tuning code)."""
    normalize_q: bool = True
    """Divide the actor's Q term by E|Q| (lambda), as TD3+BC does (paper, Table 7)."""
    actor_bc_decay_steps: int = 0
    """Updates over which beta_actor decays linearly (set to the online updates when fine-tuning); 0: no decay."""
    actor_bc_min_scale: float = 0.5
    """The fraction of beta_actor the decay stops at (CORL's fine-tuning code)."""
    reward_scale: float = 1.0
    """Rewards are trained on multiplied by this, online too (the authors' AntMaze configs: 100, "like in LAPO")."""


def prepare_dataset(dataset: Dataset, config: Config) -> Dataset:
    return transform_rewards(dataset, config.reward_scale, 0.0)


def transition_fields(config: Config) -> tuple[str, ...]:
    return ("next_actions",)


def online_overrides(updates: int, config: Config) -> dict:
    """Config changes for fine-tuning with `updates` online updates (the authors' fine-tuning code)."""
    return {"critic_bc_coef": 0.0, "actor_bc_decay_steps": updates}


def update(state: State, batch: dict, key: jax.Array) -> tuple[State, dict]:
    config = state.config
    obs, next_obs, actions = batch["observations"], batch["next_observations"], batch["actions"]
    obs, next_obs = state.normalizer(obs), state.normalizer(next_obs)

    next_actions = td3_bc.smoothed_target_actions(state, next_obs, key)
    penalty = jnp.nan_to_num(((next_actions - batch["next_actions"]) ** 2).sum(axis=-1), nan=0.0)
    next_q = state.critic(next_obs, next_actions, params=state.target_critic_params).min(axis=0)
    target = td_target(batch, config.discount, next_q - config.critic_bc_coef * penalty)
    critic, critic_loss, critic_info = td3_bc.critic_step(state, obs, actions, target)

    decay = 1.0
    if config.actor_bc_decay_steps:
        decay = jnp.maximum(config.actor_bc_min_scale, 1.0 - state.step / config.actor_bc_decay_steps)
    actor_bc_coef = config.actor_bc_coef * decay

    def actor_loss_fn(params):
        pi = state.actor(obs, params=params)
        q = critic(obs, pi).min(axis=0)
        bc = ((pi - actions) ** 2).sum(axis=-1).mean()
        lmbda = jax.lax.stop_gradient(1.0 / jnp.abs(q).mean()) if config.normalize_q else 1.0
        return actor_bc_coef * bc - lmbda * q.mean(), {"bc_loss": bc, "actor_bc_coef": actor_bc_coef}

    state, actor_info = td3_bc.delayed_actor_step(state.replace(critic=critic, step=state.step + 1), actor_loss_fn)
    return state, {"critic_loss": critic_loss, "critic_penalty": penalty.mean(), **critic_info, **actor_info}
