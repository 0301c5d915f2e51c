"""The jitted online step: insert an env step's transition into each seed's replay buffer, then run the step's `utd`
updates on batches that mix offline data in as `offline_sampling` says, and draw the next actions.

Offline data enters batches by `offline_sampling`:
- `none`: online buffer only;
- `union`: uniform over offline + online transitions, as if the offline data sat in the replay buffer;
- `symmetric`: half of every batch offline, half online.
Which one an algorithm uses is its registry record's (`o2o algos`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from o2o.data import replay
from o2o.train import lockstep

SAMPLING = ("none", "union", "symmetric")


def make_env_step(agent, batch_size: int, utd: int, sampling: str, learn: bool, random_actions: bool):
    """(state, buffer, transition, next_obs, seed_key, step, offline_data) -> (state, buffer, next_action, metrics),
    vmapped over seeds; the step's key is fold_in(seed_key, step). Buffer and state are donated (updated in place)."""

    def sample_batch(buffer, offline_data, key):
        if sampling == "none":
            return replay.sample(buffer, key, batch_size)
        n_offline = offline_data["rewards"].shape[0]
        if sampling == "symmetric":
            k1, k2 = jax.random.split(key)
            half = batch_size // 2
            online = replay.sample(buffer, k1, batch_size - half)
            index = jax.random.randint(k2, (half,), 0, n_offline)
            return {k: jnp.concatenate([offline_data[k][index], online[k]]) for k in online}
        index = jax.random.randint(key, (batch_size,), 0, n_offline + buffer.size)
        from_offline = index < n_offline
        off = {k: v[jnp.minimum(index, n_offline - 1)] for k, v in offline_data.items()}
        on = {k: v[jnp.clip(index - n_offline, 0, None)] for k, v in buffer.data.items()}
        return {k: jnp.where(from_offline.reshape((-1,) + (1,) * (off[k].ndim - 1)), off[k], on[k]) for k in on}

    def learn_and_act(state, buffer, next_obs, seed_key, step, offline_data):
        update_key, act_key = step_keys(seed_key, step)
        metrics = {}
        if learn:
            sample_keys, update_keys = jnp.moveaxis(jax.vmap(jax.random.split)(jax.random.split(update_key, utd)), 1, 0)
            # all batches are gathered before the scan, so the buffer never enters the loop's state
            batches = jax.vmap(lambda k: sample_batch(buffer, offline_data, k))(sample_keys)
            state, metrics = jax.lax.scan(lambda state, xs: agent.update(state, *xs), state, (batches, update_keys))
            metrics = jax.tree.map(jnp.nanmean, metrics)
        return state, (_next_action(agent, state, next_obs, act_key, random_actions), metrics)

    # Two calls, not one: a buffer that is both written in place and read for batches in one XLA program gets copied
    # whole on every step (20 ms per env step at 1M Hopper transitions on CPU).
    insert = jax.jit(jax.vmap(replay.add), donate_argnums=(0,))
    learn_and_act = jax.jit(lockstep.vmap_seeds(learn_and_act, in_axes=(0, 0, 0, None, None)), donate_argnums=(0,))

    def env_step(state, buffer, transition, next_obs, seed_key, step, offline_data):
        buffer = insert(buffer, transition)
        state, (next_action, metrics) = learn_and_act(state, buffer, next_obs, seed_key, step, offline_data)
        return state, buffer, next_action, metrics

    return env_step


def step_keys(seed_key: jax.Array, step) -> tuple[jax.Array, jax.Array]:
    """(update key, action key) of env step `step` for one seed."""
    return tuple(jax.random.split(jax.random.fold_in(seed_key, step)))


def _next_action(agent, state, observation: jax.Array, key: jax.Array, random_actions: bool) -> jax.Array:
    """One seed's action in [-1, 1]: uniform during a random warm-up, else the agent's exploring policy."""
    if random_actions:
        return jax.random.uniform(key, (state.spec.action_dim,), minval=-1.0, maxval=1.0)
    return agent.act(state, observation[None], key, False)[0]


def first_action(agent, states, obs, seed_keys, step: int, random_actions: bool):
    """The action at `step` before any env step of this process, drawn exactly as `make_env_step` draws it."""
    def one(state, o, seed_key):
        return _next_action(agent, state, o, step_keys(seed_key, step)[1], random_actions)

    return jax.jit(jax.vmap(one))(states, obs, seed_keys)
