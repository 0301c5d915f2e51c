"""A device-resident replay buffer: a ring of fixed-size arrays, jitted insert and sample, no Python object per
transition. Functions are pure so that a buffer per seed can be vmapped and carried through `lax.scan`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

TRANSITION_FIELDS = ("observations", "actions", "rewards", "next_observations", "dones")


@struct.dataclass
class ReplayBuffer:
    data: dict  # field -> (capacity, ...) array
    insert_index: jax.Array  # next slot to write
    size: jax.Array  # number of valid transitions


def create(capacity: int, observation_dim: int, action_dim: int, with_returns_to_go: bool = False) -> ReplayBuffer:
    """An empty buffer; `with_returns_to_go` adds Monte-Carlo returns (-inf until the episode ends, see
    `set_returns_to_go`)."""
    data = {
        "observations": jnp.zeros((capacity, observation_dim), jnp.float32),
        "actions": jnp.zeros((capacity, action_dim), jnp.float32),
        "rewards": jnp.zeros((capacity,), jnp.float32),
        "next_observations": jnp.zeros((capacity, observation_dim), jnp.float32),
        "dones": jnp.zeros((capacity,), jnp.float32),
    }
    if with_returns_to_go:
        data["mc_returns"] = jnp.full((capacity,), -jnp.inf, jnp.float32)
    return ReplayBuffer(data, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def add(buffer: ReplayBuffer, transition: dict) -> ReplayBuffer:
    """Insert one transition (each field without the leading capacity axis), overwriting the oldest when full."""
    i = buffer.insert_index
    data = {k: buffer.data[k].at[i].set(transition[k].astype(buffer.data[k].dtype)) for k in TRANSITION_FIELDS}
    if "mc_returns" in buffer.data:  # unknown until the episode ends
        data["mc_returns"] = buffer.data["mc_returns"].at[i].set(-jnp.inf)
    capacity = buffer.data["rewards"].shape[0]
    return ReplayBuffer(data, (i + 1) % capacity, jnp.minimum(buffer.size + 1, capacity))


def sample(buffer: ReplayBuffer, key: jax.Array, batch_size: int) -> dict:
    index = jax.random.randint(key, (batch_size,), 0, jnp.maximum(buffer.size, 1))
    return {k: v[index] for k, v in buffer.data.items()}


def set_returns_to_go(buffer: ReplayBuffer, slots: jax.Array, values: jax.Array) -> ReplayBuffer:
    """Write the Monte-Carlo returns of a finished episode; slots >= capacity (padding) are ignored."""
    mc_returns = buffer.data["mc_returns"].at[slots].set(values, mode="drop")
    return buffer.replace(data={**buffer.data, "mc_returns": mc_returns})
