"""SUNG on CQL — Guo et al., "A Simple Unified Uncertainty-Guided Framework for Offline-to-Online Reinforcement
Learning", IEEE TNNLS 2025 (arXiv 2306.07541), as the authors' code computes it (guosyjlu/SUNG, CQL/: its
ConservativeSAC.train with constrained="prob" and select_exploration_action with order "uq", strategy "prob").

Uncertainty: SUNG's VAE (o2o.agents.sung) over x = [standardized s, a], u(s, a) its per-dimension negative ELBO, trained
on every batch beside the agent. Critics, actor and temperature: CQL's (o2o.agents.cql), with the conservative term on
K = int(fraction * batch) samples drawn with replacement by softmax(u(s_i, a_i)) over the batch's data actions and
weighted by lambda:
    L_Q = sum_i E[(Q_i(s, a) - y)^2] + alpha lambda sum_i mean_{k in K} [R(s_k) - Q_i(s_k, a_k)]
Offline (fraction 1, lambda 1) every sample once: CQL. Fine-tuning (the authors' prob = lamda = 0.1): the term on a
tenth of each batch, drawn towards the rarest transitions.
Acting online (optimistic exploration): `num_candidates` actions a ~ pi(.|s), the `top_uncertain` of them with the
largest u(s, a), one of those drawn with probabilities softmax(min_i Q_i(s, a)).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from flax import struct

from o2o.agents import cql, sac, sung
from o2o.agents.common import Network, ObservationNormalizer, Spec, ensemble_q_values, ensemble_squared_error


@dataclasses.dataclass(frozen=True)
class Config(cql.Config, sung.DensityConfig):
    conservative_weight: float = 1.0
    """lambda, multiplies cql_alpha: 1 offline (CQL); fine-tuning 0.1 (the authors' lamda)."""
    uncertain_fraction: float = 1.0
    """Share of the batch drawn by softmax(u(s, a)) for the conservative term: 1 offline (every sample once);
    fine-tuning 0.1 (the authors' prob)."""
    top_uncertain: int = 20
    """Candidates kept by u (the rarest) before one is drawn by softmax(min Q) (the authors' topk)."""


@struct.dataclass
class State(sac.State):
    vae: Network
    density_normalizer: ObservationNormalizer  # the VAE's standardized states (the critics see them as configured)


prepare_dataset = cql.prepare_dataset  # the authors' CQL/main.py: rewards * reward_scale + reward_bias (AntMaze 10, -5)


def init(key: jax.Array, spec: Spec, config: Config = Config()) -> State:
    cql_key, vae_key = jax.random.split(key)
    base = sac.init(cql_key, spec, config)  # CQL's networks (its Lagrange multiplier is not SUNG's)
    return State(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)},
                 vae=sung.vae_network(vae_key, spec, config),
                 density_normalizer=ObservationNormalizer.from_spec(spec, True))


def uncertain_samples_draw(key: jax.Array, shape: tuple[int, ...], logits: jax.Array) -> jax.Array:
    """Batch indices drawn with replacement with probabilities softmax(logits) (named so that tests/test_parity.py can
    inject the reference's)."""
    return jax.random.categorical(key, logits, shape=shape)


def update(state: State, batch: dict, key: jax.Array) -> tuple[State, dict]:
    config = state.config
    target_key, random_key, pi_key, next_pi_key, actor_key, rank_key, choice_key, vae_key = jax.random.split(key, 8)
    obs, next_obs = state.normalizer(batch["observations"]), state.normalizer(batch["next_observations"])
    density_obs, actions = state.density_normalizer(batch["observations"]), batch["actions"]
    target = sac.critic_target(state, batch, next_obs, target_key)
    batch_size = obs.shape[0]
    kept = max(1, int(config.uncertain_fraction * batch_size))
    if kept < batch_size:
        noise = sung.uncertainty_noise_draw(rank_key, (batch_size, sung.latent_dim(config, state.spec)))
        u = sung.uncertainty(state, state.vae.params, density_obs, actions, noise)
        chosen = uncertain_samples_draw(choice_key, (kept,), u)
    else:
        chosen = slice(None)  # every sample once (CQL), without a gather of the batch
    proposals = cql.proposal_actions(state, obs[chosen], next_obs[chosen], random_key, pi_key, next_pi_key)

    def critic_loss_fn(params):
        pushed_down = cql.soft_maximum(state, params, proposals)  # (num_critics, kept)
        q_data = state.critic(obs, actions, params=params)  # (num_critics, batch)
        td = ensemble_squared_error(q_data, target)
        conservative = (pushed_down - q_data[:, chosen]).mean(axis=1).sum()
        loss = td + config.cql_alpha * config.conservative_weight * conservative
        return loss, {"td_loss": td, "conservative_loss": conservative, "q": q_data.mean()}

    vae, vae_loss = sung.train_vae(state, density_obs, actions, vae_key)
    state, info = sac.critic_then_actor(state, critic_loss_fn, obs, actor_key)
    return state.replace(vae=vae), {**info, "vae_loss": vae_loss}


def online_overrides(updates: int, config: Config) -> dict:
    """The authors' fine-tuning: the conservative term at lambda 0.1 on a tenth of each batch, drawn towards rare
    transitions."""
    return {"conservative_weight": 0.1, "uncertain_fraction": 0.1}


def begin_finetuning(carried: State, fresh: State) -> State:
    """The authors' CQL/main.py: their `load` restores the actor and the critics alone (its optimiser loads are
    commented out), copies the targets from the critics and keeps alpha's new Scalar(0) (alpha 1); the VAE's Adam
    starts afresh."""
    if not carried.config.restart_as_authors:
        return carried
    restart = lambda name: getattr(carried, name).replace(opt_state=getattr(fresh, name).opt_state)  # noqa: E731
    return carried.replace(actor=restart("actor"), critic=restart("critic"), vae=restart("vae"),
                           log_temperature=fresh.log_temperature, target_critic_params=carried.critic.params)


def candidate_noise_draw(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """The standard normal noise of the candidates a ~ pi(.|s) when acting online."""
    return jax.random.normal(key, shape)


def explore(state: State, obs: jax.Array, density_obs: jax.Array, key: jax.Array) -> jax.Array:
    """One state's exploratory action (`obs` as the actor sees it, `density_obs` as the VAE does): the `top_uncertain`
    rarest of `num_candidates` policy samples, one of them drawn by softmax(min Q)."""
    config = state.config
    noise_key, vae_key, pick_key = jax.random.split(key, 3)
    n = config.num_candidates
    repeated = jnp.broadcast_to(obs, (n, obs.shape[-1]))
    candidates, _ = sac.policy_sample(state, repeated, noise_key, draw=candidate_noise_draw)
    vae_noise = jax.random.normal(vae_key, (n, sung.latent_dim(config, state.spec)))
    rarity = sung.uncertainty(state, state.vae.params, jnp.broadcast_to(density_obs, (n, density_obs.shape[-1])),
                              candidates, vae_noise)
    rarest = jax.lax.top_k(rarity, config.top_uncertain)[1]
    q = state.critic(repeated[rarest], candidates[rarest]).min(axis=0)
    return candidates[rarest][jax.random.categorical(pick_key, q)]


def act(state: State, observations: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
    if deterministic:
        return sac.act(state, observations, key, True)
    obs = state.normalizer(observations).reshape(-1, observations.shape[-1])
    density_obs = state.density_normalizer(observations).reshape(obs.shape)
    actions = jax.vmap(functools.partial(explore, state))(obs, density_obs, jax.random.split(key, obs.shape[0]))
    return actions.reshape(observations.shape[:-1] + (state.spec.action_dim,))


q_values = ensemble_q_values
