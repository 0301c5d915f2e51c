"""A device-resident replay buffer: a ring of fixed-size arrays, jitted insert and sample, no Python object per
transition. Functions are pure so that a buffer per seed can be vmapped and carried through `lax.scan`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

TRANSITION_FIELDS = ("observations", "actions", "rewards", "next_observations", "dones")
UNKNOWN = {"mc_returns": -jnp.inf, "next_actions": jnp.nan}  # extra fields' values until they are known


@struct.dataclass
class ReplayBuffer:
    data: dict  # field -> (capacity, ...) array
    insert_index: jax.Array  # next slot to write
    size: jax.Array  # number of valid transitions


def create(capacity: int, observation_dim: int, action_dim: int, extra_fields: tuple[str, ...] = ()) -> ReplayBuffer:
    """An empty buffer. `extra_fields` (o2o.agents.TRANSITION_FIELDS) are filled in later: "mc_returns" when the
    episode ends (-inf until then, see `set_returns_to_go`), "next_actions" when the episode's next step is inserted
    (NaN until then, and for an episode's last step)."""
    data = {
        "observations": jnp.zeros((capacity, observation_dim), jnp.float32),
        "actions": jnp.zeros((capacity, action_dim), jnp.float32),
        "rewards": jnp.zeros((capacity,), jnp.float32),
        "next_observations": jnp.zeros((capacity, observation_dim), jnp.float32),
        "dones": jnp.zeros((capacity,), jnp.float32),
    }
    shapes = {"mc_returns": (capacity,), "next_actions": (capacity, action_dim)}
    for name in extra_fields:
        data[name] = jnp.full(shapes[name], UNKNOWN[name], jnp.float32)
    return ReplayBuffer(data, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def add(buffer: ReplayBuffer, transition: dict) -> ReplayBuffer:
    """Insert one transition (each field without the leading capacity axis), overwriting the oldest when full."""
    i = buffer.insert_index
    capacity = buffer.data["rewards"].shape[0]
    data = {k: buffer.data[k].at[i].set(transition[k].astype(buffer.data[k].dtype)) for k in TRANSITION_FIELDS}
    for name in UNKNOWN.keys() & buffer.data.keys():
        data[name] = buffer.data[name].at[i].set(UNKNOWN[name])
    if "next_actions" in buffer.data and capacity > 1:
        # the previous transition's episode goes on here if its s' is this transition's s
        previous = (i - 1) % capacity
        goes_on = (buffer.size > 0) & jnp.all(buffer.data["next_observations"][previous] == transition["observations"])
        known = jnp.where(goes_on, transition["actions"], data["next_actions"][previous])
        data["next_actions"] = data["next_actions"].at[previous].set(known)
    return ReplayBuffer(data, (i + 1) % capacity, jnp.minimum(buffer.size + 1, capacity))


def sample(buffer: ReplayBuffer, key: jax.Array, batch_size: int) -> dict:
    index = jax.random.randint(key, (batch_size,), 0, jnp.maximum(buffer.size, 1))
    return {k: v[index] for k, v in buffer.data.items()}


def filled(buffer: ReplayBuffer) -> ReplayBuffer:
    """The buffer cut to its valid transitions (stacked buffers: to the fullest one's), for a checkpoint that grows with
    the data instead of weighing the whole capacity from the first step."""
    keep = (slice(None),) * np.ndim(buffer.size) + (slice(0, int(np.max(np.asarray(buffer.size)))),)
    return buffer.replace(data={k: v[keep] for k, v in buffer.data.items()})


def refill(empty: ReplayBuffer, saved: dict) -> ReplayBuffer:
    """The inverse of `filled`: a checkpoint's buffer (its state dict) written into an empty buffer of the run's
    capacity. The slots past the saved ones keep their empty values, as in the buffer that was saved."""
    axis = np.ndim(empty.size)

    def put(slots: jax.Array, values) -> jax.Array:
        return slots.at[(slice(None),) * axis + (slice(0, np.shape(values)[axis]),)].set(values)

    return ReplayBuffer({k: put(v, saved["data"][k]) for k, v in empty.data.items()},
                        jnp.asarray(saved["insert_index"], empty.insert_index.dtype), jnp.asarray(saved["size"], empty.size.dtype))


def set_returns_to_go(buffer: ReplayBuffer, slots: jax.Array, values: jax.Array) -> ReplayBuffer:
    """Write the Monte-Carlo returns of a finished episode; slots >= capacity (padding) are ignored."""
    mc_returns = buffer.data["mc_returns"].at[slots].set(values, mode="drop")
    return buffer.replace(data={**buffer.data, "mc_returns": mc_returns})
