"""The jitted online step: insert an env step's transition into each seed's replay buffer, then run the step's `utd`
updates on batches that mix offline data in as `offline_sampling` says, and draw the next actions.

Offline data enters batches by `offline_sampling`:
- `none`: online buffer only;
- `union`: uniform over offline + online transitions, as if the offline data sat in the replay buffer;
- `symmetric`: half of every batch offline, half online;
- `recent`: SUNG's replay: 1 - `offline_fraction` of every batch (once the buffer holds that many) from the buffer's
  newest `recent_steps` steps, the rest uniform over offline + online transitions.
Which one an algorithm uses is its registry record's (`o2o algos`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from o2o.data import replay
from o2o.train import lockstep

SAMPLING = ("none", "union", "symmetric", "recent")


def replay_batch(buffer: replay.ReplayBuffer, offline_data: dict, key: jax.Array, batch_size: int, sampling: str,
                 window: int = 1, offline_fraction: float = 0.1, recent_steps: int = 20_000) -> dict:
    """One batch of the replay buffer with the offline data mixed in as `sampling` says; rows of `window` consecutive
    steps where window > 1 (not with `recent`). `offline_fraction` and `recent_steps`: `recent`'s mix."""

    def rows(first):
        """The rows of each batch row's window: (batch,) first rows, or (batch, window) consecutive ones."""
        return first if window == 1 else first[:, None] + jnp.arange(window)

    def online_rows(size, key):
        if window == 1:
            return replay.sample(buffer, key, size)
        first = jax.random.randint(key, (size,), 0, jnp.maximum(buffer.size - window + 1, 1))
        return {k: v[rows(first)] for k, v in buffer.data.items()}

    if sampling == "none":
        return online_rows(batch_size, key)
    n_offline = offline_data["rewards"].shape[0]
    if sampling == "symmetric":
        k1, k2 = jax.random.split(key)
        half = batch_size // 2
        online = online_rows(batch_size - half, k1)
        index = rows(jax.random.randint(k2, (half,), 0, n_offline - window + 1))
        return {k: jnp.concatenate([offline_data[k][index], online[k]]) for k in online}

    def union_rows(key):
        # windows may run from the offline data's last episode into the buffer's first: as one buffer holding both
        index = rows(jax.random.randint(key, (batch_size,), 0, n_offline + buffer.size - window + 1))
        from_offline = index < n_offline
        off = {k: v[jnp.minimum(index, n_offline - 1)] for k, v in offline_data.items()}
        on = {k: v[jnp.clip(index - n_offline, 0, None)] for k, v in buffer.data.items()}
        return {k: jnp.where(from_offline.reshape(index.shape + (1,) * (off[k].ndim - index.ndim)), off[k], on[k])
                for k in on}

    if sampling == "union":
        return union_rows(key)
    assert sampling == "recent" and window == 1, (sampling, window)
    union_key, recent_key = jax.random.split(key)
    back = jax.random.randint(recent_key, (batch_size,), 0, jnp.maximum(jnp.minimum(buffer.size, recent_steps), 1))
    newest = {k: v[(buffer.insert_index - 1 - back) % v.shape[0]] for k, v in buffer.data.items()}
    # the last rows online (as SUNG's OORB lays its batches out), as many as the buffer holds up to their share
    online = jnp.minimum(int((1.0 - offline_fraction) * batch_size), buffer.size)
    from_newest = jnp.arange(batch_size) >= batch_size - online
    return {k: jnp.where(from_newest.reshape((batch_size,) + (1,) * (v.ndim - 1)), newest[k], v)
            for k, v in union_rows(union_key).items()}


def make_env_step(agent, batch_size: int, utd: int, sampling: str, learn: bool, random_actions: bool,
                  window: int = 1, offline_fraction: float = 0.1, recent_steps: int = 20_000, bonus=None):
    """(state, buffer, transition, next_obs, seed_key, step, offline_data, memory, t, last_reward) -> (state, buffer,
    next_action, memory, metrics), vmapped over seeds; the step's key is fold_in(seed_key, step). Batch rows are windows
    of `window` consecutive steps where the agent's are (`Agent.window`). `memory`, `t` and `last_reward`: what an agent
    that acts on the episode so far (`act_in_episode`) is given for the next action (else an empty memory). `bonus`:
    (state, batch) -> (batch, metrics), a reward bonus applied to every batch before its update
    (`o2o.agents.reward_bonus`), or None. Buffer and state are donated (updated in place)."""

    def update(state, xs):
        batch, key = xs
        bonus_metrics = {}
        if bonus is not None:  # from the state before this update, as its critic target is
            batch, bonus_metrics = bonus(state, batch)
        state, metrics = agent.update(state, batch, key)
        return state, {**metrics, **bonus_metrics}

    def learn_and_act(state, buffer, next_obs, seed_key, step, offline_data, memory, t, last_reward):
        update_key, act_key = step_keys(seed_key, step)
        metrics = {}
        if learn:
            sample_keys, update_keys = jnp.moveaxis(jax.vmap(jax.random.split)(jax.random.split(update_key, utd)), 1, 0)
            # all batches are gathered before the scan, so the buffer never enters the loop's state
            batches = jax.vmap(lambda k: replay_batch(buffer, offline_data, k, batch_size, sampling, window,
                                                      offline_fraction, recent_steps))(sample_keys)
            state, metrics = jax.lax.scan(update, state, (batches, update_keys))
            metrics = jax.tree.map(jnp.nanmean, metrics)
        return state, (*_next_action(agent, state, next_obs, act_key, random_actions, memory, t, last_reward), metrics)

    # Two calls, not one: a buffer that is both written in place and read for batches in one XLA program gets copied
    # whole on every step (20 ms per env step at 1M Hopper transitions on CPU).
    insert = jax.jit(jax.vmap(replay.add), donate_argnums=(0,))
    learn_and_act = jax.jit(lockstep.vmap_seeds(learn_and_act, in_axes=(0, 0, 0, None, None, 0, 0, 0)),
                            donate_argnums=(0,))

    def env_step(state, buffer, transition, next_obs, seed_key, step, offline_data, memory, t, last_reward):
        buffer = insert(buffer, transition)
        state, (next_action, memory, metrics) = learn_and_act(state, buffer, next_obs, seed_key, step, offline_data,
                                                              memory, t, last_reward)
        return state, buffer, next_action, memory, metrics

    return env_step


def step_keys(seed_key: jax.Array, step) -> tuple[jax.Array, jax.Array]:
    """(update key, action key) of env step `step` for one seed."""
    return tuple(jax.random.split(jax.random.fold_in(seed_key, step)))


def _next_action(agent, state, observation: jax.Array, key: jax.Array, random_actions: bool, memory, t: jax.Array,
                 last_reward: jax.Array) -> tuple[jax.Array, object]:
    """One seed's action in [-1, 1] and its episode memory: uniform during a random warm-up (the memory kept up to
    date all the same), else the agent's exploring policy; step t of its episode (`act_in_episode`)."""
    action = None
    if agent.act_in_episode is None:
        if not random_actions:
            action = agent.act(state, observation[None], key, False)[0]
    else:
        action, memory = agent.act_in_episode(state, memory, observation, last_reward, t, key)
    if random_actions:
        action = jax.random.uniform(key, (state.spec.action_dim,), minval=-1.0, maxval=1.0)
    return action, memory


def empty_memory(agent, states):
    """Every seed's empty episode memory (stacked), or () where the agent acts without one."""
    return () if agent.begin_episode is None else jax.vmap(agent.begin_episode)(states)


def first_action(agent, states, obs, seed_keys, step: int, random_actions: bool, memory, t, last_reward):
    """The action (and memory) at `step` before any env step of this process, drawn exactly as `make_env_step`
    draws it."""
    def one(state, o, seed_key, memory, t, last_reward):
        return _next_action(agent, state, o, step_keys(seed_key, step)[1], random_actions, memory, t, last_reward)

    return jax.jit(jax.vmap(one))(states, obs, seed_keys, memory, t, last_reward)
