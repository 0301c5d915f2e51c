"""SUNG — Guo et al., "A Simple Unified Uncertainty-Guided Framework for Offline-to-Online Reinforcement Learning",
IEEE TNNLS 2025 (arXiv 2306.07541), on TD3+BC, as the authors' code computes it (guosyjlu/SUNG, TD3_BC/); its density
model is shared with SUNG on CQL (o2o.agents.sung_cql).

Uncertainty: a VAE over x = [s, a] (states standardized), u(s, a) = mean_j (x_j - dec(z)_j)^2 + beta mean_l KL_l(s, a)
with one draw z = mu(x) + sigma(x) eps (the authors' elbo_loss: a per-dimension negative ELBO, higher = rarer), trained
on every batch to minimise E[u] (offline beside TD3+BC, online on the replay batches).
Critic: TD3's. Actor, every `policy_frequency` updates, lambda = alpha / E|Q_1(s, pi(s))| (no gradient):
    L_pi = -lambda E[Q_1(s, pi(s))] + w mean_{i in K} mean_j (pi(s_i)_j - a_ij)^2
    K: the int(fraction * batch) samples of largest u(s_i, pi(s_i)) (offline w = 1, fraction = 1: TD3+BC;
    online w = 0.05, fraction = 0.05: the conservative term on the rarest policy actions only).
Acting online (optimistic exploration): `num_candidates` actions pi(s) + N(0, sigma^2), the `top_q` of them with the
largest Q_1, one of those drawn with probabilities softmax(u) (the rarer, the likelier), clipped to [-1, 1].
"""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from o2o.agents import td3_bc
from o2o.agents.common import Network, Spec, ensemble_q_values, td_target, value_and_grad
from o2o.nets import MLP

LOG_STD_MIN, LOG_STD_MAX = -4.0, 15.0  # the authors' VAE clamps its encoder's log std here


@dataclasses.dataclass(frozen=True)
class DensityConfig:
    """SUNG's density model and candidate actions, on either base algorithm (sung: TD3+BC; sung_cql: CQL)."""

    vae_hidden_dims: tuple[int, ...] = (750, 750)
    """Hidden layer widths of the VAE's encoder and decoder (the authors' vae.py)."""
    vae_latent_per_action_dim: int = 2
    """Latent size of the VAE as a multiple of the action dimension (2 A, the authors' code)."""
    vae_lr: float = 1e-3
    """Adam learning rate of the VAE (offline and online)."""
    vae_kl_weight: float = 0.5
    """beta, weight of the KL term in u and in the VAE's loss."""
    num_candidates: int = 100
    """Candidate actions drawn per state when acting online."""
    restart_as_authors: bool = True
    """Fine-tuning restarts what the authors' loops do (their `load`): the VAE's Adam state afresh, the targets copied
    from the networks; on CQL also every Adam state afresh and the temperature at 1. False: all carries on."""


@dataclasses.dataclass(frozen=True)
class Config(td3_bc.Config, DensityConfig):
    bc_weight: float = 1.0
    """w, weight of the BC term: 1 offline (TD3+BC); fine-tuning 0.05 (the authors' lamda)."""
    uncertain_fraction: float = 1.0
    """Share of the batch (largest u(s, pi(s)) first) the BC term reads: 1 offline; fine-tuning 0.05 (filter_prob)."""
    top_q: int = 10
    """Candidates kept by Q_1 before one is drawn by softmax(u)."""
    exploration_noise: float = 0.1
    """Std of the candidates' noise around pi(s) (the authors' expl_noise)."""


@struct.dataclass
class State(td3_bc.State):
    vae: Network


class VAE(nn.Module):
    """x -> (reconstruction in [-1, 1], latent mean, latent log std): two ReLU layers each side, then the heads."""

    hidden_dims: tuple[int, ...]
    latent_dim: int
    initialisation: str

    @nn.compact
    def __call__(self, x: jax.Array, noise: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        mlp = functools.partial(MLP, initialisation=self.initialisation)
        mean, log_std = jnp.split(mlp(self.hidden_dims, 2 * self.latent_dim)(x), 2, axis=-1)
        log_std = jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)
        z = mean + jnp.exp(log_std) * noise
        return jnp.tanh(mlp(self.hidden_dims, x.shape[-1])(z)), mean, log_std


def latent_dim(config: Config, spec: Spec) -> int:
    return config.vae_latent_per_action_dim * spec.action_dim


def vae_network(key: jax.Array, spec: Spec, config) -> Network:
    """The VAE over [s, a] with its Adam optimiser, its layers initialised as torch.nn.Linear's (the authors' vae.py, in
    both of their variants, whatever the base algorithm's networks use)."""
    obs, act = spec.dummy_inputs()
    module = VAE(config.vae_hidden_dims, latent_dim(config, spec), "pytorch")
    return Network.create(module, optax.adam(config.vae_lr), key, jnp.concatenate([obs, act], axis=-1),
                          jnp.zeros(obs.shape[:-1] + (latent_dim(config, spec),)))


def init(key: jax.Array, spec: Spec, config: Config = Config()) -> State:
    td3_key, vae_key = jax.random.split(key)
    base = td3_bc.init(td3_key, spec, config)
    return State(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)},
                 vae=vae_network(vae_key, spec, config))


def uncertainty(state: State, params, obs: jax.Array, actions: jax.Array, noise: jax.Array) -> jax.Array:
    """u(s, a) per sample: the reconstruction's mean squared error plus beta times the mean KL per latent dimension."""
    x = jnp.concatenate([obs, actions], axis=-1)
    reconstruction, mean, log_std = state.vae(x, noise, params=params)
    kl = (-0.5 * (1.0 + 2.0 * log_std - mean**2 - jnp.exp(2.0 * log_std))).mean(axis=-1)
    return ((reconstruction - x) ** 2).mean(axis=-1) + state.config.vae_kl_weight * kl


def vae_noise_draw(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """eps of the VAE's training step (named so that tests/test_parity.py can inject the reference's draws)."""
    return jax.random.normal(key, shape)


def uncertainty_noise_draw(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """eps of the u that picks the samples SUNG constrains (sung's BC term: u(s, pi(s)); sung_cql's CQL term: u(s, a))."""
    return jax.random.normal(key, shape)


def update(state: State, batch: dict, key: jax.Array) -> tuple[State, dict]:
    config = state.config
    target_key, vae_key, actor_key = jax.random.split(key, 3)
    obs, next_obs = state.normalizer(batch["observations"]), state.normalizer(batch["next_observations"])
    actions = batch["actions"]
    next_q = state.critic(next_obs, td3_bc.smoothed_target_actions(state, next_obs, target_key),
                          params=state.target_critic_params).min(axis=0)
    critic, critic_loss, critic_info = td3_bc.critic_step(state, obs, actions,
                                                          td_target(batch, config.discount, next_q))
    vae, vae_loss = train_vae(state, obs, actions, vae_key)
    kept = max(1, int(config.uncertain_fraction * obs.shape[0]))

    def actor_loss_fn(params):
        pi = state.actor(obs, params=params)
        q = critic(obs, pi)[0]
        squared = (pi - actions) ** 2
        if kept < obs.shape[0]:  # the BC term on the rarest policy actions only
            noise = uncertainty_noise_draw(actor_key, (obs.shape[0], latent_dim(config, state.spec)))
            rarest = jax.lax.top_k(jax.lax.stop_gradient(uncertainty(state, vae.params, obs, pi, noise)), kept)[1]
            squared = squared[rarest]
        bc = squared.mean()
        lmbda = jax.lax.stop_gradient(config.alpha / jnp.abs(q).mean())
        return -lmbda * q.mean() + config.bc_weight * bc, {"bc_loss": bc}

    state = state.replace(critic=critic, vae=vae, step=state.step + 1)
    state, actor_info = td3_bc.delayed_actor_step(state, actor_loss_fn)
    return state, {"critic_loss": critic_loss, "vae_loss": vae_loss, **critic_info, **actor_info}


def train_vae(state, obs: jax.Array, actions: jax.Array, key: jax.Array) -> tuple[Network, jax.Array]:
    """One Adam step of the VAE on E[u(s, a)] over the batch (standardized states); returns it and its loss."""
    noise = vae_noise_draw(key, (obs.shape[0], latent_dim(state.config, state.spec)))
    loss, _, grads = value_and_grad(lambda p: (uncertainty(state, p, obs, actions, noise).mean(), {}), state.vae.params)
    return state.vae.apply_gradients(grads), loss


def online_overrides(updates: int, config: Config) -> dict:
    """The authors' fine-tuning: the BC term at weight 0.05 on the 5% of each batch whose policy actions are rarest."""
    return {"bc_weight": 0.05, "uncertain_fraction": 0.05}


def begin_finetuning(carried: State, fresh: State) -> State:
    """The authors' TD3_BC/main.py loads the VAE afresh beside TD3's `load`, which restores the actor, the critics and
    their Adam states and copies the targets from them."""
    if not carried.config.restart_as_authors:
        return carried
    return carried.replace(vae=carried.vae.replace(opt_state=fresh.vae.opt_state),
                           target_actor_params=carried.actor.params, target_critic_params=carried.critic.params)


def candidate_noise_draw(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """The candidates' standard normal noise when acting online."""
    return jax.random.normal(key, shape)


def explore(state: State, obs: jax.Array, key: jax.Array) -> jax.Array:
    """One standardized state's exploratory action: the best `top_q` of `num_candidates` noisy policy actions by Q_1,
    one of them drawn by softmax(u)."""
    config = state.config
    noise_key, vae_key, pick_key = jax.random.split(key, 3)
    candidates = state.actor(obs[None])[0] + config.exploration_noise * candidate_noise_draw(
        noise_key, (config.num_candidates, state.spec.action_dim))
    repeated = jnp.broadcast_to(obs, (config.num_candidates, obs.shape[-1]))
    best = candidates[jax.lax.top_k(state.critic(repeated, candidates)[0], config.top_q)[1]]
    rarity = uncertainty(state, state.vae.params, repeated[:config.top_q], best,
                         jax.random.normal(vae_key, (config.top_q, latent_dim(config, state.spec))))
    return jnp.clip(best[jax.random.categorical(pick_key, rarity)], -1.0, 1.0)


def act(state: State, observations: jax.Array, key: jax.Array, deterministic: bool = True) -> jax.Array:
    obs = state.normalizer(observations)
    if deterministic:
        return state.actor(obs)
    flat = obs.reshape(-1, obs.shape[-1])
    actions = jax.vmap(functools.partial(explore, state))(flat, jax.random.split(key, flat.shape[0]))
    return actions.reshape(obs.shape[:-1] + (state.spec.action_dim,))


q_values = ensemble_q_values
