"""Episode bookkeeping of the online loop: reset seeds, the transition fields known only when an episode ends, and what
a checkpoint keeps of the episodes in progress so that a resumed run goes on exactly."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from o2o.data import replay
from o2o.data.fields import FIELDS, at_episode_end
from o2o.envs import state as env_state


def episode_seed(seed: int, episode: int) -> int:
    """The reset seed of a seed's `episode`-th training episode."""
    return (seed * 1_000_003 + int(episode)) % (2**31)


class EpisodeEndFields:
    """Transition fields an agent reads that are known only once an episode ends (o2o.data.fields: the
    Monte-Carlo returns some critics are bounded by): until then their buffer slots hold the field's `unknown` value; when an episode ends, the
    values computed from its rewards are written into the slots of its transitions. Unfinished episodes go into
    checkpoints (`unfinished`, `resume`), so that an interrupted run writes the same values."""

    def __init__(self, names: tuple[str, ...], config: Any, seeds: int, capacity: int, max_episode_steps: int | None):
        self.names, self.config, self.capacity = names, config, capacity
        self.pad = min(capacity, max_episode_steps or 1000)
        self.slots: list[list[int]] = [[] for _ in range(seeds)]
        self.rewards: list[list[float]] = [[] for _ in range(seeds)]
        self.write = jax.jit(jax.vmap(replay.set_episode_values), donate_argnums=(0,))

    @classmethod
    def of(cls, fields: tuple[str, ...], config: Any, seeds: int, capacity: int, max_episode_steps: int | None):
        """The bookkeeping for an agent's `fields`, or None if none of them waits for an episode's end."""
        names = at_episode_end(fields)
        return cls(names, config, seeds, capacity, max_episode_steps) if names else None

    def record(self, buffers, step: int, rewards: np.ndarray, done: np.ndarray):
        """Note the transitions just inserted at `step`; write the values of episodes that ended there."""
        for i in range(len(self.slots)):
            self.slots[i].append(step % self.capacity)
            self.rewards[i].append(float(rewards[i]))
        ended = [i for i in range(len(self.slots)) if done[i]]
        if not ended:
            return buffers
        values = {i: {name: FIELDS[name].at_episode_end(np.asarray(self.rewards[i]), self.config) for name in self.names}
                  for i in ended}
        longest = max(len(self.rewards[i]) for i in ended)
        for start in range(0, longest, self.pad):  # fixed-size writes: one compilation
            slots = np.full((len(self.slots), self.pad), self.capacity, np.int32)  # out of range: dropped
            chunks = {name: np.zeros((len(self.slots), self.pad), np.float32) for name in self.names}
            for i in ended:
                part = slice(start, min(start + self.pad, len(self.rewards[i])))
                slots[i, : part.stop - part.start] = self.slots[i][part]
                for name in self.names:
                    chunks[name][i, : part.stop - part.start] = values[i][name][part]
            buffers = self.write(buffers, slots, chunks)
        for i in ended:
            self.slots[i], self.rewards[i] = [], []
        return buffers

    def unfinished(self) -> dict:
        return {"slots": {str(i): np.asarray(x, np.int64) for i, x in enumerate(self.slots)},
                "rewards": {str(i): np.asarray(x, np.float64) for i, x in enumerate(self.rewards)}}

    def resume(self, saved: dict) -> None:
        self.slots = [np.asarray(saved["slots"][str(i)]).tolist() for i in range(len(self.slots))]
        self.rewards = [np.asarray(saved["rewards"][str(i)]).tolist() for i in range(len(self.rewards))]


def in_progress(envs, observations: np.ndarray, actions: np.ndarray, returns: np.ndarray,
                episode_end_fields: EpisodeEndFields | None, acting: dict) -> dict | None:
    """What a resume needs to go on with every seed's unfinished episode: the envs' states, the observations and the
    actions already drawn for the next step, what the policy acts on (`acting`: the episode memory of an agent that
    acts on the episode so far, each episode's step and last reward); None if an env cannot be saved."""
    snapshots = [env_state.snapshot(env) for env in envs]
    if any(snapshot is None for snapshot in snapshots):
        return None
    # the checkpoint key "returns_to_go" predates other episode-end fields; kept so older checkpoints resume
    return {"envs": {str(i): snapshot for i, snapshot in enumerate(snapshots)}, "observations": observations,
            "actions": actions, "returns": np.asarray(returns, np.float64), "acting": acting,
            "returns_to_go": episode_end_fields.unfinished() if episode_end_fields is not None else {}}
