"""The offline loop's fused chunks: `chunk` updates in one `lax.scan` per host call, batches sampled inside it, seeds
vmapped, and the random key of each update."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from o2o.data import samplers
from o2o.train import lockstep

KEYS_BY_UPDATE, KEYS_BY_CHUNK = "update", "chunk"  # OfflineSettings.keys_by


def update_keys(stream, position, size: int, keys_by: str = KEYS_BY_UPDATE):
    """The keys of `size` consecutive updates. By update: update u's key is fold_in(stream, u), `position` the first u.
    By chunk (runs recorded before 2026-12-08): `position` is the chunk's index, its keys split from fold_in(stream,
    position), so they depended on where chunks ended."""
    if keys_by == KEYS_BY_CHUNK:
        return jax.random.split(jax.random.fold_in(stream, position), size)
    return jax.vmap(lambda u: jax.random.fold_in(stream, u))(position + jnp.arange(size, dtype=jnp.uint32))


def chunk_size(step: int, steps: int, chunk: int, eval_every: int) -> int:
    """The size of the chunk that starts at `step`: at most `chunk` updates, ending at the next evaluation or the end
    (with eval_every 1024 and chunk 1000: 1000, then 24; at most three sizes are compiled)."""
    next_evaluation = (step // eval_every + 1) * eval_every
    return min(chunk, next_evaluation - step, steps - step)


def make_train_chunk(agent, config, chunk: int, keys_by: str = KEYS_BY_UPDATE) -> Callable:
    """(states, seed_keys, position, data, trajectories=None) -> (states, metrics averaged over the chunk), vmapped
    over seeds; `position`: the chunk's first update (its index with keys_by "chunk": `update_keys`). With
    `trajectories` (a weighted sampler's table on the device) its draw replaces the agent's."""

    def one_seed(state, seed_key, position, data, trajectories):
        keys = update_keys(jax.random.fold_in(seed_key, 1), position, chunk, keys_by)

        def batch(key):
            if trajectories is None:
                return agent.sample_batch(config, data, key)
            index = samplers.draw(trajectories, key, config.batch_size)
            return jax.tree.map(lambda x: x[index], data)

        def step(state, key):
            sample_key, update_key = jax.random.split(key)
            return agent.update(state, batch(sample_key), update_key)

        state, metrics = jax.lax.scan(step, state, keys)
        return state, jax.tree.map(jnp.nanmean, metrics)

    def seeds(states, seed_keys, position, data, trajectories=None):
        return lockstep.vmap_seeds(one_seed, in_axes=(0, None, None, None))(states, seed_keys, position, data,
                                                                           trajectories)

    return jax.jit(seeds, donate_argnums=(0,))
