"""A device-resident replay buffer: a ring of fixed-size arrays, jitted insert and sample, no Python object per
transition. Functions are pure so that a buffer per seed can be vmapped and carried through `lax.scan`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from o2o.data.fields import FIELDS

TRANSITION_FIELDS = ("observations", "actions", "rewards", "next_observations", "dones")


@struct.dataclass
class ReplayBuffer:
    data: dict  # field -> (capacity, ...) array
    insert_index: jax.Array  # next slot to write
    size: jax.Array  # number of valid transitions


def create(capacity: int, observation_dim: int, action_dim: int, extra_fields: tuple[str, ...] = ()) -> ReplayBuffer:
    """An empty buffer. `extra_fields` (o2o.data.fields.FIELDS) hold their `unknown` value until they are filled:
    when the episode ends (`set_episode_values`), or when the episode's next step is inserted (and stay unknown for an
    episode's last step)."""
    data = {
        "observations": jnp.zeros((capacity, observation_dim), jnp.float32),
        "actions": jnp.zeros((capacity, action_dim), jnp.float32),
        "rewards": jnp.zeros((capacity,), jnp.float32),
        "next_observations": jnp.zeros((capacity, observation_dim), jnp.float32),
        "dones": jnp.zeros((capacity,), jnp.float32),
    }
    for name in extra_fields:
        field = FIELDS[name]
        if field.unknown is None:
            raise ValueError(f"transition field {name!r} has no online form")
        shape = (capacity, action_dim) if field.per_action_dim else (capacity,)
        data[name] = jnp.full(shape, field.unknown, jnp.float32)
    return ReplayBuffer(data, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def add(buffer: ReplayBuffer, transition: dict) -> ReplayBuffer:
    """Insert one transition (each field without the leading capacity axis), overwriting the oldest when full."""
    i = buffer.insert_index
    capacity = buffer.data["rewards"].shape[0]
    data = {k: buffer.data[k].at[i].set(transition[k].astype(buffer.data[k].dtype)) for k in TRANSITION_FIELDS}
    extra = [name for name in buffer.data if name not in TRANSITION_FIELDS]
    for name in extra:
        data[name] = buffer.data[name].at[i].set(FIELDS[name].unknown)
    previous = (i - 1) % capacity
    # the previous transition's episode goes on here if its s' is this transition's s
    goes_on = (buffer.size > 0) & jnp.all(buffer.data["next_observations"][previous] == transition["observations"])
    for name in extra:
        if FIELDS[name].from_next_step and capacity > 1:
            known = jnp.where(goes_on, transition["actions"], data[name][previous])
            data[name] = data[name].at[previous].set(known)
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
    capacity. The slots past the saved ones keep their empty values, as in the buffer that was saved.

    A capacity larger than the saved transitions (an extended run: the default capacity is the run's steps) gets them
    in time order, oldest first, and the next insert after the newest; kept as saved, the next insert would overwrite
    the oldest transition while never-written slots counted as valid. A ring that grows in o2o never wrapped (it held
    at most its run's steps), so its transitions keep their slots: step t stays in slot t % capacity, where
    `o2o.train.episodes` writes the episode-end fields."""
    lead = np.shape(empty.size)  # () for one buffer, (seeds,) for stacked ones
    capacity = empty.data["rewards"].shape[len(lead)]
    size = np.asarray(saved["size"]).reshape(-1)
    index = np.asarray(saved["insert_index"]).reshape(-1)
    grows = size < capacity
    kept = np.shape(saved["data"]["rewards"])[len(lead)]
    slot = np.arange(kept)[None]  # (1, kept)
    unrolled = (slot + index[:, None]) % np.maximum(size, 1)[:, None]
    source = np.where(grows[:, None] & (slot < size[:, None]), unrolled, slot)  # (buffers, kept): the saved slot

    def put(slots: jax.Array, values) -> jax.Array:
        values = np.asarray(values)
        flat = values.reshape((len(size), kept) + values.shape[len(lead) + 1:])
        ordered = flat[np.arange(len(size))[:, None], source].reshape(values.shape)
        return slots.at[(slice(None),) * len(lead) + (slice(0, kept),)].set(ordered)

    insert_index = jnp.asarray(np.where(grows, size, index).reshape(lead), empty.insert_index.dtype)
    return ReplayBuffer({k: put(v, saved["data"][k]) for k, v in empty.data.items()}, insert_index,
                        jnp.asarray(saved["size"], empty.size.dtype))


def set_episode_values(buffer: ReplayBuffer, slots: jax.Array, values: dict) -> ReplayBuffer:
    """Write the values of fields known when an episode ends (name -> values at `slots`); slots >= capacity
    (padding) are ignored."""
    written = {name: buffer.data[name].at[slots].set(v, mode="drop") for name, v in values.items()}
    return buffer.replace(data={**buffer.data, **written})
